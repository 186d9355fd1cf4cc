"""Benchmark: how fast the webhook receiver acknowledges signed deliveries, and whether any is lost.

A receiver (`sources.highlevel.webhooks.serve`, real Ed25519 verification, the SQLite inbox with
fsync per commit, processor and debouncer running) is started in a child process on loopback. N
signed deliveries (default 1,000 across 4 locations) are posted over `--seconds` (default 10) on an
open-loop schedule by a few keep-alive clients. Reported per delivery: acknowledge latency measured
from the moment the request was sent (p50/p90/p99/max), the same measured from its scheduled time
(so a stalled receiver cannot hide behind a slowed-down sender), and "lost": deliveries that did
not get a 2xx plus acknowledged ones missing from the inbox afterwards.

    .venv/bin/python bench/webhook_ack_latency.py [--events 1000] [--seconds 10] [--senders 8]
"""

from __future__ import annotations

import argparse
import itertools
import json
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
PATH = "/webhooks/highlevel"
LOCATIONS = ("BENCH-LOC-1", "BENCH-LOC-2", "BENCH-LOC-3", "BENCH-LOC-4")
TYPES = ("ContactUpdate", "OpportunityStatusUpdate", "InboundMessage", "ContactDelete")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_child(args: argparse.Namespace) -> None:
    """The receiver process: production wiring, test public keys, a no-op sync trigger."""
    import logging

    from sources.highlevel.webhooks import InProcessTrigger, WebhookConfig, serve

    logging.basicConfig(level=logging.WARNING)
    config = WebhookConfig(ed25519_public_key=args.ed25519_key, rsa_public_key=args.rsa_key,
                           inbox_path=args.inbox, quiet_s=2.0, max_delay_s=10.0)
    serve(config, port=args.port, trigger=InProcessTrigger(lambda location, resources: None), log_level="warning")


def start_receiver(workdir: Path, ed_pem: Path, rsa_pem: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen([PY, __file__, "--serve", "--port", str(port), "--inbox", str(workdir / "inbox.sqlite"),
                             "--ed25519-key", str(ed_pem), "--rsa-key", str(rsa_pem)], cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"receiver exited with {proc.returncode}")
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("receiver did not start")


def deliveries(n: int, keys: Any, scheme: str) -> list[tuple[str, bytes, dict[str, str]]]:
    """Pre-signed (webhookId, body, headers): signing is HighLevel's cost, not the receiver's."""
    out = []
    for i in range(n):
        webhook_id = f"bench-{i}"
        body = json.dumps({
            "type": TYPES[i % len(TYPES)], "locationId": LOCATIONS[i % len(LOCATIONS)], "id": f"rec-{i}",
            "webhookId": webhook_id, "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
            "firstName": "Bench", "email": f"bench{i}@example.com", "tags": ["a", "b"],
        }).encode()
        out.append((webhook_id, body, {"content-type": "application/json", **keys.headers(body, scheme)}))
    return out


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 1000) - 1] if len(values) > 1 else values[0]


def run(args: argparse.Namespace) -> dict[str, Any]:
    from sources.highlevel.webhooks.signing import generate_test_keys

    keys = generate_test_keys()
    with tempfile.TemporaryDirectory(prefix="webhook-bench-") as tmp:
        workdir = Path(tmp)
        ed_pem, rsa_pem = workdir / "ed.pem", workdir / "rsa.pem"
        ed_pem.write_text(keys.ed25519_public_pem)
        rsa_pem.write_text(keys.rsa_public_pem)
        items = deliveries(args.events, keys, args.scheme)
        proc, base = start_receiver(workdir, ed_pem, rsa_pem)
        try:
            results: list[tuple[str, int, float, float]] = []  # (id, status, service s, from-schedule s)
            lock = threading.Lock()
            counter = itertools.count()
            interval = args.seconds / args.events
            started = time.monotonic() + 0.2

            def sender() -> None:
                with httpx.Client(base_url=base, timeout=30) as client:
                    while (i := next(counter)) < len(items):
                        scheduled = started + i * interval
                        if (delay := scheduled - time.monotonic()) > 0:
                            time.sleep(delay)
                        webhook_id, body, headers = items[i]
                        sent = time.monotonic()
                        try:
                            status = client.post(PATH, content=body, headers=headers).status_code
                        except httpx.HTTPError:
                            status = 0
                        done = time.monotonic()
                        with lock:
                            results.append((webhook_id, status, done - sent, done - scheduled))

            threads = [threading.Thread(target=sender) for _ in range(args.senders)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = time.monotonic() - started

            deadline = time.monotonic() + 30
            while httpx.get(base + "/healthz", timeout=5).json()["inbox"]["events_pending"] and \
                    time.monotonic() < deadline:
                time.sleep(0.1)
            with sqlite3.connect(workdir / "inbox.sqlite") as con:
                stored = {row[0] for row in con.execute("SELECT webhook_id FROM events WHERE processed_at IS NOT NULL")}
        finally:
            proc.terminate()
            proc.wait(timeout=30)

    acked = [r for r in results if 200 <= r[1] < 300]
    service = [r[2] * 1000 for r in results]
    schedule = [r[3] * 1000 for r in results]
    return {
        "events": args.events, "seconds_target": args.seconds, "seconds_actual": round(elapsed, 2),
        "senders": args.senders, "scheme": args.scheme,
        "ack_ms": {"p50": round(percentile(service, 0.50), 2), "p90": round(percentile(service, 0.90), 2),
                   "p99": round(percentile(service, 0.99), 2), "max": round(max(service), 2)},
        "ack_from_schedule_ms": {"p50": round(percentile(schedule, 0.50), 2),
                                 "p99": round(percentile(schedule, 0.99), 2), "max": round(max(schedule), 2)},
        "not_acknowledged": len(results) - len(acked),
        "acknowledged_but_missing": sum(1 for r in acked if r[0] not in stored),
        "lost": len(results) - len(acked) + sum(1 for r in acked if r[0] not in stored),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--senders", type=int, default=8)
    parser.add_argument("--scheme", choices=["ed25519", "rsa", "both"], default="ed25519")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--inbox", help=argparse.SUPPRESS)
    parser.add_argument("--ed25519-key", help=argparse.SUPPRESS)
    parser.add_argument("--rsa-key", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve_child(args)
        return
    report = run(args)
    ack, sched = report["ack_ms"], report["ack_from_schedule_ms"]
    print(f"{report['events']} signed deliveries ({report['scheme']}) in {report['seconds_actual']} s, "
          f"{report['senders']} senders, receiver in a child process on loopback")
    print(f"acknowledge latency: p50 {ack['p50']} ms  p90 {ack['p90']} ms  p99 {ack['p99']} ms  max {ack['max']} ms")
    print(f"from schedule:       p50 {sched['p50']} ms  p99 {sched['p99']} ms  max {sched['max']} ms")
    print(f"lost: {report['lost']} (not acknowledged {report['not_acknowledged']}, "
          f"acknowledged but missing {report['acknowledged_but_missing']})")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
