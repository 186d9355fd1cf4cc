"""The columnar (Arrow) path loads exactly the tables dlt's JSON normalizer loads: the same tables,
columns, types, nullability, column order and rows, on a first load and after updates, deletes,
moves and new rows; into DuckDB and into PostgreSQL."""

from __future__ import annotations

import copy
import functools
import logging
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import dlt
import duckdb
import psycopg2
import pyarrow as pa
import pytest

import highlevel_sync.sync as sync
from highlevel_sync.sandbox import Sandbox
from sources.highlevel.auth import StaticAuthProvider
from sources.highlevel.columnar import LOAD_ID_CONFIG, to_arrow_items
from sources.highlevel.config import validate
from sources.highlevel.resources.contacts import custom_values_hints
from sources.highlevel.resources.opportunities import OPPORTUNITY_COLUMNS, shape_opportunity
from sources.highlevel.resources.records import RecordTables
from tests.warehouse.conftest import postgres_dsn  # noqa: F401  (the fixture, for the PostgreSQL case)

from .conftest import Harness

COLUMNAR_RESOURCES = ["contacts", "opportunities", "conversations", "messages"]
# what must take the Arrow path: every table of these resources, nested ones (contacts__tags) too
ARROW_TABLES = {"contacts", "contacts__tags", "contact_custom_field_values", "opportunities",
                "opportunity_custom_field_values", "conversations", "messages"}
DLT_KEYS = ("_dlt_load_id", "_dlt_id", "_dlt_parent_id", "_dlt_root_id")
# wall-clock values that differ between any two runs, whatever the path
CLOCK_COLUMNS = {("deletions", "deleted_at")}
LOAD_ID_ENV = LOAD_ID_CONFIG.upper().replace(".", "__")


@dataclass
class Warehouse:
    """One dataset to compare: its name and a way to query it."""

    query: Callable[[str], list[tuple[Any, ...]]]
    dataset: str


def sync_both(run_json: Callable[[dict[str, Any]], None], run_arrow: Callable[[dict[str, Any]], None],
              **request: Any) -> list[str]:
    """A sync on the JSON path, then one on the columnar path, of the same sandbox state; returns the
    tables the columnar one converted."""
    run_json(request)
    converted: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            message = record.getMessage()
            if message.endswith(" as Arrow"):
                converted.append(message.split(" for ")[1].removesuffix(" as Arrow"))

    log = logging.getLogger("sources.highlevel.columnar")
    handler, level = Collect(), log.level
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    try:
        run_arrow(request)
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
    return converted


def change(sb: Sandbox, loc: str) -> dict[str, list[str]]:
    changed = {"updated": sb.update_contacts(loc, 60),  # names, tags, custom values; some lose them all
               "deleted": sb.delete_contacts(loc, 12),
               "moved": sb.move_opportunities(loc, 40),
               "messages": sb.add_messages(loc, ["SMS", "Email", "Call", "WhatsApp"])}
    sb.wait_for_index()
    return changed


# -- DuckDB -------------------------------------------------------------------------------------

@pytest.fixture
def sandbox(highlevel_sandbox_factory: Any) -> Sandbox:
    sb: Sandbox = highlevel_sandbox_factory(contacts_per_location=(1_000, 30), opportunities_per_location=(600, 10),
                                            conversations_per_location=(150, 5), index_lag_s=0.5)
    return sb


def harness(sb: Sandbox, directory: Path) -> Harness:
    directory.mkdir()
    return Harness(sb, directory)


def runner(h: Harness, arrow: bool) -> Callable[[dict[str, Any]], None]:
    def run(request: dict[str, Any]) -> None:
        result = h.run(config={"columnar": arrow}, resources=COLUMNAR_RESOURCES, **request)
        assert result.ok, [(r.location_id, r.error) for r in result.locations]

    return run


