"""The analyst layer on PostgreSQL: the same syncs into PostgreSQL and DuckDB give the same views."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import dlt
import duckdb
import psycopg2

from highlevel_sync.sync import SyncRequest, duckdb_destination, run_sync
from sources.highlevel.auth import StaticAuthProvider
from sources.highlevel.config import validate
from tests.analyst_expect import assert_wide_views_match

RESOURCES = ["contacts", "opportunities", "pipelines", "custom_fields", "users", "locations"]
VIEWS = ("contacts_wide", "opportunities_wide", "opportunity_history", "opportunity_stage_durations",
         "pipeline_funnel")


def comparable(value: Any) -> Any:
    """One form for both drivers: instants in UTC, numbers as rounded floats, JSON parsed."""
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    if isinstance(value, float | Decimal):
        return round(float(value), 6)
    if isinstance(value, str) and value.startswith(("{", "[")):
        return json.loads(value)
    return value


def rows_of(query: Any, dataset: str, view: str, columns: list[str]) -> list[str]:
    names = ", ".join(c for c in columns if not c.startswith("_dlt"))
    return sorted(json.dumps([comparable(v) for v in row], default=str, sort_keys=True)
                  for row in query(f"select {names} from {dataset}.{view}"))


def test_views_match_duckdb_and_the_api_after_stage_moves(highlevel_sandbox_factory: Any, tmp_path: Path,
                                                           postgres_dsn: str) -> None:
    sb = highlevel_sandbox_factory(contacts_per_location=(400, 80), index_lag_s=0.5)
    locations = sb.location_ids
    dataset = f"analyst_{uuid.uuid4().hex[:8]}"
    destinations = {"postgres": dlt.destinations.postgres(credentials=postgres_dsn),
                    "duckdb": duckdb_destination(tmp_path / "hl.duckdb")}

    def sync() -> None:
        for name, destination in destinations.items():
            request = SyncRequest(destination=destination, dataset_name=dataset, resources=RESOURCES,
                                  pipelines_dir=str(tmp_path / name))
            result = run_sync(request, config=validate({"base_url": sb.base_url, "location_ids": locations}),
                              auth=StaticAuthProvider({loc: sb.token_for(loc) for loc in locations}),
                              client_options={"backoff_base_s": 0.05})
            assert result.ok, [r.error for r in result.locations]

    def pg(sql: str) -> list[tuple[Any, ...]]:
        with psycopg2.connect(postgres_dsn) as con, con.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()

    def duck(sql: str) -> list[tuple[Any, ...]]:
        with duckdb.connect(str(tmp_path / "hl.duckdb"), read_only=True) as con:
            return con.execute(sql).fetchall()

    sync()
    moved = sb.move_opportunities(locations[0], 30)
    sb.add_custom_field(locations[1], "Lead Score", "NUMERICAL")
    sb.update_contacts(locations[1], 20)
    sb.wait_for_index()
    sync()

    assert assert_wide_views_match(sb, locations, pg, dataset) > 500
    assert pg(f"select count(*) from {dataset}.opportunity_history where valid_to is not null")[0][0] > 0
    current = pg(f"select id, count(*) from {dataset}.opportunity_history where valid_to is null group by id")
    assert all(n == 1 for _, n in current) and {i for i, _ in current} >= set(moved)
    for view in VIEWS:
        columns = [r[0] for r in pg("select column_name from information_schema.columns where table_schema = "
                                    f"'{dataset}' and table_name = '{view}' order by ordinal_position")]
        duck_columns = [r[0] for r in duck("select column_name from information_schema.columns where table_schema "
                                           f"= '{dataset}' and table_name = '{view}' order by ordinal_position")]
        assert sorted(columns) == sorted(duck_columns), view  # the base tables' order may differ
        assert rows_of(pg, dataset, view, columns) == rows_of(duck, dataset, view, columns), view
    types = dict(pg("select column_name, data_type from information_schema.columns where table_schema = "
                    f"'{dataset}' and table_name = 'contacts_wide' and column_name like 'cf%%'"))
    assert (types["cf_lead_score"], types["cf_last_visit"], types["cf_interests"], types["cf_lead_quality"]) == (
        "double precision", "timestamp with time zone", "jsonb", "text")
