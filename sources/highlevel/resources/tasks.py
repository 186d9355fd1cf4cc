"""Tasks: `POST /locations/{locationId}/tasks/search`, the one location-wide task reader.

Why this shape:
- The search takes filters (contacts, assignee, completed, text) and `skip`/`limit`, but nothing
  about time: no change filter, no sort. So every run re-reads all of a location's tasks
  (`REREAD_IN_FULL` in highlevel_sync/fetch.py: an unchanged listing is not loaded again).
- Paging is by offset; a task created mid-read can shift a page and repeat a row, which the
  merge on `id` absorbs. One deleted mid-read can hide another for this run; the next run sees it.
- Because the listing is complete, a task loaded earlier that it no longer shows was deleted
  upstream: it is hard-deleted and recorded in `deletions` (detected_by = sweep), like a
  TaskDelete webhook's tombstone (detected_by = webhook).
- The spec types the response items as arrays (a doc bug); rows are read as TaskSchema objects,
  with `_id` accepted for `id`. Timestamps (`dueDate`, `dateAdded`, `dateUpdated`) become UTC.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import dlt

from .. import settings
from ..errors import ApiError
from ..normalize import convert_timestamps, to_iso_z
from .columns import location_key, text, ts
from .context import LocationContext
from .deletions import HARD_DELETE, hard_delete_rows

TASK_TIMESTAMPS = ("dueDate", "dateAdded", "dateUpdated")
TASK_COLUMNS: dict[str, Any] = {
    **location_key(),
    "id": text(nullable=False),
    "title": text(),
    "body": text(),
    "assigned_to": text(),
    "contact_id": text(),
    "completed": {"data_type": "bool"},
    "due_date": ts(),
    "date_added": ts(),
    **HARD_DELETE,
}


@dlt.resource(name="tasks", write_disposition="merge", primary_key="id", columns=TASK_COLUMNS)
def tasks(ctx: LocationContext) -> Iterator[list[dict[str, Any]]]:
    """Every task of one location; the ones gone since the last load are deleted."""
    report = ctx.report("tasks")
    deleted = ctx.deleted_ids("tasks")
    listed: set[str] = set()
    pages = 0
    for rows in _pages(ctx):
        pages += 1
        listed.update(str(row["id"]) for row in rows)
        rows = [row for row in rows if row["id"] not in deleted]
        report.rows += len(rows)
        if rows:
            yield rows
    gone = set(deleted)
    if ctx.options.end_date is None:
        missing = ctx.known_ids.get("tasks", set()) - listed - deleted
        if missing and pages > 1:
            # offset paging: a task deleted mid-read shifts the later pages and hides one that
            # exists. Before calling anything deleted, list again: a task hidden once is not
            # hidden twice, unless the account keeps changing under the read
            for rows in _pages(ctx):
                fresh = [row for row in rows if row["id"] not in listed and row["id"] not in deleted]
                listed.update(str(row["id"]) for row in rows)
                report.rows += len(fresh)
                if fresh:
                    yield fresh
        gone.update(ctx.sweep("tasks", listed))
    if gone:
        yield hard_delete_rows(ctx, "tasks", gone)
    ctx.resource_state("tasks").setdefault("last_success", {})[ctx.location_id] = to_iso_z(datetime.now(UTC))


def _pages(ctx: LocationContext) -> Iterator[list[dict[str, Any]]]:
    """The location's tasks, a page of rows at a time, until a short page."""
    path = settings.TASKS_SEARCH.format(location_id=ctx.location_id)
    limit = settings.TASKS_SEARCH_LIMIT
    skip = 0
    seen: set[str] = set()
    while True:
        body = ctx.client.post(path, version=settings.VERSION_2021_07_28, location_id=ctx.location_id,
                               json={"skip": skip, "limit": limit})
        page = body.get("tasks")
        if not isinstance(page, list) or not all(isinstance(task, dict) for task in page):
            raise ApiError(f"location {ctx.location_id}: tasks search response has no 'tasks' list of objects")
        rows = [_row(ctx, task) for task in page]
        ids = {row["id"] for row in rows}
        if rows and ids <= seen:  # the API ignored `skip`: the same page again
            raise ApiError(f"location {ctx.location_id}: tasks search repeated a page at skip {skip}; stopping")
        seen |= ids
        yield rows
        if len(page) < limit:
            return
        skip += len(page)


def _row(ctx: LocationContext, task: dict[str, Any]) -> dict[str, Any]:
    row = dict(task)
    task_id = row.pop("_id", None)
    row["id"] = str(row.get("id") or task_id or "")
    if not row["id"]:
        raise ApiError(f"location {ctx.location_id}: a task in the tasks search response has no id")
    row["locationId"] = ctx.location_id
    return convert_timestamps(row, TASK_TIMESTAMPS)
