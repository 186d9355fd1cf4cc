"""One run of a pipeline at a time: a second run waits for the first, or with --no-wait exits 75
and changes nothing. The lock is an OS file lock, so a killed holder never leaves it stale."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from dlt.common.pipeline import get_dlt_pipelines_dir

from highlevel_sync.runlock import RunInProgress, RunLockTimeout, lock_path, run_lock

REPO = Path(__file__).resolve().parents[2]
RESOURCES = "contacts,opportunities,custom_fields,users,locations"
CLI_TIMEOUT_S = 180


# -- the lock module ------------------------------------------------------------------------------

def test_a_second_holder_is_refused_at_once_without_wait(tmp_path: Path) -> None:
    with run_lock("hl", str(tmp_path), timeout_s=60, wait=True) as path:
        assert path == tmp_path / "hl.run.lock"
        started = time.monotonic()
        with pytest.raises(RunInProgress) as refused, run_lock("hl", str(tmp_path), timeout_s=60, wait=False):
            pass
        assert time.monotonic() - started < 1
        assert str(refused.value).startswith("another run of pipeline 'hl' is in progress")
        assert "\n" not in str(refused.value)
        with run_lock("other", str(tmp_path), timeout_s=0, wait=False):
            pass  # another pipeline name (an Airflow shard) never waits
    with run_lock("hl", str(tmp_path), timeout_s=0, wait=False):
        pass  # released on exit


def test_a_waiting_run_gives_up_after_the_timeout(tmp_path: Path) -> None:
    with run_lock("hl", str(tmp_path), timeout_s=60, wait=True):
        started = time.monotonic()
        with pytest.raises(RunLockTimeout) as timed_out, run_lock("hl", str(tmp_path), timeout_s=0.3, wait=True):
            pass
        assert 0.3 <= time.monotonic() - started < 5
        assert "run_lock_timeout_s" in str(timed_out.value) and "\n" not in str(timed_out.value)


def test_a_waiting_run_goes_ahead_when_the_first_ends(tmp_path: Path) -> None:
    held, order = threading.Event(), []

    def first() -> None:
        with run_lock("hl", str(tmp_path), timeout_s=60, wait=True):
            held.set()
            time.sleep(0.5)
            order.append("first done")

    thread = threading.Thread(target=first)
    thread.start()
    assert held.wait(10)
    with run_lock("hl", str(tmp_path), timeout_s=60, wait=True):
        order.append("second runs")
    thread.join()
    assert order == ["first done", "second runs"]


def test_the_lock_is_released_when_the_run_fails(tmp_path: Path) -> None:
    with pytest.raises(ValueError), run_lock("hl", str(tmp_path), timeout_s=0, wait=False):
        raise ValueError("the run failed")
    with run_lock("hl", str(tmp_path), timeout_s=0, wait=False):
        pass


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom highlevel_sync.runlock import run_lock\n"
         "with run_lock('hl', sys.argv[1], 60, True):\n    print('held', flush=True)\n    time.sleep(120)\n",
         str(tmp_path)],
        stdout=subprocess.PIPE, text=True, cwd=REPO, env=_env({}))
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(RunInProgress), run_lock("hl", str(tmp_path), timeout_s=0, wait=False):
            pass
        holder.kill()  # SIGKILL: no cleanup code runs; the OS drops the lock
        holder.wait(10)
        with run_lock("hl", str(tmp_path), timeout_s=5, wait=True):
            pass
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)


def test_without_a_pipelines_dir_the_lock_sits_where_dlt_keeps_pipelines() -> None:
    assert lock_path("highlevel", None) == Path(get_dlt_pipelines_dir()) / "highlevel.run.lock"


# -- the CLI, in separate processes ---------------------------------------------------------------

def _env(extra: dict[str, str]) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("SOURCES__", "DESTINATION__"))}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return {**env, **extra}


class CliRuns:
    """`highlevel-sync run` as separate processes against one sandbox, DuckDB file and pipeline."""

    def __init__(self, sb: Any, tmp_path: Path) -> None:
        self.sb, self.tmp = sb, tmp_path
        self.location = sb.location_ids[0]
        self.db = tmp_path / "cli.duckdb"
        self.pipelines_dir = tmp_path / "pipelines"
        self.env = _env({
            "DESTINATION__DUCKDB__CREDENTIALS": str(self.db),
            "SOURCES__HIGHLEVEL__BASE_URL": sb.base_url,
            "SOURCES__HIGHLEVEL__LOCATION_ID": self.location,
            "SOURCES__HIGHLEVEL__PRIVATE_INTEGRATION_TOKEN": sb.token_for(self.location),
            "SOURCES__HIGHLEVEL__WEBHOOK_INBOX_PATH": str(tmp_path / "inbox.sqlite"),
            "SOURCES__HIGHLEVEL__TOKEN_STORE": str(tmp_path / "tokens.json"),
            "SOURCES__HIGHLEVEL__MAX_ATTEMPTS": "3",
        })
        self.started = 0

    def start(self, *args: str) -> tuple[subprocess.Popen[bytes], Path]:
        """A run in the background; its stderr goes to the returned file."""
        self.started += 1
        err = self.tmp / f"run{self.started}.err"
        with open(self.tmp / f"run{self.started}.out", "wb") as out, open(err, "wb") as errors:
            process = subprocess.Popen(
                [sys.executable, "-m", "highlevel_sync.highlevel_pipeline", "run", "--resources", RESOURCES,
                 "--pipelines-dir", str(self.pipelines_dir), *args],
                stdout=out, stderr=errors, cwd=self.tmp, env=self.env)
        return process, err

    def run(self, *args: str) -> tuple[int, str]:
        process, err = self.start(*args)
        return process.wait(CLI_TIMEOUT_S), err.read_text()

    def table(self, sql: str) -> list[tuple[Any, ...]]:
        with duckdb.connect(str(self.db), read_only=True) as con:
            return con.execute(sql).fetchall()

    def snapshot(self) -> tuple[Any, ...]:
        """Everything a run could change: loaded rows and the pipeline's files (state, packages)."""
        files = sorted((str(p.relative_to(self.pipelines_dir)), p.stat().st_mtime_ns, p.stat().st_size)
                       for p in self.pipelines_dir.rglob("*") if p.is_file() and not p.name.endswith(".lock"))
        return (self.table("select id, epoch_ms(date_updated) from highlevel.contacts order by id"),
                self.table("select id, epoch_ms(updated_at) from highlevel.opportunities order by id"), files)


