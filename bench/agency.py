"""Benchmark: agency scale. One location against N locations, with HighLevel's real rate limit.

The sandbox (its own process, limits on: 100 requests / 10 s per location, 200,000 a day, and its
latency model on: 250 ms per answer + 0.5 ms per record unless `--latency-ms 0`) serves N
locations of `--contacts` contacts each, plus what the sandbox derives from them: opportunities
(a fifth), conversations (a tenth, 4 messages each), 2 calendars of 40 appointments, 5 users,
16 custom fields. Side by side, each sync in a fresh child process (process start included), every
resource, a fresh DuckDB file per scenario:

  one_first      one location, first run          one_nochange  the same again, nothing changed
  all_first      all N locations, first run       all_nochange  the same again, nothing changed

Each run: wall seconds and peak RSS of the child (os.wait4), requests and 429s (the sandbox's
request log, and the run result's own count), the sandbox's CPU seconds, and a check from the log
that no location was sent more than 100 requests in any 10 s window (every request counts, 429s
too). Ratios: all_nochange / one_nochange and all_first / one_first (wall seconds; the median of
`--repeat` runs for all but all_first, since a single 2 s run moves by ~20 %). Before each
run the bench waits one rate-limit interval after the previous run's last request, so every run
starts with a full budget, as a scheduled sync would; that wait is not part of any run's time.

The sandbox's startup (process start to its first answer, seeding included) is reported as
`sandbox_startup_s`. A run not finished after `--timeout` seconds is killed and reported with how
many locations it had reached (from the request log); a no-change run is skipped when its first
run did not finish.

    .venv/bin/python bench/agency.py --quick                     # 20 locations, to try it
    .venv/bin/python bench/agency.py                             # 200 locations
    .venv/bin/python bench/agency.py --locations 1000 --max-parallel-locations 8
    .venv/bin/python bench/agency.py --at f896abe --label baseline --timeout 840

`--at REV` benches a commit's code (exported with `git archive`, the repository untouched) instead of
the working tree; the sandbox always runs from the working tree. `--timeout` caps each run.

Prints JSON and appends one line to bench/results/agency.jsonl (with the git commit).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.contacts_throughput import free_port  # noqa: E402

PY = sys.executable
RESULTS = ROOT / "bench" / "results" / "agency.jsonl"
QUICK_LOCATIONS = 20


# -- the sandbox ------------------------------------------------------------------------------------

def start_sandbox(locations: int, contacts: int, log_path: Path,
                  timeout_s: float = 600.0) -> tuple[subprocess.Popen[bytes], str, dict[str, Any], float]:
    """Serve N locations with the real limits; return (process, base, info, startup seconds).

    What `highlevel-sync sandbox serve --contacts 200,200,...` serves (seed 7, the documented
    limits), started without the CLI so the sandbox never imports the pipeline code under test
    (which may be a snapshot, see --at, or half edited)."""
    port = free_port()
    started = time.monotonic()
    script = ("import sys; from highlevel_sync.sandbox import SandboxConfig, serve; "
              "n, count, port = map(int, sys.argv[1:]); "
              "serve(SandboxConfig(contacts_per_location=(n,) * count), port=port)")
    with log_path.open("wb") as log:
        proc = subprocess.Popen([PY, "-c", script, str(contacts), str(locations), str(port)],
                                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = started + timeout_s
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"sandbox exited with {proc.returncode}:\n{log_path.read_text()[-2000:]}")
        try:
            info = httpx.get(f"{base}/__sandbox__/info", timeout=30).json()
            return proc, base, info, time.monotonic() - started
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                proc.kill()
                raise SystemExit("sandbox did not start") from None
            time.sleep(0.2)


def sandbox_cpu_s(proc: subprocess.Popen[bytes]) -> float:
    import psutil

    times = psutil.Process(proc.pid).cpu_times()
    return float(times.user + times.system)


def request_log(base: str) -> list[dict[str, Any]]:
    log: list[dict[str, Any]] = httpx.get(f"{base}/__sandbox__/requests", timeout=600).json()["requests"]
    return log


def clear_request_log(base: str) -> None:
    httpx.delete(f"{base}/__sandbox__/requests", timeout=60).raise_for_status()


# -- one run in a fresh child process -----------------------------------------------------------

def run_child(code: Path, base: str, tokens: dict[str, str], workdir: Path, run: str, parallel: int | None,
              timeout_s: float) -> dict[str, Any]:
    """One sync of `tokens`' locations into `workdir` (its DuckDB file and dlt state persist between
    the scenario's runs); wall time from process start to exit, peak RSS from os.wait4."""
    workdir.mkdir(parents=True, exist_ok=True)
    spec = workdir / f"{run}.spec.json"
    out = workdir / f"{run}.result.json"
    spec.write_text(json.dumps({"base_url": base, "tokens": tokens, "max_parallel_locations": parallel}))
    stderr_path = workdir / f"{run}.stderr.log"  # dlt's warnings, kept out of the report
    started = time.monotonic()
    with stderr_path.open("wb") as stderr:
        proc = subprocess.Popen([PY, __file__, "--child", str(spec), "--workdir", str(workdir), "--out", str(out),
                                 "--code", str(code)], cwd=code, stderr=stderr)
    timed_out = False
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)  # reaps with rusage; Popen.poll would lose it
        if pid:
            break
        if time.monotonic() - started > timeout_s:
            timed_out = True
            proc.kill()
            _, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.1)
    report: dict[str, Any] = {"wall_s": round(time.monotonic() - started, 2),
                              "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
                              "cpu_s": round(usage.ru_utime + usage.ru_stime, 1)}
    if timed_out:
        report["failed"] = f"killed: not finished after {timeout_s:.0f} s"
    elif status != 0 or not out.exists():
        report["failed"] = f"exit status {status}"
        report["stderr_tail"] = stderr_path.read_text(errors="replace")[-3000:]
    else:
        report.update(json.loads(out.read_text()))
    return report