def test_duckdb_tables_are_the_same_on_both_paths_before_and_after_changes(sandbox: Sandbox, tmp_path: Path) -> None:
    json_path, columnar = harness(sandbox, tmp_path / "json"), harness(sandbox, tmp_path / "columnar")
    loc = json_path.big
    assert set(sync_both(runner(json_path, False), runner(columnar, True))) == ARROW_TABLES  # Arrow it was
    assert_same_tables(warehouse(json_path), warehouse(columnar))
    # the stored schema is dlt's own: a nested table with its parent, and no resource lent to it
    tags = dlt.attach("highlevel", pipelines_dir=str(columnar.pipelines_dir)).default_schema.tables["contacts__tags"]
    assert tags["parent"] == "contacts" and "resource" not in tags
    assert json_path.query("select count(*) from highlevel.contacts__tags")[0][0] > 1_000

    # datasets that switch paths: made by one, merged into by the other
    to_arrow, to_json = Harness(sandbox, tmp_path / "to_arrow"), Harness(sandbox, tmp_path / "to_json")
    shutil.copytree(tmp_path / "json", tmp_path / "to_arrow")
    shutil.copytree(tmp_path / "columnar", tmp_path / "to_json")

    changed = change(sandbox, loc)
    # reconcile: the sweep turns deletes into hard-delete rows
    assert set(sync_both(runner(json_path, False), runner(columnar, True), reconcile=True)) == ARROW_TABLES
    assert set(sync_both(runner(to_json, False), runner(to_arrow, True), reconcile=True)) == ARROW_TABLES
    for other in (columnar, to_arrow, to_json):
        assert_same_tables(warehouse(json_path), warehouse(other))

    # the second run changed what it had to, so the comparisons above covered merges and deletes
    contacts = {c["id"]: c for c in sandbox.truth_contacts(loc)}
    opportunities = {o["id"]: o for o in sandbox.truth(loc, "opportunities")}
    h = columnar
    assert h.contact_ids() == sorted(contacts) and not set(changed["deleted"]) & set(h.contact_ids())
    names = dict(h.query("select id, first_name from highlevel.contacts"))
    assert all(names[i] == contacts[i]["firstName"] for i in changed["updated"] if i in contacts)
    stages = dict(h.query("select id, pipeline_stage_id from highlevel.opportunities"))
    assert all(stages[i] == opportunities[i]["pipelineStageId"] for i in changed["moved"])
    assert set(changed["messages"]) <= {r[0] for r in h.query("select id from highlevel.messages")}


def warehouse(h: Harness) -> Warehouse:
    return Warehouse(h.query, "highlevel")


def duck_query(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).fetchall()


def opportunity(record_id: str, stage: str, updated: str, values: dict[str, Any]) -> dict[str, Any]:
    return {"id": record_id, "name": f"Deal {record_id}", "monetaryValue": 100, "pipelineStageId": stage,
            "status": "open", "contact": {"id": "c1", "name": "Ann", "tags": ["vip"]}, "followers": [],
            "customFields": [{"id": k, "fieldValue": v} for k, v in values.items()],
            "createdAt": "2024-01-01T00:00:00.000Z", "updatedAt": updated}


