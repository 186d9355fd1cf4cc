"""The same syncs into a real PostgreSQL: merges, child tables, custom-value replacement, hard deletes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dlt
import psycopg2

from highlevel_sync.sync import SyncRequest, run_sync
from sources.highlevel.auth import StaticAuthProvider
from sources.highlevel.config import validate


def query(dsn: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg2.connect(dsn) as con, con.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def test_incremental_sync_with_deletes_into_postgres(highlevel_sandbox_factory: Any, tmp_path: Path,
                                                     postgres_dsn: str) -> None:
    sb = highlevel_sandbox_factory(contacts_per_location=(1_200, 80), index_lag_s=0.5)
    locations = sb.location_ids
    dataset = f"hl_{tmp_path.name[-8:].lower().replace('-', '_')}"

    def sync(**kw: Any) -> Any:
        request = SyncRequest(destination=dlt.destinations.postgres(credentials=postgres_dsn), dataset_name=dataset,
                              pipelines_dir=str(tmp_path / "pipelines"),
                              resources=["contacts", "opportunities", "users", "locations"], **kw)
        result = run_sync(request, config=validate({"base_url": sb.base_url, "location_ids": locations}),
                          auth=StaticAuthProvider({loc: sb.token_for(loc) for loc in locations}),
                          client_options={"backoff_base_s": 0.05})
        assert result.ok, [r.error for r in result.locations]
        return result

    sync()
    big = locations[0]
    for loc in locations:
        assert query(postgres_dsn, f"select count(*) from {dataset}.contacts where location_id = %s", loc) == [
            (len(sb.truth_contacts(loc)),)]
    updated = sb.update_contacts(big, 30)
    deleted = sb.delete_contacts(big, 4)
    sb.wait_for_index()
    sync(reconcile=True)
    truth = {c["id"]: c for c in sb.truth_contacts(big)}
    rows = dict(query(postgres_dsn, f"select id, email from {dataset}.contacts where location_id = %s", big))
    assert rows == {cid: c["email"] for cid, c in truth.items()}
    assert set(updated) - set(deleted) <= set(rows)
    # custom values replaced, not accumulated; deleted contacts' children and values gone
    values = query(postgres_dsn, f"select contact_id, field_id from {dataset}.contact_custom_field_values "
                                 "where location_id = %s", big)
    assert sorted(values) == sorted((c["id"], f["id"]) for c in truth.values() for f in c["customFields"])
    orphans = query(postgres_dsn, f"select count(*) from {dataset}.contacts__tags where contact_id = any(%s)",
                    list(deleted))
    assert orphans == [(0,)]
    assert sorted(r[0] for r in query(postgres_dsn, f"select id from {dataset}.deletions")) == sorted(deleted)
    stamp_type = query(postgres_dsn, "select data_type from information_schema.columns where table_schema = %s "
                                     "and table_name = 'contacts' and column_name = 'date_updated'", dataset)
    assert stamp_type == [("timestamp with time zone",)]
