"""The Dagster and Prefect examples in pipelines/ run once against the sandbox (run by .ci/run in its
own venv from .ci/orchestrators-requirements.lock: their dependency trees stay out of the project's).

Not a pytest module (the main venv has neither): `python tests/orchestrators/examples_e2e.py`.
1. Dagster (`pipelines/dagster_highlevel.py`): materialising the `@dlt_assets` over
   `highlevel_source()` with a Private Integration Token loads the location's contacts, one asset
   per resource; a second materialisation after two contact updates asks the search once, from the
   cursor (dlt's state, kept by the source).
2. Prefect (`pipelines/prefect_highlevel.py`): the flow calling `run_sync` with an agency token
   loads every installed location; with one location suspended, the flow fails naming it.
Prints "N passed, N failed" and exits non-zero on any failure.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TMP = Path(tempfile.mkdtemp(prefix="hl_orchestrators_"))
for key in [k for k in os.environ if k.startswith(("SOURCES__", "DESTINATION__"))]:
    del os.environ[key]
os.environ.update({
    "DLT_DATA_DIR": str(TMP / "dlt"),
    "PREFECT_HOME": str(TMP / "prefect"),
    "PREFECT_LOGGING_LEVEL": "WARNING",
    # the flow runs against a temporary local Prefect server, slow to start on a busy 2-core machine
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
    "SOURCES__HIGHLEVEL__MAX_ATTEMPTS": "2",
    "SOURCES__HIGHLEVEL__WEBHOOK_INBOX_PATH": str(TMP / "inbox.sqlite"),
    "RUNTIME__LOG_LEVEL": "WARNING",
})
sys.path.insert(0, str(ROOT))

import duckdb  # noqa: E402

from highlevel_sync.sandbox import Sandbox  # noqa: E402

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


def query(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).fetchall()


def load_example(name: str) -> ModuleType:
    """The example file as a user's orchestrator loads it (by path, not as a package module)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "pipelines" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> int:
    sb = Sandbox(contacts_per_location=(80, 40, 20), index_lag_s=0.2).start()
    try:
        def dagster_assets() -> None:
            location = sb.location_ids[0]
            warehouse = TMP / "dagster.duckdb"
            os.environ.update({"SOURCES__HIGHLEVEL__BASE_URL": sb.base_url,
                               "SOURCES__HIGHLEVEL__LOCATION_ID": location,
                               "SOURCES__HIGHLEVEL__PRIVATE_INTEGRATION_TOKEN": sb.token_for(location),
                               "DESTINATION__DUCKDB__CREDENTIALS": str(warehouse)})
            from dagster import materialize
            from dagster_dlt import DagsterDltResource

            example = load_example("dagster_highlevel")
            keys = {key.to_user_string() for key in example.highlevel_assets.keys}
            assert {"dlt_highlevel_contacts", "dlt_highlevel_opportunities"} <= keys, keys
            assert materialize([example.highlevel_assets], resources={"dlt": DagsterDltResource()}).success
            truth = len(sb.truth_contacts(location))
            assert query(warehouse, "select count(*) from highlevel.contacts") == [(truth,)]
            sb.update_contacts(location, 2)
            sb.wait_for_index()
            sb.clear_requests()
            assert materialize([example.highlevel_assets], resources={"dlt": DagsterDltResource()}).success
            searches = sb.requests("/contacts/search")
            assert len(searches) == 1 and searches[0]["body"].get("filters"), searches
            assert query(warehouse, "select count(*) from highlevel.contacts") == [(truth,)]

        def prefect_flow() -> None:
            for key in ("SOURCES__HIGHLEVEL__LOCATION_ID", "SOURCES__HIGHLEVEL__PRIVATE_INTEGRATION_TOKEN"):
                os.environ.pop(key, None)
            warehouse = TMP / "prefect.duckdb"
            os.environ.update({"SOURCES__HIGHLEVEL__BASE_URL": sb.base_url,
                               "SOURCES__HIGHLEVEL__CREDENTIALS__CLIENT_ID": sb.client_id,
                               "SOURCES__HIGHLEVEL__CREDENTIALS__CLIENT_SECRET": sb.client_secret,
                               "SOURCES__HIGHLEVEL__TOKEN_STORE": str(TMP / "tokens.json"),
                               "DESTINATION__DUCKDB__CREDENTIALS": str(warehouse)})
            imported = subprocess.run([sys.executable, "-m", "highlevel_sync.highlevel_pipeline", "auth", "import",
                                       "--refresh-token", sb.grant("Company"), "--user-type", "Company",
                                       "--company-id", sb.company_id], cwd=TMP, capture_output=True, text=True)
            assert imported.returncode == 0, imported.stderr
            example = load_example("prefect_highlevel")
            summary = example.highlevel_sync_flow(locations=["all"], resources=["contacts", "users"],
                                                  pipelines_dir=str(TMP / "pipelines"))
            assert summary["locations"] == len(sb.location_ids), summary
            loaded = dict(query(warehouse, "select location_id, count(*) from highlevel.contacts group by 1"))
            assert loaded == {loc: len(sb.truth_contacts(loc)) for loc in sb.location_ids}, loaded
            bad = sb.location_ids[1]
            sb.suspend(bad)
            state = example.highlevel_sync_flow(locations=["all"], resources=["contacts"],
                                                pipelines_dir=str(TMP / "pipelines"), return_state=True)
            assert state.is_failed(), state
            message = str(state.message)
            assert f"1 location(s) failed: {bad}" in message, message

        check("dagster: @dlt_assets over highlevel_source() load, then read only changes", dagster_assets)
        check("prefect: the run_sync flow loads an agency, and fails naming a suspended location", prefect_flow)
    finally:
        sb.stop()
    failed = sum(1 for _, error in results if error)
    if not failed:
        shutil.rmtree(TMP, ignore_errors=True)  # kept after a failure, for its logs and DuckDB files
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
