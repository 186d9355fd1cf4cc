"""The `highlevel_sync` DAG end to end under real Airflow (run by .ci/run with the Airflow venv).

Not a pytest module (the main venv has no Airflow): `python tests/airflow/dag_e2e.py`. It starts
the sandbox on 127.0.0.1 with an agency install of eight locations, points AIRFLOW_HOME at a temp
dir with a SQLite metadata DB, and runs `dag.test()`:
1. a scheduled-style run, 3 shards: ≥ 3 mapped shard tasks, all succeed, every location's rows in
   the one dataset exactly once, 0 burned refresh tokens;
2. a webhook-style run with conf {"locations": [one], "resources": ["contacts"]}: one mapped task,
   and the API was asked about that location only;
3. a run with one location suspended: its shard's task fails naming it (after its retry), the
   other shards succeed.
Prints "N passed, N failed" and exits non-zero on any failure.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TMP = Path(tempfile.mkdtemp(prefix="hl_airflow_"))
os.environ.update({
    "AIRFLOW_HOME": str(TMP / "airflow"),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__DAGS_FOLDER": str(TMP / "dags"),
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{TMP / 'airflow' / 'airflow.db'}",
    "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
    "HIGHLEVEL_AIRFLOW_RETRIES": "1",
    "HIGHLEVEL_AIRFLOW_RETRY_DELAY_S": "1",
    "HIGHLEVEL_AIRFLOW_SCHEDULE": "none",
    "DLT_DATA_DIR": str(TMP / "dlt"),
    "DESTINATION__DUCKDB__CREDENTIALS": str(TMP / "warehouse.duckdb"),
    "SOURCES__HIGHLEVEL__TOKEN_STORE": str(TMP / "tokens.json"),
    "SOURCES__HIGHLEVEL__WEBHOOK_INBOX_PATH": str(TMP / "inbox.sqlite"),
    "SOURCES__HIGHLEVEL__MAX_ATTEMPTS": "2",
    "RUNTIME__LOG_LEVEL": "WARNING",
    # the API server's users, for the trigger check (Airflow 3's simple auth manager)
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "hl_trigger:admin",
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(TMP / "passwords.json"),
    "AIRFLOW__API_AUTH__JWT_SECRET": "dag-e2e-only-" + os.urandom(8).hex(),
})
TRIGGER_PASSWORD = "pw-" + os.urandom(6).hex()
(TMP / "passwords.json").write_text(json.dumps({"hl_trigger": TRIGGER_PASSWORD}))
sys.path.insert(0, str(ROOT))
# what a deployment puts in its DAGs folder (README, "Run on Airflow")
(TMP / "dags").mkdir()
shutil.copy(ROOT / "pipelines" / "airflow_dag.py", TMP / "dags" / "highlevel_sync.py")

import duckdb  # noqa: E402

from highlevel_sync.sandbox import Sandbox  # noqa: E402

RESOURCES = ["contacts", "users", "locations", "opportunities"]
results: list[tuple[str, str | None]] = []


def check(name: str, fn: Callable[[], None]) -> None:
    started = time.monotonic()
    try:
        fn()
        results.append((name, None))
        print(f"PASSED {name} ({time.monotonic() - started:.1f} s)", flush=True)
    except Exception:
        results.append((name, traceback.format_exc()))
        print(f"FAILED {name}\n{traceback.format_exc()}", flush=True)


def query(sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with duckdb.connect(os.environ["DESTINATION__DUCKDB__CREDENTIALS"], read_only=True) as con:
        return con.execute(sql, list(params)).fetchall()


@contextlib.contextmanager
def captured_output() -> Iterator[Path]:
    """Everything written to fd 1 and 2 in the block (Airflow's task logs too), also echoed after."""
    path = TMP / f"output-{time.monotonic_ns()}.log"
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with path.open("wb") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield path
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
    sys.stdout.write(path.read_text(errors="replace"))


def shard_tasks(run: Any) -> list[Any]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = session.query(TaskInstance).filter(TaskInstance.dag_id == run.dag_id, TaskInstance.run_id == run.run_id,
                                                 TaskInstance.task_id == "sync_shard").all()
        session.expunge_all()
    return sorted(tis, key=lambda ti: ti.map_index)


def main() -> int:
    sb = Sandbox(contacts_per_location=(120, 60, 40, 30, 25, 20, 15, 10), index_lag_s=0.2,
                 access_token_ttl_s=30.0).start()
    try:
        os.environ.update({
            "SOURCES__HIGHLEVEL__BASE_URL": sb.base_url,
            "SOURCES__HIGHLEVEL__CREDENTIALS__CLIENT_ID": sb.client_id,
            "SOURCES__HIGHLEVEL__CREDENTIALS__CLIENT_SECRET": sb.client_secret,
        })
        imported = subprocess.run([sys.executable, "-m", "highlevel_sync.highlevel_pipeline", "auth", "import",
                                   "--refresh-token", sb.grant("Company"), "--user-type", "Company",
                                   "--company-id", sb.company_id], cwd=ROOT, capture_output=True, text=True)
        if imported.returncode != 0:
            print(imported.stderr)
            return 1
        migrate = subprocess.run([str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
                                 capture_output=True, text=True)
        if migrate.returncode != 0:
            print(migrate.stdout[-3000:], migrate.stderr[-3000:])
            return 1
        logging.getLogger("highlevel").setLevel(logging.DEBUG if os.environ.get("HL_DEBUG") else logging.INFO)
        from highlevel_sync.airflow_dag import highlevel_sync_dag as dag

        state: dict[str, Any] = {}

        def full_run() -> None:
            run = dag.test(run_conf={"shards": 3, "resources": RESOURCES})
            state["run"] = run
            tis = shard_tasks(run)
            assert str(run.state) in ("success", "DagRunState.SUCCESS"), run.state
            assert len(tis) >= 3, f"only {len(tis)} mapped shard tasks"
            assert all(str(ti.state) in ("success", "TaskInstanceState.SUCCESS") for ti in tis), \
                [(ti.map_index, ti.state) for ti in tis]
            for loc in sb.location_ids:
                rows = query("select count(*), count(distinct id) from highlevel.contacts where location_id = ?", loc)
                assert rows == [(len(sb.truth_contacts(loc)), len(sb.truth_contacts(loc)))], (loc, rows)
                users = query("select count(*), count(distinct id) from highlevel.users where location_id = ?", loc)
                assert users[0][0] == users[0][1] == len(sb.truth_users(loc)), (loc, users)
            for table in ("contacts", "opportunities", "users", "locations"):
                dupes = query(f"select count(*) - count(distinct id) from highlevel.{table}")
                assert dupes == [(0,)], (table, dupes)
            pipelines = {r[0] for r in query("select distinct pipeline_name from highlevel._dlt_pipeline_state")}
            assert len(pipelines) == len(tis) and all(p.startswith("highlevel_shard_") for p in pipelines), pipelines
            assert sb.burned_tokens == 0

        def status_shows_every_shard() -> None:
            # from a machine that ran none of the shards: the dataset's stored states, not a local folder
            shown = subprocess.run([sys.executable, "-m", "highlevel_sync.highlevel_pipeline", "status", "--json",
                                    "--pipelines-dir", str(TMP / "status-elsewhere")], cwd=ROOT,
                                   capture_output=True, text=True)
            assert shown.returncode == 0, shown.stderr[-2000:]
            from highlevel_sync.shards import shard_of

            report = json.loads(shown.stdout)
            listed = [loc["location_id"] for loc in report["locations"]]
            assert sorted(listed) == sorted(sb.location_ids), listed  # every location, once
            for loc in report["locations"]:
                shard = shard_of(loc["location_id"], 3)
                assert (loc["shard"], loc["pipeline"]) == (shard, f"highlevel_shard_{shard}"), loc
                assert loc["resources"]["contacts"]["cursor"] and loc["last_success"], loc

        def one_location_run() -> None:
            target, other = sb.location_ids[2], sb.location_ids[3]
            sb.update_contacts(target, 5)
            sb.update_contacts(other, 5)
            before = query("select id, email from highlevel.contacts where location_id = ? order by id", other)
            sb.wait_for_index()
            sb.clear_requests()
            run = dag.test(run_conf={"shards": 3, "locations": [target], "resources": ["contacts"]})
            assert str(run.state) in ("success", "DagRunState.SUCCESS"), run.state
            assert len(shard_tasks(run)) == 1
            # this test's tokens live 30 s, so the run may renew the agency token and mint the
            # target's again: a mint is about the location its body names, a refresh about none
            asked = {(r.get("body") or {}).get("locationId") if r["path"] == "/oauth/locationToken"
                     else None if r["path"] == "/oauth/token" else r.get("location_id")
                     for r in sb.requests()} - {None}
            strays = [(r["method"], r["path"], r["query"], r["body"] if r["path"] == "/oauth/locationToken" else None)
                      for r in sb.requests()
                      if r["path"] != "/oauth/token" and r.get("location_id") not in (None, target)]
            assert asked == {target}, (target, strays[:10])
            truth = {c["id"]: c for c in sb.truth_contacts(target)}
            stored = dict(query("select id, email from highlevel.contacts where location_id = ?", target))
            assert stored == {cid: c["email"] for cid, c in truth.items()}
            assert query("select id, email from highlevel.contacts where location_id = ? order by id", other) == before
            assert sb.burned_tokens == 0

        def failing_location_run() -> None:
            from sources.highlevel.tokenstore import FileTokenStore

            bad = sb.location_ids[1]
            sb.suspend(bad)  # its next token mint is refused with "Location is not active"
            store = FileTokenStore(os.environ["SOURCES__HIGHLEVEL__TOKEN_STORE"])
            with store.lock():
                store.save(store.load().with_location(bad, None))
            with captured_output() as output:
                run = dag.test(run_conf={"shards": 3, "resources": ["contacts", "users"]})
            tis = shard_tasks(run)
            failed = [ti for ti in tis if str(ti.state) in ("failed", "TaskInstanceState.FAILED")]
            ok = [ti for ti in tis if str(ti.state) in ("success", "TaskInstanceState.SUCCESS")]
            assert len(failed) == 1 and len(ok) == len(tis) - 1, [(ti.map_index, ti.state) for ti in tis]
            assert failed[0].try_number >= 2, "the failed shard was not retried"
            named = [line for line in output.read_text(errors="replace").splitlines()
                     if "ShardFailed" in line and bad in line and "not active" in line]
            assert named, "the failure does not name the location"
            assert not any(loc in named[0] for loc in sb.location_ids if loc != bad)
            assert sb.burned_tokens == 0

        def trigger_through_rest_api() -> None:
            from airflow.api_fastapi.app import create_app
            from airflow.models.dagrun import DagRun
            from airflow.utils.session import create_session
            from starlette.testclient import TestClient

            from sources.highlevel.webhooks import AirflowTrigger

            with TestClient(create_app(), base_url="http://airflow.test") as api:
                trigger = AirflowTrigger("http://airflow.test", "highlevel_sync", auth=("hl_trigger", TRIGGER_PASSWORD),
                                         transport=api._transport)  # the real API app, in process
                run_id = trigger(sb.location_ids[0], {"contacts", "users"})
                assert trigger.api_version == "2"
            assert run_id
            with create_session() as session:
                run = session.query(DagRun).filter(DagRun.dag_id == "highlevel_sync", DagRun.run_id == run_id).one()
                conf = dict(run.conf)
            assert conf == {"locations": [sb.location_ids[0]], "resources": ["contacts", "users"]}, conf

        check("full run: >= 3 mapped shards, every location's rows exactly once", full_run)
        check("status --json from another machine: every location once, with its shard", status_shows_every_shard)
        check("conf run: one location reads only that location", one_location_run)
        check("a failing location fails its shard only, named, after a retry", failing_location_run)
        check("the webhook trigger starts a run through Airflow 3's REST API (v2, token from /auth/token)",
              trigger_through_rest_api)
    finally:
        sb.stop()
    failed = sum(1 for _, error in results if error)
    if not failed:
        shutil.rmtree(TMP, ignore_errors=True)  # kept after a failure, for its logs and DuckDB file
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