def test_hard_deletes_and_value_tombstones_of_arrow_tables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An updated record loses its old values, a deleted one goes with its values: as on the JSON path."""
    monkeypatch.setenv(LOAD_ID_ENV, "true")
    ctx = SimpleNamespace(location_id="loc", report=lambda name: SimpleNamespace(rows=0))  # what RecordTables uses
    definitions = {"f1": {"dataType": "NUMERICAL", "fieldKey": "opportunity.budget"},
                   "f2": {"dataType": "CHECKBOX", "fieldKey": "opportunity.parts"}}
    row_hints = dlt.mark.make_hints(table_name="opportunities", write_disposition="merge", primary_key="id",
                                    columns=OPPORTUNITY_COLUMNS)

    def page(records: list[dict[str, Any]], first: bool) -> list[Any]:
        tables = RecordTables(ctx, "opportunities", row_hints,  # type: ignore[arg-type]
                              custom_values_hints("opportunity_custom_field_values", "opportunity_id"),
                              "opportunity_id", clear_old_values=not first)
        for record in records:
            tables.add(*shape_opportunity(record, "loc", definitions))
        return [*tables.flush(), *tables.delete({"o3"} if not first else set())]

    loads = [page([opportunity("o1", "s1", "2024-02-01T00:00:00.000Z", {"f1": 5, "f2": ["a"]}),
                   opportunity("o2", "s1", "2024-02-01T00:00:00.000Z", {"f1": 7}),
                   opportunity("o3", "s1", "2024-02-01T00:00:00.000Z", {"f2": ["b", "c"]})], first=True),
             page([opportunity("o1", "s2", "2024-03-01T00:00:00.000Z", {"f2": ["d"]}),
                   opportunity("o2", "s2", "2024-03-01T00:00:00.000Z", {})], first=False)]
    warehouses = []
    for arrow in (False, True):
        path = tmp_path / f"arrow_{arrow}.duckdb"
        pipeline = dlt.pipeline(f"tombstones_{arrow}", destination=sync.duckdb_destination(path),
                                pipelines_dir=str(tmp_path / "pipelines"), dataset_name="highlevel")
        for items in copy.deepcopy(loads):
            if arrow:
                items = [out for item in items for out in to_arrow_items("opportunities", item)]
                assert all(isinstance(out.data, pa.Table) for out in items)
            resource = dlt.resource(items, name="opportunities", write_disposition="merge")
            pipeline.run(dlt.source(lambda r=resource: r, name="highlevel", max_table_nesting=2)(),
                         loader_file_format="parquet")
        warehouses.append(Warehouse(functools.partial(duck_query, path), "highlevel"))
    assert_same_tables(*warehouses)
    for w in warehouses:
        assert w.query("select id, pipeline_stage_id from highlevel.opportunities order by id") == [("o1", "s2"),
                                                                                                   ("o2", "s2")]
        assert w.query("select opportunity_id, field_id, value from highlevel.opportunity_custom_field_values") == [
            ("o1", "f2", '["d"]')]


# -- PostgreSQL ---------------------------------------------------------------------------------

@pytest.fixture
def pg_query(postgres_dsn: str) -> Iterator[Callable[[str], list[tuple[Any, ...]]]]:  # noqa: F811
    con = psycopg2.connect(postgres_dsn)
    con.autocommit = True  # no transaction left open to block the next load's DDL

    def query(sql: str) -> list[tuple[Any, ...]]:
        with con.cursor() as cur:
            cur.execute(sql)
            rows: list[tuple[Any, ...]] = cur.fetchall()
            return rows

    yield query
    con.close()


@pytest.mark.warehouse
def test_postgres_tables_are_the_same_on_both_paths(highlevel_sandbox_factory: Any, tmp_path: Path,
                                                    postgres_dsn: str,  # noqa: F811
                                                    pg_query: Callable[[str], list[tuple[Any, ...]]]) -> None:
    sb = highlevel_sandbox_factory(contacts_per_location=(400,), opportunities_per_location=(300,),
                                   conversations_per_location=(60,), index_lag_s=0.5)
    loc = sb.location_ids[0]
    suffix = tmp_path.name[-8:].lower().replace("-", "_")
    datasets = {False: f"json_{suffix}", True: f"columnar_{suffix}"}

    def run(arrow: bool, request: dict[str, Any]) -> None:
        result = sync.run_sync(
            sync.SyncRequest(destination=dlt.destinations.postgres(credentials=postgres_dsn),
                             dataset_name=datasets[arrow], pipelines_dir=str(tmp_path / datasets[arrow]),
                             resources=COLUMNAR_RESOURCES, **request),
            config=validate({"base_url": sb.base_url, "location_ids": [loc], "columnar": arrow}),
            auth=StaticAuthProvider({loc: sb.token_for(loc)}), client_options={"backoff_base_s": 0.05})
        assert result.ok, [(r.location_id, r.error) for r in result.locations]

    warehouses = (Warehouse(pg_query, datasets[False]), Warehouse(pg_query, datasets[True]))
    json_run, arrow_run = functools.partial(run, False), functools.partial(run, True)
    assert set(sync_both(json_run, arrow_run)) == ARROW_TABLES
    assert_same_tables(*warehouses)
    change(sb, loc)
    assert set(sync_both(json_run, arrow_run, reconcile=True)) == ARROW_TABLES
    assert_same_tables(*warehouses)


# -- comparison ---------------------------------------------------------------------------------

def assert_same_tables(a: Warehouse, b: Warehouse) -> None:
    tables_a, tables_b = table_columns(a), table_columns(b)
    assert sorted(tables_a) == sorted(tables_b)
    for table, columns in tables_a.items():
        assert columns == tables_b[table], f"{table}: columns, types, nullability or order differ"
    for table, columns in tables_a.items():
        if table.startswith("_dlt"):
            continue
        names = [c[0] for c in columns]
        if "_dlt_id" in names:  # not the analyst layer's history table and stage views (rows still compared)
            assert_dlt_keys_sound(a, table, names)
            assert_dlt_keys_sound(b, table, names)
        rows_a, rows_b = table_rows(a, table, names), table_rows(b, table, names)
        assert len(rows_a) == len(rows_b), table
        assert rows_a == rows_b, f"{table}: rows differ, e.g. {sorted(set(rows_a) ^ set(rows_b))[:2]}"


def table_columns(w: Warehouse) -> dict[str, list[tuple[Any, ...]]]:
    """Per table: (column, type, nullable) in the table's column order, as the warehouse has them."""
    columns: dict[str, list[tuple[Any, ...]]] = {}
    for table, *column in w.query(
            "select table_name, column_name, data_type, is_nullable from information_schema.columns "
            f"where table_schema = '{w.dataset}' order by table_name, ordinal_position"):
        columns.setdefault(table, []).append(tuple(column))
    return columns


