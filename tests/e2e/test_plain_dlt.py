"""A dlt user's own pipeline: `pipeline.run(highlevel_source())` with nothing but `.dlt/config.toml`
and `.dlt/secrets.toml` beside the script loads the same tables as `highlevel-sync run`, for one
location (a Private Integration Token) and for an agency (every installed location), and a second
run reads only what changed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest

from highlevel_sync.analyst.history import HISTORY
from highlevel_sync.sandbox import Sandbox, tasks_notes

# wall-clock values that differ between any two runs, whichever way they load
CLOCK_COLUMNS = {("deletions", "deleted_at")}

USER_SCRIPT = """\
import json
import sys

import dlt
from sources.highlevel import highlevel_source

pipeline = dlt.pipeline("my_crm", destination=dlt.destinations.duckdb("crm.duckdb"), dataset_name="highlevel")
source = highlevel_source()
if len(sys.argv) > 1:
    source = source.with_resources(*sys.argv[1].split(","))
pipeline.run(source).raise_on_failed_jobs()
counts = pipeline.last_trace.last_normalize_info.row_counts
print(json.dumps({table: n for table, n in counts.items() if not table.startswith("_dlt")}))
"""


class Project:
    """The user's folder (script + .dlt) and a CLI run of the same account into another DuckDB file."""

    def __init__(self, sb: Sandbox, tmp: Path, config: dict[str, str], secrets: dict[str, str]) -> None:
        self.sb, self.tmp = sb, tmp
        self.folder = tmp / "user"
        (self.folder / ".dlt").mkdir(parents=True)
        (self.folder / "pipeline.py").write_text(USER_SCRIPT)
        (self.folder / ".dlt" / "config.toml").write_text(_toml(config))
        (self.folder / ".dlt" / "secrets.toml").write_text(_toml(secrets))
        self.cli_env = {f"SOURCES__HIGHLEVEL__{key.replace('.', '__').upper()}": value
                        for key, value in {**config, **secrets}.items()}
        (tmp / "cli").mkdir()

    def plain(self, resources: str | None = None) -> dict[str, int]:
        """Runs the user's script in its own folder; returns rows per table of its load."""
        # dlt keeps pipeline state under its data dir (~/.dlt by default): this user's own
        out = _run([sys.executable, "pipeline.py", *([resources] if resources else [])], self.folder,
                   {"DLT_DATA_DIR": str(self.tmp / "dlt_home")})
        return dict(json.loads(out.strip().splitlines()[-1]))

    def cli(self) -> None:
        _run([sys.executable, "-m", "highlevel_sync.highlevel_pipeline", "run", "--pipelines-dir",
              str(self.tmp / "cli" / "pipelines")], self.tmp / "cli",
             {**self.cli_env, "DESTINATION__DUCKDB__CREDENTIALS": str(self.tmp / "cli" / "cli.duckdb")})

    def tables(self, which: str) -> dict[str, list[tuple[Any, ...]]]:
        path = self.folder / "crm.duckdb" if which == "plain" else self.tmp / "cli" / "cli.duckdb"
        return dataset_rows(path)