@pytest.fixture
def cli(highlevel_sandbox_factory: Any, tmp_path: Path) -> Iterator[CliRuns]:
    sb = highlevel_sandbox_factory(contacts_per_location=(400,), opportunities_per_location=(150,),
                                   conversations_per_location=(1,), calendars_per_location=1, index_lag_s=0.2)
    yield CliRuns(sb, tmp_path)


def _wait_until_waiting(runs: list[tuple[subprocess.Popen[bytes], Path]]) -> None:
    """Until every run says it waits for the lock; fails at once if one ends instead."""
    deadline = time.monotonic() + CLI_TIMEOUT_S
    while not all("waiting for it to finish" in err.read_text() for _, err in runs):
        for process, err in runs:
            assert process.poll() is None, f"a run did not wait for the lock: {err.read_text()[-2000:]}"
        assert time.monotonic() < deadline, "the runs never reached the run lock"
        time.sleep(0.1)


def test_two_concurrent_runs_both_succeed_and_load_every_record_once(cli: CliRuns) -> None:
    """Both start while the lock is taken, so they surely overlap; released, one runs, then the other."""
    with run_lock("highlevel", str(cli.pipelines_dir), timeout_s=60, wait=True):
        runs = [cli.start(), cli.start()]
        _wait_until_waiting(runs)
    codes = [process.wait(CLI_TIMEOUT_S) for process, _ in runs]
    assert codes == [0, 0], [err.read_text()[-2000:] for _, err in runs]
    contacts = cli.table("select count(*), count(distinct id) from highlevel.contacts")
    opportunities = cli.table("select count(*), count(distinct id) from highlevel.opportunities")
    assert contacts == [(400, 400)]
    assert opportunities == [(150, 150)]
    assert sorted(r[0] for r in cli.table("select id from highlevel.contacts")) == sorted(
        c["id"] for c in cli.sb.truth_contacts(cli.location))


def test_no_wait_while_another_run_holds_the_lock_exits_75_and_changes_nothing(cli: CliRuns) -> None:
    code, err = cli.run()
    assert code == 0, err
    cli.sb.update_contacts(cli.location, 5)
    cli.sb.move_opportunities(cli.location, 5)
    cli.sb.wait_for_index()
    before = cli.snapshot()
    cli.sb.clear_requests()

    with run_lock("highlevel", str(cli.pipelines_dir), timeout_s=60, wait=True):
        code, err = cli.run("--no-wait")
    assert code == 75, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines == ["error: another run of pipeline 'highlevel' is in progress; not waiting for it (--no-wait)"]
    assert cli.sb.requests() == []
    assert cli.snapshot() == before

    code, err = cli.run("--no-wait")  # the lock is free again: the run goes ahead
    assert code == 0, err
    assert cli.snapshot()[:2] != before[:2]