def child(spec_path: Path, workdir: Path, out: Path, code: Path) -> None:
    sys.path.insert(0, str(code))  # the code under test: the working tree or a snapshot (--at)
    try:
        from highlevel_sync.sync import SyncRequest, duckdb_destination, run_sync
    except ImportError:  # a commit from before the package was named highlevel_sync (--at)
        from pipelines.sync import SyncRequest, duckdb_destination, run_sync  # type: ignore[no-redef]
    from sources.highlevel.auth import StaticAuthProvider
    from sources.highlevel.config import validate

    spec = json.loads(spec_path.read_text())
    tokens: dict[str, str] = spec["tokens"]
    raw: dict[str, Any] = {"base_url": spec["base_url"], "location_ids": list(tokens)}
    if spec.get("max_parallel_locations"):
        raw["max_parallel_locations"] = spec["max_parallel_locations"]
    config = validate(raw)
    result = run_sync(
        SyncRequest(destination=duckdb_destination(workdir / "agency.duckdb"),
                    pipelines_dir=str(workdir / "pipelines"), inbox_path=str(workdir / "webhooks.sqlite")),
        config=config, auth=StaticAuthProvider(tokens))
    failed = [loc for loc in result.locations if not loc.ok]
    seconds = [loc.seconds for loc in result.locations]
    ranked = sorted(seconds)
    out.write_text(json.dumps({
        "ok": result.ok, "run_sync_s": round(result.seconds, 2),
        "max_parallel_locations": getattr(config, "max_parallel_locations", None),
        "locations_synced": len(result.locations), "locations_failed": len(failed),
        "first_errors": {loc.location_id: loc.error for loc in failed[:3]},
        # each location's own sync time, in the order they were synced: growth from first to last
        # means a location costs more the more locations the run (or the pipeline state) holds
        "location_s": {"first": round(seconds[0], 2), "last": round(seconds[-1], 2),
                       "median": round(ranked[len(ranked) // 2], 2), "max": round(ranked[-1], 2),
                       "sum": round(sum(seconds), 1)} if seconds else {},
        "rows": result.rows_by_table(),
        "client_requests": sum(loc.stats.requests for loc in result.locations),
        "client_429s": sum(loc.stats.throttled for loc in result.locations),
        "client_retries": sum(loc.stats.retries for loc in result.locations),
        "client_server_errors": sum(loc.stats.server_errors for loc in result.locations),
    }))


# -- the request log --------------------------------------------------------------------------------

def max_in_window(stamps: list[float], interval_s: float) -> int:
    """Most requests within any span shorter than `interval_s` (stamps sorted)."""
    best, lo = 0, 0
    for hi, stamp in enumerate(stamps):
        while stamp - stamps[lo] >= interval_s:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def analyse_log(log: list[dict[str, Any]], locations: set[str], limit: int, interval_s: float) -> dict[str, Any]:
    by_location: dict[str, list[float]] = defaultdict(list)
    allowed_by_location: dict[str, list[float]] = defaultdict(list)
    endpoints: Counter[str] = Counter()
    for entry in log:
        key = entry.get("location_id") or "?"
        by_location[key].append(entry["ts"])
        if entry["status"] != 429:
            allowed_by_location[key].append(entry["ts"])
        path = entry["path"]
        for location_id in (key, *locations):  # ids in paths: count /locations/{id} as one endpoint
            if location_id in path:
                path = path.replace(location_id, "{locationId}")
                break
        endpoints[f"{entry['method']} {path}"] += 1
    peaks = {loc: max_in_window(sorted(stamps), interval_s) for loc, stamps in by_location.items()}
    allowed_peaks = {loc: max_in_window(sorted(stamps), interval_s) for loc, stamps in allowed_by_location.items()}
    over = sorted(loc for loc, peak in peaks.items() if peak > limit)
    stamps = [e["ts"] for e in log]
    touched = [loc for loc in by_location if loc in locations]
    return {
        "requests": len(log),
        "http_429": sum(1 for e in log if e["status"] == 429),
        "other_errors": sum(1 for e in log if e["status"] >= 400 and e["status"] != 429),
        "request_span_s": round(max(stamps) - min(stamps), 2) if stamps else 0.0,
        "locations_touched": len(touched),
        "requests_per_location": round(len(log) / len(touched), 1) if touched else 0,
        "max_requests_in_any_window": max(peaks.values(), default=0),
        "max_allowed_in_any_window": max(allowed_peaks.values(), default=0),
        "locations_over_limit": len(over),
        "over_limit_sample": {loc: peaks[loc] for loc in over[:5]},
        "foreign_requests": sum(len(v) for k, v in by_location.items() if k not in locations),
        "by_endpoint": dict(endpoints.most_common()),
    }


# -- orchestration --------------------------------------------------------------------------------------

def git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.rstrip()  # not lstrip: porcelain lines start with a status column


def code_under_test(at: str | None, tmp: Path) -> tuple[Path, dict[str, Any]]:
    """The working tree (files changed since HEAD are listed), or commit `at` exported with
    `git archive` into `tmp` (read-only for the repository: no checkout, no stash)."""
    if at is None:
        dirty = [line[3:] for line in git("status", "--porcelain", "--untracked-files=no").splitlines()]
        return ROOT, {"git_commit": git("rev-parse", "HEAD"), "git_dirty": dirty, "code": "working tree"}
    commit = git("rev-parse", "--verify", f"{at}^{{commit}}")
    code = tmp / "code"
    code.mkdir()
    archive = subprocess.run(["git", "archive", "--format=tar", commit], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(code)], input=archive.stdout, check=True)
    return code, {"git_commit": commit, "git_dirty": [], "code": f"git archive {at}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--locations", type=int, default=200, help="N: locations in the agency (default 200)")
    parser.add_argument("--contacts", type=int, default=200, help="contacts per location (default 200)")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_LOCATIONS} locations, to try the bench")
    parser.add_argument("--max-parallel-locations", type=int,
                        help="config max_parallel_locations (default: the source's default)")
    parser.add_argument("--timeout", type=float, default=3600.0, help="kill a run after this many seconds")
    parser.add_argument("--label", default="", help="tag for the result line, e.g. baseline")
    parser.add_argument("--skip-single", action="store_true", help="only the N-location runs (no ratios)")
    parser.add_argument("--no-record", action="store_true", help=f"do not append to {RESULTS.name}")
    parser.add_argument("--at", metavar="REV", help="bench this commit's code (git archive), not the working tree")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of each one-location scenario and of the N-location no-change run; their "
                             "median is the figure (default 3: a single 2 s run moves by ~20%%)")
    parser.add_argument("--latency-ms", type=float, default=250.0,
                        help="the sandbox's delay per answer (default 250, a distant HighLevel; 0: loopback speed)")
    parser.add_argument("--latency-per-record-ms", type=float, default=0.5,
                        help="the sandbox's extra delay per record in an answer (default 0.5)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--code", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(Path(args.child), Path(args.workdir), Path(args.out), Path(args.code))
        return
    n = QUICK_LOCATIONS if args.quick else args.locations

    tmp_dir = tempfile.TemporaryDirectory(prefix="hl_agency_")
    work = Path(tmp_dir.name)
    code, code_info = code_under_test(args.at, work)
    # the sandbox always comes from the working tree (it is the yardstick, not the code under test)
    code_info["sandbox_code"] = {"git_commit": git("rev-parse", "HEAD"), "dirty": [
        line[3:] for line in git("status", "--porcelain", "--untracked-files=no", "--", "sandbox").splitlines()]}
    results: dict[str, Any] = {
        "label": args.label, **code_info, "locations": n, "contacts_per_location": args.contacts,
        "quick": args.quick, "max_parallel_locations_flag": args.max_parallel_locations,
        "latency": {"fixed_ms": args.latency_ms, "per_record_ms": args.latency_per_record_ms},
        "machine": f"{os.cpu_count()} cores", "command": " ".join([".venv/bin/python bench/agency.py", *sys.argv[1:]]),
    }
    runs: dict[str, Any] = {}
    with tmp_dir:
        sandbox, base, info, startup = start_sandbox(n, args.contacts, work / "sandbox.log")
        results["sandbox_startup_s"] = round(startup, 2)
        httpx.post(f"{base}/__sandbox__/latency", json={"fixed_ms": args.latency_ms,
                                                        "per_record_ms": args.latency_per_record_ms},
                   timeout=30).raise_for_status()
        print(f"sandbox: {n} locations x {args.contacts} contacts up in {startup:.1f} s", file=sys.stderr, flush=True)
        limit = info["rate_limits"]["max"]
        interval_s = info["rate_limits"]["interval_ms"] / 1000.0
        results["rate_limits"] = info["rate_limits"]
        tokens: dict[str, str] = info["tokens"]
        every = {loc: tokens[loc] for loc in info["location_ids"]}
        one = dict([next(iter(every.items()))])
        last_request = 0.0  # wall-clock time of the previous run's last request
        try:
            reps = max(1, args.repeat)
            # a first run is repeated in fresh directories (its first sample's state serves the
            # no-change runs), a no-change run in place: nothing changed, so nothing changes
            plan = [] if args.skip_single else (
                [("one_first", one, "one")] + [("one_first", one, f"one_r{i}") for i in range(2, reps + 1)]
                + [("one_nochange", one, "one")] * reps)
            plan += [("all_first", every, "all")] + [("all_nochange", every, "all")] * reps
            for run, locs, scenario in plan:
                if run.endswith("_nochange") and "failed" in runs.get(run.replace("_nochange", "_first"), {}):
                    runs[run] = {"skipped": "the first run did not finish"}
                    continue
                # a full budget for every location at the start of each run, as a scheduled sync has
                time.sleep(max(0.0, last_request + interval_s + 0.5 - time.time()))
                clear_request_log(base)
                cpu_before = sandbox_cpu_s(sandbox)
                print(f"{run}: {len(locs)} location(s)...", file=sys.stderr, flush=True)
                report = run_child(code, base, locs, work / scenario, run, args.max_parallel_locations, args.timeout)
                report["sandbox_cpu_s"] = round(sandbox_cpu_s(sandbox) - cpu_before, 1)
                # the machine's 1-minute load after the run: above the sync's own ~1, something else ran
                report["load_avg_1m"] = round(os.getloadavg()[0], 2)
                log = request_log(base)
                if log:
                    last_request = max(e["ts"] for e in log)
                report["server"] = analyse_log(log, set(locs), limit, interval_s)
                if "failed" in report and report["server"]["locations_touched"]:
                    reached = report["server"]["locations_touched"]
                    report["partial"] = {"locations_reached": reached, "of": len(locs),
                                         "estimated_full_wall_s": round(report["wall_s"] * len(locs) / reached, 0)}
                if run in runs and "failed" not in report:  # another sample of the same scenario
                    runs[run].setdefault("wall_samples", [runs[run]["wall_s"]]).append(report["wall_s"])
                    runs[run]["wall_median"] = statistics.median(runs[run]["wall_samples"])
                else:
                    runs[run] = report
                brief = {k: report.get(k) for k in ("wall_s", "peak_rss_mb", "failed", "ok")}
                brief.update({k: report["server"][k] for k in ("requests", "http_429", "max_requests_in_any_window")})
                print(f"{run}: {json.dumps(brief)}", file=sys.stderr, flush=True)
        finally:
            sandbox.terminate()
            try:
                sandbox.wait(timeout=30)
            except subprocess.TimeoutExpired:
                sandbox.kill()
    results["runs"] = runs

    def wall(run: str) -> float | None:
        report = runs.get(run, {})
        if "failed" in report or "skipped" in report or not report:
            return None
        return float(report.get("wall_median", report["wall_s"]))

    ratios: dict[str, Any] = {}
    for label, top, bottom in (("all_nochange_over_one_nochange", "all_nochange", "one_nochange"),
                               ("all_first_over_one_first", "all_first", "one_first")):
        a, b = wall(top), wall(bottom)
        ratios[label] = round(a / b, 2) if a and b else None
    # a first run killed by --timeout: its estimate (wall x N / locations reached), marked as such
    estimate = runs.get("all_first", {}).get("partial", {}).get("estimated_full_wall_s")
    if estimate and wall("one_first"):
        ratios["all_first_over_one_first_estimated"] = round(estimate / wall("one_first"), 1)
    ratios["locations"] = n
    results["ratios"] = ratios
    checked = [r["server"] for r in runs.values() if "server" in r]
    results["rate_limit_check"] = {
        "limit": f"{limit} requests / {interval_s:g} s per location",
        "max_requests_in_any_window": max((s["max_requests_in_any_window"] for s in checked), default=0),
        "locations_over_limit": sum(s["locations_over_limit"] for s in checked),
        "http_429": sum(s["http_429"] for s in checked),
        "ok": all(s["locations_over_limit"] == 0 for s in checked),
    }
    first = runs.get("all_first", {})
    if first.get("rows") and "contacts" in first["rows"]:
        results["rows_check"] = {"contacts_loaded": first["rows"]["contacts"], "expected": n * args.contacts,
                                 "ok": first["rows"]["contacts"] == n * args.contacts}
    print(json.dumps(results, indent=2))
    if not args.no_record:
        with RESULTS.open("a") as fh:
            fh.write(json.dumps({"at": time.strftime("%Y-%m-%dT%H:%M:%S"), **results}) + "\n")


if __name__ == "__main__":
    main()
