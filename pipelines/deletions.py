"""Feed known deletions (webhook inbox) into a location's run, and record what it applied.

The source never touches the inbox: this layer reads pending tombstones before the run, hands
them to the resources, and marks them applied only after the load committed, so a crash in
between re-applies them (hard deletes are idempotent) instead of losing them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sources.highlevel.resources.context import LocationContext

logger = logging.getLogger("highlevel.deletions")

SWEPT_RESOURCES = ("contacts", "opportunities")  # listed in full by the reconcile sweep


def open_inbox(path: str | None) -> Any:
    """The webhook inbox if one exists (the receiver created it); None otherwise."""
    if not path or not Path(path).exists():
        return None
    from sources.highlevel.webhooks.inbox import Inbox

    return Inbox(path)


def prepare(ctx: LocationContext, inbox: Any, pipeline: Any, reconcile: bool, resources: list[str]) -> None:
    """Load pending deletions (and, for a sweep, the ids already loaded) into the context.

    Only for the resources this run syncs: the others' tombstones stay pending until a run applies them.
    """
    if inbox is not None:
        for deletion in inbox.pending_deletions(ctx.location_id):
            if deletion.resource in resources:
                ctx.deletions.setdefault(deletion.resource, []).append(
                    {"id": deletion.id, "deleted_at": deletion.deleted_at, "detected_by": deletion.detected_by})
    if reconcile:
        for resource in (r for r in SWEPT_RESOURCES if r in resources):
            ctx.known_ids[resource] = loaded_ids(pipeline, resource, ctx.location_id)


def forget(ctx: LocationContext, resource: str) -> None:
    """A resource failed: its deletions were not applied, keep them pending for the next run."""
    ctx.deletions.pop(resource, None)
    ctx.swept[:] = [d for d in ctx.swept if d["resource"] != resource]


def loaded_ids(pipeline: Any, table: str, location_id: str) -> set[str]:
    try:
        with pipeline.sql_client() as client:
            rows = client.execute_sql(
                f"select id from {client.make_qualified_table_name(table)} where location_id = %s", location_id)
    except Exception:  # the table does not exist yet: nothing to reconcile against
        return set()
    return {str(row[0]) for row in rows}


def commit(ctx: LocationContext, inbox: Any) -> None:
    """After a successful load: mark inbox tombstones applied, and keep the sweep's findings."""
    if inbox is None:
        return
    applied = [(resource, str(d["id"]), ctx.location_id) for resource, items in ctx.deletions.items()
               for d in items]
    for found in ctx.swept:
        inbox.record_deletion(found["resource"], found["id"], found["location_id"], found["deleted_at"], "sweep")
        applied.append((found["resource"], found["id"], found["location_id"]))
    inbox.mark_deletions_applied(applied)