def _toml(values: dict[str, str]) -> str:
    lines = ["[sources.highlevel]"] + [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def _run(args: list[str], cwd: Path, extra: dict[str, str]) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "DESTINATION__"))}
    proc = subprocess.run(args, cwd=cwd, env={**env, **extra}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def dataset_rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every table of the dataset: its rows over its non-null columns (dlt's own columns left out),
    sorted; a column with no value in any row is left out too (one path may declare it, the other not)."""
    found: dict[str, list[tuple[Any, ...]]] = {}
    with duckdb.connect(str(path), read_only=True) as con:
        tables = [r[0] for r in con.execute("select table_name from information_schema.tables where "
                                            "table_schema = 'highlevel' and table_type = 'BASE TABLE' "
                                            "and table_name not like '_dlt%'").fetchall()]
        for table in tables:
            columns = [r[0] for r in con.execute(
                "select column_name from information_schema.columns where table_schema = 'highlevel' and "
                "table_name = ? and column_name not like '_dlt%' order by column_name", [table]).fetchall()]
            filled = [c for c in columns if (table, c) not in CLOCK_COLUMNS
                      and con.execute(f'select count("{c}") from highlevel."{table}"').fetchone() != (0,)]
            rows = con.execute(f"select {', '.join(chr(34) + c + chr(34) for c in filled)} "
                               f'from highlevel."{table}"').fetchall() if filled else []
            found[table] = sorted([tuple(zip(filled, row, strict=True)) for row in rows], key=repr)
    return found


def assert_same_tables(project: Project) -> None:
    """The source's tables are equal; the CLI's analyst layer (views, opportunity history) is its own."""
    plain, cli = project.tables("plain"), project.tables("cli")
    cli.pop(HISTORY)
    assert sorted(plain) == sorted(cli)
    for table in cli:
        assert plain[table] == cli[table], f"table {table} differs"


@pytest.fixture
def sandbox(highlevel_sandbox_factory: Callable[..., Sandbox]) -> Sandbox:
    return highlevel_sandbox_factory(contacts_per_location=(200, 50, 10), index_lag_s=0.5)


def test_one_location_with_a_pit_loads_what_the_cli_loads_then_only_changes(sandbox: Sandbox, tmp_path: Path) -> None:
    location = sandbox.location_ids[0]
    project = Project(sandbox, tmp_path, {"base_url": sandbox.base_url, "location_id": location},
                      {"private_integration_token": sandbox.token_for(location)})
    first = project.plain()
    assert first["contacts"] == len(sandbox.truth_contacts(location))
    project.cli()
    assert_same_tables(project)
    first_requests = len(sandbox.requests())

    changed = sandbox.update_contacts(location, 3)
    gone = next(task["id"] for task in sandbox.truth(location, "tasks") if not task.get("completed"))
    tasks_notes.delete_task(sandbox.world, location, gone)
    sandbox.wait_for_index()
    sandbox.clear_requests()
    second = project.plain()
    searches = sandbox.requests("/contacts/search")
    assert len(searches) == 1  # one page from the cursor, not a re-read of 200 contacts
    assert searches[0]["body"]["filters"][0]["field"] == "dateUpdated"
    assert set(changed) <= {r[0] for r in _contacts_loaded_last(project.folder / "crm.duckdb")}
    assert second["contacts"] < 10  # the changes and the overlap window, not every contact
    assert len(sandbox.requests()) < first_requests  # a request or two per resource, not a re-read
    # the tasks read found it gone before `deletions` recorded it, inside the same extract
    crm = project.folder / "crm.duckdb"
    assert _query(crm, "select count(*) from highlevel.tasks where id = ?", gone) == [(0,)]
    assert _query(crm, "select resource, location_id, detected_by from highlevel.deletions where id = ?",
                  gone) == [("tasks", location, "sweep")]
    project.cli()
    assert_same_tables(project)


def test_with_resources_and_the_contacts_cursor_are_dlt_state(sandbox: Sandbox, tmp_path: Path) -> None:
    location = sandbox.location_ids[1]
    project = Project(sandbox, tmp_path, {"base_url": sandbox.base_url, "location_id": location},
                      {"private_integration_token": sandbox.token_for(location)})
    loaded = project.plain("contacts")
    assert set(loaded) == {"contacts", "contacts__tags", "contact_custom_field_values"}
    paths = {r["path"] for r in sandbox.requests()}
    assert not any(p.startswith(("/opportunities", "/conversations", "/calendars")) for p in paths)
    sandbox.clear_requests()
    assert project.plain("contacts").get("contacts", 0) < 5  # the stored cursor: only the overlap
    assert len(sandbox.requests("/contacts/search")) == 1


def test_an_agency_grant_reads_every_installed_location_like_the_cli(sandbox: Sandbox, tmp_path: Path) -> None:
    store = tmp_path / "tokens.json"
    config = {"base_url": sandbox.base_url, "token_store": str(store)}
    secrets = {"credentials.client_id": sandbox.client_id, "credentials.client_secret": sandbox.client_secret}
    project = Project(sandbox, tmp_path, config, secrets)
    _run([sys.executable, "-m", "highlevel_sync.highlevel_pipeline", "auth", "import", "--refresh-token",
          sandbox.grant("Company"), "--user-type", "Company", "--company-id", sandbox.company_id],
         tmp_path / "cli", project.cli_env)

    project.plain()
    loaded = {r[0] for r in _query(project.folder / "crm.duckdb",
                                   "select distinct location_id from highlevel.contacts")}
    assert loaded == set(sandbox.location_ids)
    project.cli()
    assert_same_tables(project)

    sandbox.clear_requests()
    project.plain()
    searches = sandbox.requests("/contacts/search")
    assert sorted(r["location_id"] for r in searches) == sorted(sandbox.location_ids)  # one page each
    assert all(r["body"].get("filters") for r in searches)  # every location from its own cursor


def _contacts_loaded_last(path: Path) -> list[tuple[Any, ...]]:
    return _query(path, "select id from highlevel.contacts where _dlt_load_id = "
                        "(select max(_dlt_load_id) from highlevel.contacts)")


def _query(path: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql, list(params)).fetchall()