def table_rows(w: Warehouse, table: str, names: list[str]) -> list[str]:
    """Rows without dlt's generated keys; a nested row carries its parent's `id` instead."""
    keep = [n for n in names if n not in DLT_KEYS and (table, n) not in CLOCK_COLUMNS]
    select = ", ".join(f"t.{n}" for n in keep)
    if "_dlt_parent_id" in names:
        sql = (f"select p.id, {select} from {w.dataset}.{table} t "
               f"join {w.dataset}.{parent_of(table)} p on t._dlt_parent_id = p._dlt_id")
    else:
        sql = f"select {select} from {w.dataset}.{table} t"
    return sorted(repr(row) for row in w.query(sql))


def assert_dlt_keys_sound(w: Warehouse, table: str, names: list[str]) -> None:
    """Row keys unique, load ids of completed loads, nested rows tied to an existing root row."""
    t = f"{w.dataset}.{table}"
    assert w.query(f"select count(*) - count(distinct _dlt_id) from {t}") == [(0,)], table
    if "_dlt_load_id" in names:
        assert w.query(f"select count(*) from {t} where _dlt_load_id not in "
                       f"(select load_id from {w.dataset}._dlt_loads)") == [(0,)], table
    if "_dlt_parent_id" in names:
        assert w.query(f"select count(*) from {t} c left join {w.dataset}.{parent_of(table)} p "
                       "on c._dlt_parent_id = p._dlt_id and c._dlt_root_id = p._dlt_id "
                       "where p._dlt_id is null") == [(0,)], table


def parent_of(table: str) -> str:
    """The parent of a nested table one level down (the only depth these resources produce)."""
    return table.rsplit("__", 1)[0]
