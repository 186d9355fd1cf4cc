"""What a long run shows: live progress on a terminal, one line per location elsewhere, `--json` for
scripts, and none of dlt's internal warnings unless `--debug`.

The display is tested directly (SyncProgress); the CLI in a subprocess from the project directory,
like a user runs it (its `.dlt/config.toml` included), against an in-process sandbox.
"""

from __future__ import annotations

import io
import json
import os
import pty
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest
from rich.console import Console

from highlevel_sync.progress import SyncProgress
from highlevel_sync.report import summary_json
from highlevel_sync.results import LocationResult, SyncResult
from sources.highlevel.client import LocationStats
from sources.highlevel.resources.context import ResourceReport

ROOT = Path(__file__).resolve().parents[2]
CONTACTS = "contacts,custom_fields,users,locations"
# one plain progress line: "[2/3] location <id> ok rows=250 requests=7 429s=0 seconds=1.2"
LINE = re.compile(r"^\[(\d+)(?:/(\d+))?\] location (\S+) (ok|FAILED) rows=(\d+) requests=(\d+) 429s=(\d+) "
                  r"seconds=(\d+\.\d)$")
# what dlt logs about its own bookkeeping in a normal sync of the sandbox
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
DLT_NOISE = ("did not receive any data", "schema hash", "|dlt|", "[WARNING]", "Warning:")


# -- the display, directly -------------------------------------------------------------------------

def finished(location_id: str, ok: bool = True, rows: int = 10, requests: int = 3,
             throttled: int = 0) -> LocationResult:
    return LocationResult(location_id, error=None if ok else "boom", rows={"contacts": rows},
                          stats=LocationStats(requests=requests, throttled=throttled), seconds=1.25)


