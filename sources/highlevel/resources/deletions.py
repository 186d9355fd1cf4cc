"""Deletions: HighLevel's polling endpoints never show them, so they arrive from webhooks
(`ContactDelete`...) or a reconcile sweep, and leave the warehouse two ways:
- the record's resource emits a hard-delete row (`_deleted = true`) into its own table, which
  dlt's merge turns into a DELETE of the row and its child rows (tags), plus a custom-value
  tombstone that clears its custom values;
- a row in `deletions` (resource, id, location_id, deleted_at, detected_by) keeps the history.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import dlt

from ..normalize import custom_value_tombstone, to_iso_z
from .columns import location_key, text, ts
from .context import LocationContext

HARD_DELETE = {"_deleted": {"data_type": "bool", "hard_delete": True}}


def hard_delete_rows(ctx: LocationContext, resource: str, ids: set[str]) -> list[dict[str, Any]]:
    return [{"id": record_id, "locationId": ctx.location_id, "_deleted": True} for record_id in sorted(ids)]


def value_tombstones(ctx: LocationContext, record_id_field: str, ids: set[str]) -> list[dict[str, Any]]:
    return [custom_value_tombstone(record_id_field, record_id, ctx.location_id) for record_id in sorted(ids)]


@dlt.resource(name="deletions", write_disposition="merge", primary_key=("resource", "id", "location_id"),
              columns={**location_key(), "resource": text(nullable=False), "deleted_at": ts(),
                       "detected_by": text()})
def deletions(ctx: LocationContext) -> Iterator[list[dict[str, Any]]]:
    """Every deletion this run applied: known ones (webhooks, earlier sweeps) and this run's sweep.

    Listed last in the source so the sweeps of the other resources have run."""
    rows = [{**d, "resource": resource, "location_id": ctx.location_id}
            for resource, items in ctx.deletions.items() for d in items]
    rows += [dict(d) for d in ctx.swept]
    ctx.report("deletions").rows += len(rows)
    if rows:
        yield rows
    # a complete sweep (or a location's first run, which reads everything) resets the sweep clock
    swept = ctx.resource_state("deletions").setdefault("last_sweep", {})
    if not ctx.failed and ctx.options.end_date is None and (ctx.options.reconcile or ctx.location_id not in swept):
        swept[ctx.location_id] = to_iso_z(datetime.now(UTC))
