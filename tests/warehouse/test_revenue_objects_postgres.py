"""Revenue, lead capture and custom objects into a real PostgreSQL: every record once, values and UTC
times equal the sandbox's, changes and sweeps land, and the analyst views answer."""

from __future__ import annotations

from collections import Counter
from datetime import UTC
from pathlib import Path
from typing import Any

import dlt

from highlevel_sync.sync import SyncRequest, run_sync
from sources.highlevel.auth import StaticAuthProvider
from sources.highlevel.config import validate
from sources.highlevel.endpoints import LISTS
from sources.highlevel.normalize import to_utc

from .test_postgres import query

RESOURCES = [*LISTS, "contacts", "custom_fields", "object_records", "relations"]


def test_revenue_and_objects_into_postgres(highlevel_sandbox_factory: Any, tmp_path: Path, postgres_dsn: str) -> None:
    # two custom objects of more than one search page each (100); no burst limit, which is not what this tests
    sb = highlevel_sandbox_factory(contacts_per_location=(2_500, 80, 40), index_lag_s=0.3, rate_limit_max=None,
                                   object_records_per_location=((230, 160), (25,)))
    locations = sb.location_ids
    big = locations[0]
    dataset = f"hl_{tmp_path.name[-8:].lower().replace('-', '_')}"

    def sync(**kw: Any) -> None:
        request = SyncRequest(destination=dlt.destinations.postgres(credentials=postgres_dsn), dataset_name=dataset,
                              pipelines_dir=str(tmp_path / "pipelines"), resources=RESOURCES, **kw)
        result = run_sync(request, config=validate({"base_url": sb.base_url, "location_ids": locations,
                                                    "sweep_every_hours": 0, "relations_max_requests": 10_000}),
                          auth=StaticAuthProvider({loc: sb.token_for(loc) for loc in locations}),
                          client_options={"backoff_base_s": 0.05})
        assert result.ok, [r.error for r in result.locations]

    sync()
    for table in [*LISTS, "object_records", "relations"]:
        family = table
        truth = Counter(str(r.get("_id") or r["id"]) for loc in locations for r in sb.truth(loc, family))
        loaded = Counter(str(r[0]) for r in query(postgres_dsn, f"select id from {dataset}.{table}"))
        assert loaded == truth, table
        assert all(n == 1 for n in loaded.values()), table
    # values and UTC timestamps as the sandbox has them
    invoices = {r[0]: r[1:] for r in query(postgres_dsn, f"select id, status, total, amount_paid, issue_date, "
                                                         f"updated_at from {dataset}.invoices")}
    for record in sb.truth(big, "invoices"):
        status, total, paid, issued, updated = invoices[record["_id"]]
        assert (status, total, paid) == (record["status"], float(record["total"]), float(record["amountPaid"]))
        assert issued.astimezone(UTC) == to_utc(record["issueDate"])
        assert updated.astimezone(UTC) == to_utc(record["updatedAt"])
    # an invoice paid long ago is invisible to a plain run, lands with the sweep; a deleted product leaves
    old = sb.pay_invoice(big, days_ago=200)
    gone = sb.delete_product(big)
    deleted_records = sb.delete_records(big, "custom_objects.pets", 2)
    sb.wait_for_index()
    sync(reconcile=True)
    assert query(postgres_dsn, f"select status from {dataset}.invoices where id = %s", old) == [("paid",)]
    assert query(postgres_dsn, f"select count(*) from {dataset}.products where id = %s", gone) == [(0,)]
    assert query(postgres_dsn, f"select count(*) from {dataset}.object_records where id = any(%s)",
                 deleted_records) == [(0,)]
    assert query(postgres_dsn, f"select count(*) from {dataset}.relations where first_record_id = any(%s) "
                               "or second_record_id = any(%s)", deleted_records, deleted_records) == [(0,)]
    swept = {r[0] for r in query(postgres_dsn, f"select id from {dataset}.deletions where detected_by = 'sweep'")}
    assert {gone, *deleted_records} <= swept
    # the analyst views exist and answer on PostgreSQL too
    revenue = query(postgres_dsn, f"select count(*), sum(invoices_paid_total) from {dataset}.contact_revenue")
    assert revenue[0][0] > 0 and revenue[0][1] > 0
    pets = query(postgres_dsn, f"select count(*) from {dataset}.object_pets_wide")
    assert pets == [(len(sb.truth(big, "object_records")) - len(
        [r for r in sb.truth(big, "object_records") if r.get("objectKey") != "custom_objects.pets"]),)]