def frame(progress: SyncProgress) -> str:
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(progress.renderable())
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(out, str)
    return out


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_output_is_exactly_one_whole_line_per_location_even_from_many_threads() -> None:
    stream = io.StringIO()
    progress = SyncProgress(stream, live=False)
    ids = [f"loc{n:03d}" for n in range(60)]
    with progress:
        progress.locations_planned(len(ids))
        progress.stage("loading 60 locations into duckdb")  # not a line: plain output is per location

        def work(n: int, location_id: str) -> None:
            progress.location_started(location_id, {"contacts": ResourceReport(rows=n)}, LocationStats())
            progress.location_finished(finished(location_id, ok=n % 7 != 0, rows=n, requests=n + 1, throttled=n % 3))

        threads = [threading.Thread(target=work, args=(n, loc)) for n, loc in enumerate(ids)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    lines = stream.getvalue().splitlines()
    assert len(lines) == len(ids)
    parsed = [LINE.match(line) for line in lines]
    assert all(parsed), lines
    by_id = {m.group(3): m for m in parsed if m}
    assert sorted(by_id) == ids
    assert sorted(int(m.group(1)) for m in by_id.values()) == list(range(1, 61))  # a running count...
    assert {m.group(2) for m in by_id.values()} == {"60"}  # ...of the planned total
    for n, location_id in enumerate(ids):
        m = by_id[location_id]
        assert m.group(4) == ("ok" if n % 7 else "FAILED")
        assert (int(m.group(5)), int(m.group(6)), int(m.group(7))) == (n, n + 1, n % 3)
        assert m.group(8) == "1.2"


def test_live_frame_shows_running_locations_per_resource_and_a_totals_line() -> None:
    progress = SyncProgress(io.StringIO(), live=True)
    progress.locations_planned(3)
    reports = {"contacts": ResourceReport(rows=1_500, total=12_500), "users": ResourceReport(rows=5)}
    stats = LocationStats(requests=42, throttled=2)
    progress.location_started("running1", reports, stats)
    progress.location_started("done1", {"contacts": ResourceReport(rows=300)}, LocationStats())
    progress.location_finished(finished("done1", requests=8))

    text = frame(progress)
    assert "running1" in text and "done1" not in text  # finished locations leave the table
    assert "contacts 1,500/12,500" in text and "users 5" in text
    assert re.search(r"running1 .* 42 +2 ", text)
    assert "1 ok, 0 failed, 1 running, 3 total" in text
    assert "1,805 records read, 50 requests, 2 x 429" in text

    # the frame reads the live objects: what workers change shows up in the next one
    reports["contacts"].rows = 12_500
    reports["opportunities"] = ResourceReport(rows=7, total=9)
    stats.requests = 60
    text = frame(progress)
    assert "contacts 12,500/12,500" in text and "opportunities 7/9" in text and "68 requests" in text


def test_live_frame_stays_small_for_an_agency_run() -> None:
    progress = SyncProgress(io.StringIO(), live=True, max_rows=20)
    progress.locations_planned(1_000)
    for n in range(1_000):
        progress.location_started(f"loc{n:04d}", {"contacts": ResourceReport(rows=1)}, LocationStats(requests=1))
    text = frame(progress)
    assert sum(1 for line in text.splitlines() if re.match(r"loc\d{4} ", line)) == 20
    assert "980 more running" in text
    assert "1,000 running, 1,000 total | 1,000 records read, 1,000 requests" in text


def test_live_display_refreshes_a_few_times_per_second_and_survives_concurrent_workers() -> None:
    terminal = FakeTerminal()
    progress = SyncProgress(terminal)
    assert progress.live  # a terminal gets the live display
    frames = 0
    render = progress.renderable

    def counting() -> Any:
        nonlocal frames
        frames += 1
        return render()

    progress.renderable = counting  # type: ignore[method-assign]
    reports: dict[str, ResourceReport] = {}
    stop = threading.Event()

    def worker() -> None:  # resources appear while the refresh thread reads the dict
        n = 0
        while not stop.is_set():
            reports.setdefault(f"r{n % 500}", ResourceReport()).rows += 1
            n += 1

    with progress:
        progress.location_started("busy", reports, LocationStats())
        thread = threading.Thread(target=worker)
        thread.start()
        time.sleep(1.5)
        progress.location_finished(finished("busy", ok=False))
        stop.set()
        thread.join()
    assert 2 <= frames <= 10  # ~4 per second (plus one on start and stop), never per event
    out = ANSI.sub("", terminal.getvalue())
    assert "location busy FAILED" in out  # a failure is printed above the display, not lost
    assert "0 ok, 1 failed, 0 running" in out  # the last frame, left on screen


def test_summary_json_has_every_field_a_script_needs() -> None:
    good = LocationResult("a", rows={"contacts": 3, "users": 1}, seconds=1.23456, notes={"opportunities": "sorted"},
                          stats=LocationStats(requests=9, throttled=1, retries=2, daily_remaining=199_000))
    bad = LocationResult("b", error="contacts: rate limited", resource_errors={"contacts": "rate limited"},
                         warnings=["index lag"])
    summary = summary_json(SyncResult([good, bad], 4.5))
    assert json.loads(json.dumps(summary)) == summary
    assert summary["ok"] is False and summary["seconds"] == 4.5
    assert summary["rows"] == {"contacts": 3, "users": 1}
    assert summary["locations"][0] == {
        "location_id": "a", "ok": True, "error": None, "resource_errors": {}, "rows": {"contacts": 3, "users": 1},
        "requests": 9, "throttled": 1, "retries": 2, "daily_remaining": 199_000, "seconds": 1.235, "warnings": [],
        "notes": {"opportunities": "sorted"},
    }
    assert summary["locations"][1]["ok"] is False
    assert summary["locations"][1]["resource_errors"] == {"contacts": "rate limited"}
    assert summary["locations"][1]["warnings"] == ["index lag"]


# -- the CLI, as a user runs it --------------------------------------------------------------------

class Cli:
    def __init__(self, sb: Any, tmp: Path) -> None:
        self.sb, self.tmp = sb, tmp
        self.location = sb.location_ids[0]
        self.db = tmp / "out.duckdb"
        self.env = {key: value for key, value in os.environ.items()
                    if not key.startswith(("SOURCES__", "DESTINATION__", "RUNTIME__"))}
        self.env.update({
            "SOURCES__HIGHLEVEL__BASE_URL": sb.base_url,
            "SOURCES__HIGHLEVEL__LOCATION_ID": self.location,
            "SOURCES__HIGHLEVEL__PRIVATE_INTEGRATION_TOKEN": sb.token_for(self.location),
            "SOURCES__HIGHLEVEL__MAX_ATTEMPTS": "3",
            "DESTINATION__DUCKDB__CREDENTIALS": str(self.db),
            "COLUMNS": "160",
        })

    def command(self, *args: str) -> list[str]:
        extra = ["--pipelines-dir", str(self.tmp / "pipelines")] if "run" in args else []
        return [sys.executable, "-m", "highlevel_sync.highlevel_pipeline", *args, *extra]

    def run(self, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
        proc = subprocess.run(self.command(*args), cwd=ROOT, env={**self.env, **(env or {})}, capture_output=True,
                              text=True, timeout=240)
        return proc.returncode, proc.stdout, proc.stderr

    def agency(self) -> None:
        """Switch to the agency's OAuth grant, which reaches every location (a token reaches one)."""
        for key in ("SOURCES__HIGHLEVEL__LOCATION_ID", "SOURCES__HIGHLEVEL__PRIVATE_INTEGRATION_TOKEN"):
            del self.env[key]
        self.env.update({
            "SOURCES__HIGHLEVEL__CREDENTIALS__CLIENT_ID": self.sb.client_id,
            "SOURCES__HIGHLEVEL__CREDENTIALS__CLIENT_SECRET": self.sb.client_secret,
            "SOURCES__HIGHLEVEL__TOKEN_STORE": str(self.tmp / "tokens.json"),
        })
        code, _, err = self.run("auth", "import", "--refresh-token", self.sb.grant("Company"),
                                "--user-type", "Company", "--company-id", self.sb.company_id)
        assert code == 0, err

    def count(self, sql: str) -> int:
        with duckdb.connect(str(self.db), read_only=True) as con:
            row = con.execute(sql).fetchone()
        assert row is not None
        return int(row[0])


@pytest.fixture
def cli(highlevel_sandbox_factory: Any, tmp_path: Path) -> Cli:
    return Cli(highlevel_sandbox_factory(contacts_per_location=(200, 50, 10), index_lag_s=0.5), tmp_path)


def assert_no_dlt_noise(err: str) -> None:
    for noise in DLT_NOISE:
        assert noise not in err, err


def test_json_is_one_object_on_stdout_with_the_row_counts(cli: Cli) -> None:
    code, out, err = cli.run("run", "--resources", CONTACTS, "--json")
    assert code == 0, err
    assert out.endswith("\n") and out.count("\n") == 1  # nothing else on stdout
    summary = json.loads(out)
    assert summary["ok"] is True and summary["seconds"] > 0
    assert summary["rows"]["contacts"] == 200 == cli.count("select count(*) from highlevel.contacts")
    assert summary["rows"]["users"] == cli.count("select count(*) from highlevel.users")
    (location,) = summary["locations"]
    assert location["location_id"] == cli.location and location["ok"] is True and location["error"] is None
    assert location["rows"]["contacts"] == 200
    assert location["requests"] > 0 and location["throttled"] == 0 and location["daily_remaining"] > 0
    assert set(location) == {"location_id", "ok", "error", "resource_errors", "rows", "requests", "throttled",
                             "retries", "daily_remaining", "seconds", "warnings", "notes"}
    # progress went to stderr: not a terminal here, so its one line for the one location
    assert [LINE.match(line) is not None for line in err.splitlines()] == [True], err


def test_without_a_terminal_progress_is_one_line_per_location(cli: Cli) -> None:
    cli.agency()
    suspended = cli.sb.location_ids[2]
    cli.sb.suspend(suspended)
    code, out, err = cli.run("run", "--locations", ",".join(cli.sb.location_ids), "--resources", CONTACTS)
    assert code == 1
    progress = [m for m in map(LINE.match, err.splitlines()) if m]
    assert len(progress) == 3, err
    assert {m.group(3): m.group(4) for m in progress} == {
        cli.sb.location_ids[0]: "ok", cli.sb.location_ids[1]: "ok", suspended: "FAILED"}
    assert sorted(int(m.group(1)) for m in progress) == [1, 2, 3]
    rows = {m.group(3): int(m.group(5)) for m in progress}
    assert rows[cli.sb.location_ids[1]] >= 50  # the location's rows (contacts, users, ...) were counted
    # besides those lines: the failure, once, saying what failed; the summary is on stdout
    others = [line for line in err.splitlines() if not LINE.match(line)]
    assert len(others) == 1 and others[0].startswith("error:") and suspended in others[0], err
    assert "Sync finished" in out


@pytest.mark.parametrize("debug", [False, True], ids=["normal", "debug"])
def test_dlt_warnings_reach_the_terminal_only_with_debug(cli: Cli, debug: bool) -> None:
    # every resource: opportunities, conversations and messages have columns the sandbox leaves
    # empty, which dlt warns about on every load; each load also logs a schema-hash notice
    code, out, err = cli.run(*(["--debug"] if debug else []), "run")
    assert code == 0, err
    if debug:
        assert "did not receive any data" in err
    else:
        assert_no_dlt_noise(err)
        assert all(LINE.match(line) for line in err.splitlines()), err
        assert "Sync finished" in out


def test_a_terminal_gets_the_live_display(cli: Cli) -> None:
    leader, follower = pty.openpty()
    proc = subprocess.Popen(cli.command("run", "--resources", CONTACTS), cwd=ROOT, env=cli.env,
                            stdout=subprocess.PIPE, stderr=follower, text=True)
    os.close(follower)
    chunks: list[bytes] = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    out, _ = proc.communicate(timeout=240)
    os.close(leader)
    screen = ANSI.sub("", b"".join(chunks).decode(errors="replace"))
    assert proc.returncode == 0, screen
    assert "records read / search total" in screen and cli.location in screen  # the table was drawn
    assert "1 ok, 0 failed, 0 running" in screen  # the last frame: the totals
    assert not re.search(r"\] location \S+ ok rows=", screen)  # no plain lines on a terminal
    assert_no_dlt_noise(screen)
    assert out.startswith("Sync finished")  # stdout is only the summary
