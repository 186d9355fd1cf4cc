"""Benchmark: contacts end to end (sandbox over loopback → DuckDB), this source vs a dlt rest_api baseline.

Side by side in one run, each sync in a fresh child process (peak RSS measured per child):
  1. this source (paced client, parquet loader files), N contacts        — rate limits off
  2. baseline: dlt's `rest_api` source configured the way dlt's docs show for this endpoint,
     DuckDB defaults (insert_values), N contacts, killed by a watchdog if its resident memory
     passes a cap (it grows with the rows loaded), so it fails the child, not the machine
  3. both again on a smaller location (M contacts) so the ratio is measured even when 2. fails
  3b. the baseline with one column hint (customFields as JSON), N contacts
  4. this source with the real limit (100 requests / 10 s) and 100-contact pages, so requests,
     not processing, bound the run: request-budget use and 429 count

  (--compare-memory-limit L: 1. again with DuckDB's loader memory capped at L instead of the
   shipped setting, to weigh peak RSS against speed side by side; --compare-gc-threshold N: 1. again
   with the cycle collector's generation-0 threshold at N during the sync, CPU time reported)

The sandbox runs in its own process so its CPU and memory are not charged to the syncs.

    .venv/bin/python bench/contacts_throughput.py --contacts 100000 --small 5000
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_sandbox(contacts: list[int]) -> tuple[subprocess.Popen[bytes], str, dict[str, Any]]:
    port = free_port()
    proc = subprocess.Popen(
        [PY, "-m", "highlevel_sync.highlevel_pipeline", "sandbox", "serve", "--port", str(port),
         "--contacts", ",".join(map(str, contacts)), "--no-rate-limit", "--index-lag", "0.5"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            info = httpx.get(f"{base}/__sandbox__/info", timeout=5).json()
            return proc, base, info
        except httpx.HTTPError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("sandbox did not start")


def run_child(mode: str, base: str, location: str, token: str, workdir: Path,
              memory_cap_gb: float | None = None, page_size: int = 500,
              timeout_s: float | None = None, memory_limit: str | None = None,
              gc_threshold: int | None = None) -> dict[str, Any]:
    """Run one sync in a child process; return its report plus wall time and peak RSS."""
    variant = f"-{memory_limit}" if memory_limit else f"-gc{gc_threshold}" if gc_threshold else ""
    out = workdir / f"{mode}-{location}{variant}.json"
    started = time.monotonic()
    cmd = [PY, __file__, "--child", mode, "--base-url", base, "--location", location,
           "--workdir", str(workdir / out.stem), "--out", str(out)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "BENCH_TOKEN": token,
                                                "BENCH_DUCKDB_MEMORY_LIMIT": memory_limit or "",
                                                "BENCH_GC_THRESHOLD": str(gc_threshold or ""),
                                                "BENCH_PAGE_SIZE": str(page_size),
                                                "BENCH_VARIANT": "json" if mode == "baseline_json" else ""})
    capped = timed_out = False
    finished: tuple[int, int, Any] | None = None
    watched = None
    if memory_cap_gb or timeout_s:
        import psutil

        watched = psutil.Process(proc.pid)
    while watched is not None:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)  # reaps with rusage; Popen.poll would lose it
        if pid:
            finished = (pid, status, usage)
            break
        try:
            if memory_cap_gb and watched.memory_info().rss > memory_cap_gb * 1024**3:
                capped = True
            elif timeout_s and time.monotonic() - started > timeout_s:
                timed_out = True
        except psutil.NoSuchProcess:
            pass
        if capped or timed_out:
            proc.kill()
            break
        time.sleep(0.2)
    _, status, usage = finished or os.wait4(proc.pid, 0)
    wall = time.monotonic() - started
    report: dict[str, Any] = {"wall_s": round(wall, 2), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
                              "cpu_user_s": round(usage.ru_utime, 2), "cpu_sys_s": round(usage.ru_stime, 2)}
    if status != 0 or not out.exists():
        report["failed"] = (f"killed: resident memory passed {memory_cap_gb} GB" if capped
                            else f"killed: not finished after {timeout_s:.0f} s" if timed_out
                            else f"exit status {status}")
        return report
    report.update(json.loads(out.read_text()))
    if report.get("contacts"):
        report["contacts_per_s"] = round(report["contacts"] / wall, 1)
    return report


def child_source(base: str, location: str, workdir: Path) -> dict[str, Any]:
    import highlevel_sync.sync as sync
    from highlevel_sync.sync import SyncRequest, duckdb_destination, run_sync
    from sources.highlevel.auth import StaticAuthProvider
    from sources.highlevel.config import validate

    if os.environ.get("BENCH_DUCKDB_MEMORY_LIMIT"):  # --compare-memory-limit: the loader's cap under test
        sync.DUCKDB_LOADER_SETTINGS["memory_limit"] = os.environ["BENCH_DUCKDB_MEMORY_LIMIT"]
    if os.environ.get("BENCH_GC_THRESHOLD"):  # --compare-gc-threshold: the collector's threshold under test
        sync.GC_FIRST_GENERATION = int(os.environ["BENCH_GC_THRESHOLD"])
    token = os.environ["BENCH_TOKEN"]
    started = time.monotonic()
    result = run_sync(
        SyncRequest(destination=duckdb_destination(workdir / "source.duckdb"), resources=["contacts"],
                    pipelines_dir=str(workdir / "pipelines_source")),
        config=validate({"base_url": base, "location_ids": [location],
                         "contacts_page_size": os.environ.get("BENCH_PAGE_SIZE", 500),
                         "chunk_rows": os.environ.get("BENCH_CHUNK_ROWS")}),
        auth=StaticAuthProvider({location: token}),
    )
    if not result.ok:
        raise SystemExit(result.locations[0].error)
    return {"seconds": round(time.monotonic() - started, 2), "contacts": result.rows_by_table().get("contacts", 0),
            "requests": result.locations[0].stats.requests, "throttled": result.locations[0].stats.throttled}


def child_baseline(base: str, location: str, workdir: Path) -> dict[str, Any]:
    """dlt's rest_api source as its docs show: bearer auth, a JSON-cursor paginator, defaults elsewhere."""
    import dlt
    from dlt.sources.helpers.rest_client.paginators import JSONResponseCursorPaginator
    from dlt.sources.rest_api import rest_api_source

    class SearchAfterPaginator(JSONResponseCursorPaginator):
        """searchAfter lives on the last row and goes back in the JSON body (rest_api's documented hook)."""

        def update_state(self, response: Any, data: Any = None) -> None:
            rows = response.json().get("contacts") or []
            self._next_reference = rows[-1]["searchAfter"] if len(rows) == 500 else None

        def update_request(self, request: Any) -> None:
            request.json = {**(request.json or {}), "searchAfter": self._next_reference}

    token = os.environ["BENCH_TOKEN"]
    # "json": one column hint keeping customFields as JSON. Without it, FILE_UPLOAD values (objects
    # keyed by random file ids) become one new column per upload and the schema explodes.
    extra = {"columns": {"custom_fields": {"data_type": "json"}}} if os.environ.get("BENCH_VARIANT") == "json" else {}
    source = rest_api_source({
        "client": {"base_url": base, "auth": {"type": "bearer", "token": token},
                   "headers": {"Version": "2021-07-28"}},
        "resources": [{
            "name": "contacts",
            "primary_key": "id",
            "write_disposition": "merge",
            **extra,
            "endpoint": {
                "path": "contacts/search", "method": "POST",
                "json": {"locationId": location, "pageLimit": 500,
                         "sort": [{"field": "dateUpdated", "direction": "asc"}]},
                "data_selector": "contacts",
                "paginator": SearchAfterPaginator(cursor_path="contacts[-1].searchAfter"),
            },
        }],
    })
    pipeline = dlt.pipeline("bench_baseline", destination=dlt.destinations.duckdb(str(workdir / "baseline.duckdb")),
                            dataset_name="highlevel", pipelines_dir=str(workdir / "pipelines_baseline"))
    started = time.monotonic()
    info = pipeline.run(source)
    info.raise_on_failed_jobs()
    counts = pipeline.last_trace.last_normalize_info.row_counts
    return {"seconds": round(time.monotonic() - started, 2), "contacts": counts.get("contacts", 0)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=5_000)
    parser.add_argument("--baseline-cap-gb", type=float, default=12.0)
    parser.add_argument("--baseline-timeout", type=float, default=300.0)
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--json-baseline-only", action="store_true",
                        help="only this source and the baseline with the customFields JSON hint")
    parser.add_argument("--skip-limited", action="store_true")
    parser.add_argument("--limited-page-size", type=int, default=100,
                        help="contacts per page in the rate-limited run (500: a backfill at the API's page size)")
    parser.add_argument("--compare-memory-limit", metavar="LIMIT",
                        help="also run this source with DuckDB's loader capped at LIMIT (e.g. 160MB), side by side")
    parser.add_argument("--compare-gc-threshold", metavar="N", type=int,
                        help="also run this source with the collector's generation-0 threshold at N during the sync "
                             "(700: Python's default) instead of the shipped one, side by side")
    parser.add_argument("--child")
    parser.add_argument("--base-url")
    parser.add_argument("--location")
    parser.add_argument("--workdir")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.child:
        sys.path.insert(0, str(ROOT))
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
        fn = child_source if args.child.startswith("source") else child_baseline
        Path(args.out).write_text(json.dumps(fn(args.base_url, args.location, Path(args.workdir))))
        return

    proc, base, info = start_sandbox([args.contacts, args.small])
    big, small = info["location_ids"][0], info["location_ids"][1]
    tokens = info["tokens"]
    results: dict[str, Any] = {"contacts": args.contacts, "small": args.small, "machine": f"{os.cpu_count()} cores"}
    try:
        with tempfile.TemporaryDirectory(prefix="hl_bench_") as tmp:
            work = Path(tmp)
            results["source"] = run_child("source", base, big, tokens[big], work)
            print("source:", results["source"], flush=True)
            if args.compare_memory_limit:
                key = f"source_duckdb_{args.compare_memory_limit}"
                results[key] = run_child("source", base, big, tokens[big], work, memory_limit=args.compare_memory_limit)
                print(f"{key}:", results[key], flush=True)
            if args.compare_gc_threshold:
                key = f"source_gc_{args.compare_gc_threshold}"
                results[key] = run_child("source", base, big, tokens[big], work, gc_threshold=args.compare_gc_threshold)
                print(f"{key}:", results[key], flush=True)
            if args.json_baseline_only:
                results["baseline_json"] = run_child("baseline_json", base, big, tokens[big], work,
                                                     args.baseline_cap_gb, timeout_s=args.baseline_timeout)
            elif not args.skip_baseline:
                results["baseline"] = run_child("baseline", base, big, tokens[big], work, args.baseline_cap_gb,
                                                timeout_s=args.baseline_timeout)
                print("baseline:", results["baseline"], flush=True)
                results["source_small"] = run_child("source", base, small, tokens[small], work)
                results["baseline_small"] = run_child("baseline", base, small, tokens[small], work,
                                                      args.baseline_cap_gb)
                print("small:", results["source_small"], results["baseline_small"], flush=True)
                results["baseline_json"] = run_child("baseline_json", base, big, tokens[big], work,
                                                     args.baseline_cap_gb, timeout_s=args.baseline_timeout)
                print("baseline_json:", results["baseline_json"], flush=True)
            if not args.skip_limited and not args.json_baseline_only:
                httpx.post(f"{base}/__sandbox__/ratelimits", json={"max": 100, "interval_ms": 10_000}, timeout=10)
                httpx.delete(f"{base}/__sandbox__/requests", timeout=10)
                # 100 contacts per page: 1,000 requests per 100k, so the limit (not processing) bounds the run
                limited = run_child("source_limited", base, big, tokens[big], work, page_size=args.limited_page_size)
                log = httpx.get(f"{base}/__sandbox__/requests", timeout=120).json()["requests"]
                n = len(log)
                limited["server_requests"] = n
                limited["server_429s"] = sum(1 for e in log if e["status"] == 429)
                # the budget allows a burst of 100, then 10/s: the fastest possible time for n requests
                span = max(e["ts"] for e in log) - min(e["ts"] for e in log) if log else 0.0
                minimum = max(0.0, (n - 100) / 10.0)
                limited["request_span_s"] = round(span, 2)
                limited["budget_minimum_s"] = minimum
                limited["budget_used"] = round(minimum / span, 3) if span else None  # while requesting
                limited["budget_used_end_to_end"] = round(minimum / limited["wall_s"], 3)  # process start included
                sliding = 10.0 * ((n - 1) // 100)  # request k no earlier than 10 s x floor((k-1)/100)
                limited["sliding_window_minimum_s"] = sliding
                limited["budget_used_sliding"] = round(sliding / span, 3) if span else None
                limited["budget_used_end_to_end_sliding"] = round(sliding / limited["wall_s"], 3)
                results["source_limited"] = limited
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    for big_key, small_key, label in (("source", "baseline", "ratio"), ("source_small", "baseline_small",
                                                                        "ratio_small"),
                                      ("source", "baseline_json", "ratio_vs_baseline_with_json_hint")):
        a, b = results.get(big_key, {}), results.get(small_key, {})
        if a.get("contacts_per_s") and b.get("contacts_per_s"):
            results[label] = round(a["contacts_per_s"] / b["contacts_per_s"], 2)
    print(json.dumps(results, indent=2))
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    with (ROOT / "bench" / "results" / "contacts_throughput.jsonl").open("a") as fh:
        fh.write(json.dumps({"at": stamp, **results}) + "\n")


if __name__ == "__main__":
    main()
