"""Over real HTTP on loopback: size limits on the wire, a 1,000-event burst through the debouncer,
and a receiver process SIGKILLed mid-burst that loses no acknowledged event."""

from __future__ import annotations

import itertools
import socket
import sqlite3
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sources.highlevel.webhooks import SYNC_RESOURCES, InProcessTrigger, Receiver, parse_event
from sources.highlevel.webhooks.signing import SigningKeys

from .conftest import WEBHOOK_PATH, ChildReceiver, ThreadServer, signed

LOCATIONS = ["LOC-A", "LOC-B", "LOC-C", "LOC-D"]
KINDS = ["ContactUpdate", "OpportunityStageUpdate", "InboundMessage", "ContactDelete", "AppointmentCreate"]


def delivery(n: int) -> dict[str, Any]:
    kind = KINDS[n % len(KINDS)]
    location = LOCATIONS[n % len(LOCATIONS)]
    payload: dict[str, Any] = {"type": kind, "locationId": location, "id": f"rec-{n}", "webhookId": f"burst-{n}",
                               "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())}
    if kind == "AppointmentCreate":
        payload["appointment"] = {"id": f"appt-{n}", "locationId": location}
    return payload


def raw_http(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks):
                break
        return b"".join(chunks)


def test_size_limit_on_the_wire(make_receiver: Callable[..., Receiver],
                                serve_in_thread: Callable[..., ThreadServer], keys: SigningKeys) -> None:
    receiver = make_receiver()
    server = serve_in_thread(receiver.app)
    # A declared size over the limit is refused before any body byte is read.
    head = raw_http(server.port, b"POST /webhooks/highlevel HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")

    def chunks() -> Iterator[bytes]:  # chunked transfer: no Content-Length to trust
        for _ in range(40):
            yield b"x" * 65536

    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.post(WEBHOOK_PATH, content=chunks()).status_code == 413
        body, headers = signed(keys, delivery(1))
        assert client.post(WEBHOOK_PATH, content=body, headers=headers).json() == {"status": "accepted"}
        garbage = raw_http(server.port, b"POST /webhooks/highlevel HTTP/1.1\r\nHost: x\r\nContent-Length: zz\r\n\r\n")
        assert garbage.startswith(b"HTTP/1.1 4")
        assert client.get("/healthz").json()["status"] == "ok"
    assert receiver.inbox.counts()["events"] == 1


class RecordingTrigger:
    """Records each run's window and detects two runs of one location at once."""

    def __init__(self) -> None:
        self.runs: dict[str, list[tuple[float, float, set[str]]]] = defaultdict(list)
        self.active: dict[str, int] = defaultdict(int)
        self.overlaps = 0
        self.lock = threading.Lock()

    def __call__(self, location_id: str, resources: set[str]) -> None:
        with self.lock:
            self.active[location_id] += 1
            self.overlaps += self.active[location_id] > 1
        start = time.monotonic()
        time.sleep(0.05)  # a (very fast) sync
        with self.lock:
            self.active[location_id] -= 1
            self.runs[location_id].append((start, time.monotonic(), resources))


@pytest.mark.slow
def test_burst_of_1000_signed_events(make_receiver: Callable[..., Receiver], make_config: Callable[..., Any],
                                     serve_in_thread: Callable[..., ThreadServer], keys: SigningKeys) -> None:
    quiet_s, max_delay_s = 0.5, 2.0
    trigger = RecordingTrigger()
    receiver = make_receiver(InProcessTrigger(trigger), config=make_config(quiet_s=quiet_s, max_delay_s=max_delay_s),
                             max_concurrent_runs=len(LOCATIONS))
    server = serve_in_thread(receiver.app)
    total, duration_s, senders = 1000, 10.0, 4
    statuses: list[tuple[int, str]] = []
    counter = itertools.count()
    started = time.monotonic()

    def send() -> None:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            while (n := next(counter)) < total:
                delay = started + n * duration_s / total - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                body, headers = signed(keys, delivery(n))
                response = client.post(WEBHOOK_PATH, content=body, headers=headers)
                statuses.append((response.status_code, response.json()["status"]))

    threads = [threading.Thread(target=send) for _ in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    sent_s = time.monotonic() - started
    assert statuses.count((200, "accepted")) == total

    deadline = time.monotonic() + max_delay_s + 5
    while time.monotonic() < deadline:
        counts = receiver.inbox.counts()
        if counts["events_pending"] == 0 and counts["dirty_locations"] == 0 and not receiver.debouncer.running:
            break
        time.sleep(0.05)
    counts = receiver.inbox.counts()
    assert counts["events"] == total and counts["events_pending"] == 0 and counts["dirty_locations"] == 0
    assert counts["deletions_pending"] == total // len(KINDS)  # every ContactDelete left a tombstone

    assert trigger.overlaps == 0
    assert set(trigger.runs) == set(LOCATIONS)
    marked: dict[str, set[str]] = defaultdict(set)
    for n in range(total):
        event = parse_event(delivery(n))
        marked[event.location_id or ""].update(SYNC_RESOURCES[event.resource])
    for location, runs in trigger.runs.items():
        assert set().union(*(r for _, _, r in runs)) == marked[location]
        starts = [start for start, _, _ in runs]
        gaps = [b - a for a, b in itertools.pairwise(starts)]
        # At most one run per debounce window: continuous traffic fires every max_delay, never faster than quiet.
        assert all(gap >= quiet_s * 0.9 for gap in gaps), (location, gaps)
        assert len(runs) <= sent_s / max_delay_s + 2, (location, len(runs))


@pytest.mark.slow
def test_sigkill_mid_burst_loses_no_acknowledged_event(tmp_path: Path, keys: SigningKeys) -> None:
    ed_pem, rsa_pem = tmp_path / "ed.pem", tmp_path / "rsa.pem"
    ed_pem.write_text(keys.ed25519_public_pem)
    rsa_pem.write_text(keys.rsa_public_pem)
    inbox_path, log = tmp_path / "inbox.sqlite", tmp_path / "receiver.log"
    child = ChildReceiver(inbox_path, ed_pem, rsa_pem, log)
    try:
        child.wait_ready()
        acked: list[str] = []
        errors: list[str] = []
        lock = threading.Lock()
        stop = threading.Event()
        counter = itertools.count()

        def send() -> None:
            with httpx.Client(base_url=child.url, timeout=5) as client:
                while not stop.is_set():
                    n = next(counter)
                    if n >= 5000:
                        return
                    body, headers = signed(keys, delivery(n))
                    try:
                        response = client.post(WEBHOOK_PATH, content=body, headers=headers)
                    except httpx.HTTPError as exc:  # the receiver died under us: never acknowledged
                        errors.append(type(exc).__name__)
                        return
                    if response.status_code == 200:
                        with lock:
                            acked.append(f"burst-{n}")

        threads = [threading.Thread(target=send) for _ in range(6)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 20
        while len(acked) < 300 and time.monotonic() < deadline:
            time.sleep(0.005)
        child.kill()  # mid-burst: several posts are in flight
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
        assert len(acked) >= 300
        assert errors, "the kill should have cut posts in flight"
        assert child.proc.returncode == -9

        with sqlite3.connect(inbox_path) as con:  # the file as the killed process left it
            stored = {row[0] for row in con.execute("SELECT webhook_id FROM events")}
        assert set(acked) <= stored

        child = ChildReceiver(inbox_path, ed_pem, rsa_pem, log)
        child.wait_ready()
        deadline = time.monotonic() + 15
        while child.health()["inbox"]["events_pending"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert child.health()["inbox"]["events_pending"] == 0
        with sqlite3.connect(inbox_path) as con:
            processed = {row[0] for row in con.execute("SELECT webhook_id FROM events WHERE processed_at IS NOT NULL")}
        assert set(acked) <= processed
        replay_body, replay_headers = signed(keys, delivery(0))
        assert httpx.post(child.url + WEBHOOK_PATH, content=replay_body, headers=replay_headers).json() == {
            "status": "duplicate"}
    finally:
        child.terminate()
