"""Benchmark: one big location against a distant API (the sandbox's latency model), side by side.

The sandbox (its own process, HighLevel's real limits: 100 requests / 10 s per location) serves one
location of `--contacts` contacts. Each scenario syncs `--resources` (default: contacts) into a
fresh DuckDB file in a fresh child process, once with the working tree and once with `--baseline`
(a commit exported with `git archive`; default: this session's starting point), first with the
latency model on (default 250 ms per answer + 0.5 ms per record: a 500-contact page waits 500 ms),
then at zero latency, limits on in both.

Reported per run: wall seconds, contacts/s (end to end, process start to exit), requests and 429s
(the sandbox's log), the request phase (first to last request), the sliding-window minimum for that
many requests (request k no earlier than 10 s x floor((k - 1) / 100) after the first) and the share
of the budget used (minimum / request phase), the most requests the location saw in any 10 s, peak
RSS and CPU seconds of the sync.

    .venv/bin/python bench/latency.py --contacts 150000
    .venv/bin/python bench/latency.py --contacts 50000 --skip-baseline
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.agency import code_under_test, git, max_in_window  # noqa: E402
from bench.contacts_throughput import free_port  # noqa: E402
from bench.full_sync import sliding_minimum  # noqa: E402

PY = sys.executable
RESULTS = ROOT / "bench" / "results" / "latency.jsonl"
SESSION_START = "bfbfa9f"  # main before the request layer of "Real-world speed"


def start_sandbox(contacts: int, log_path: Path) -> tuple[subprocess.Popen[bytes], str, dict[str, Any]]:
    port = free_port()
    script = ("import sys; from highlevel_sync.sandbox import SandboxConfig, serve; "
              "serve(SandboxConfig(contacts_per_location=(int(sys.argv[1]),)), port=int(sys.argv[2]))")
    with log_path.open("wb") as log:
        proc = subprocess.Popen([PY, "-c", script, str(contacts), str(port)], cwd=ROOT, stdout=log,
                                stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 900
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"sandbox exited:\n{log_path.read_text()[-2000:]}")
        try:
            return proc, base, httpx.get(f"{base}/__sandbox__/info", timeout=30).json()
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                proc.kill()
                raise SystemExit("sandbox did not start") from None
            time.sleep(0.5)


def run(code: Path, base: str, location: str, token: str, resources: list[str], work: Path,
        timeout_s: float) -> dict[str, Any]:
    work.mkdir(parents=True)
    out = work / "result.json"
    httpx.delete(f"{base}/__sandbox__/requests", timeout=60).raise_for_status()
    started = time.monotonic()
    with (work / "stderr.log").open("wb") as stderr:
        proc = subprocess.Popen([PY, __file__, "--child", json.dumps(
            {"base": base, "location": location, "token": token, "resources": resources, "work": str(work),
             "out": str(out), "code": str(code)})], cwd=code, stderr=stderr)
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() - started > timeout_s:
            proc.kill()
            _, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.1)
    wall = time.monotonic() - started
    log = httpx.get(f"{base}/__sandbox__/requests", timeout=600).json()["requests"]
    stamps = sorted(e["ts"] for e in log)
    span = stamps[-1] - stamps[0] if stamps else 0.0
    minimum = sliding_minimum(len(log))
    report: dict[str, Any] = {
        "wall_s": round(wall, 1), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1), "requests": len(log),
        "http_429": sum(1 for e in log if e["status"] == 429), "request_phase_s": round(span, 1),
        "sliding_window_minimum_s": minimum, "budget_used": round(minimum / span, 3) if span else None,
        "max_requests_in_any_10s": max_in_window(stamps, 10.0),
    }
    if status != 0 or not out.exists():
        report["failed"] = f"exit status {status}"
        report["stderr_tail"] = (work / "stderr.log").read_text(errors="replace")[-2000:]
        return report
    report.update(json.loads(out.read_text()))
    contacts = report.get("rows", {}).get("contacts", 0)
    report["contacts_per_s"] = round(contacts / wall) if contacts else None
    return report


def child(spec: dict[str, Any]) -> None:
    sys.path.insert(0, spec["code"])
    from highlevel_sync.sync import SyncRequest, duckdb_destination, run_sync
    from sources.highlevel.auth import StaticAuthProvider
    from sources.highlevel.config import validate

    work = Path(spec["work"])
    result = run_sync(SyncRequest(resources=spec["resources"], destination=duckdb_destination(work / "hl.duckdb"),
                                  pipelines_dir=str(work / "pipelines")),
                      config=validate({"base_url": spec["base"], "location_ids": [spec["location"]]}),
                      auth=StaticAuthProvider({spec["location"]: spec["token"]}))
    loc = result.locations[0]
    Path(spec["out"]).write_text(json.dumps({"ok": result.ok, "error": loc.error, "rows": result.rows_by_table(),
                                             "run_sync_s": round(result.seconds, 1)}))


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(json.loads(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=150_000)
    parser.add_argument("--resources", default="contacts", help="comma-separated (default: contacts)")
    parser.add_argument("--latency-ms", type=float, default=250.0)
    parser.add_argument("--latency-per-record-ms", type=float, default=0.5)
    parser.add_argument("--baseline", default=SESSION_START, help="commit to compare with (default: %(default)s)")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--skip-zero", action="store_true", help="only the runs with latency")
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--label", default="")
    args = parser.parse_args()
    resources = [r.strip() for r in args.resources.split(",") if r.strip()]
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="hl-latency-") as tmp_dir:
        tmp = Path(tmp_dir)
        codes = {"current": code_under_test(None, tmp)}
        if not args.skip_baseline:
            (tmp / "baseline").mkdir()
            codes["baseline"] = code_under_test(args.baseline, tmp / "baseline")
        proc, base, info = start_sandbox(args.contacts, tmp / "sandbox.log")
        try:
            location = info["location_ids"][0]
            token = info["tokens"][location]
            latencies = [("latency", args.latency_ms, args.latency_per_record_ms)]
            if not args.skip_zero:
                latencies.append(("zero_latency", 0.0, 0.0))
            for name, fixed, per_record in latencies:
                httpx.post(f"{base}/__sandbox__/latency", json={"fixed_ms": fixed, "per_record_ms": per_record},
                           timeout=30).raise_for_status()
                for label, (code, _) in codes.items():
                    time.sleep(10.5)  # a full budget for every run, as a scheduled sync would have
                    results[f"{label}_{name}"] = run(code, base, location, token, resources,
                                                     tmp / f"{label}_{name}", args.timeout)
                    print(f"{label} {name}: {json.dumps(results[f'{label}_{name}'])[:400]}", file=sys.stderr)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    record = {"at": time.strftime("%Y-%m-%dT%H:%M:%S"), "label": args.label, "git_commit": git("rev-parse", "HEAD"),
              "baseline": None if args.skip_baseline else args.baseline, "contacts": args.contacts,
              "resources": resources, "latency": {"fixed_ms": args.latency_ms,
                                                  "per_record_ms": args.latency_per_record_ms},
              "command": " ".join([".venv/bin/python", "bench/latency.py", *sys.argv[1:]]), "runs": results}
    print(json.dumps(record, indent=2))
    with RESULTS.open("a") as fh:
        fh.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
