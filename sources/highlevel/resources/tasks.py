"""Tasks: `POST /locations/{locationId}/tasks/search`, the one location-wide task reader.

Why this shape:
- The search takes filters (contacts, assignee, `completed`, text) and `skip`/`limit`, but nothing
  about time: no change filter, no sort. Re-reading every task every run cost a big location 32
  requests for nothing, so a run reads what can still change: the open tasks (`completed: false`).
  Completed ones are read too on the location's first run and in the safety-net sweep
  (`reconcile`), which also catches the rare edit of a completed task. An unchanged listing is not
  loaded again (`REREAD_IN_FULL` in highlevel_sync/fetch.py).
- A task loaded while open that the open listing no longer shows was completed or deleted since
  (or hidden by a shifted offset page). It is read by id through its contact
  (`GET /contacts/{contactId}/tasks/{taskId}`, the loaded row has the contact): an answer is
  merged, a 404 hard-deletes it and records it in `deletions` (detected_by = sweep). Any other
  refusal (400, a missing contacts scope) leaves it for the sweep: a refusal never deletes.
  Deleted completed tasks are found by the sweep, or by a TaskDelete webhook (detected_by = webhook).
- Paging is by offset; a task created mid-read can shift a page and repeat a row, which the
  merge on `id` absorbs. One deleted mid-read can hide another: the full listing lists again
  before calling anything deleted; the open listing reads the hidden one by id.
- The spec types the response items as arrays (a doc bug); rows are read as TaskSchema objects,
  with `_id` accepted for `id`. Timestamps (`dueDate`, `dateAdded`, `dateUpdated`) become UTC.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import dlt

from .. import settings
from ..errors import ApiError, ScopeError
from ..normalize import convert_timestamps, to_iso_z
from ..paginators import pages_ahead
from .columns import location_key, text, ts
from .context import LocationContext
from .deletions import HARD_DELETE, hard_delete_rows

logger = logging.getLogger(__name__)


class Gone(enum.Enum):
    """What a by-id read answers for a task that no longer exists."""

    GONE = "gone"


GONE = Gone.GONE
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
    """Open tasks every run (every task on a first run or a sweep); the ones gone are deleted."""
    report = ctx.report("tasks")
    deleted = ctx.deleted_ids("tasks")
    state = ctx.resource_state("tasks")
    # every task: a sweep, a first run (nothing loaded yet), a backfill window (tasks have no time filter)
    complete = ctx.options.reconcile or ctx.options.full_refresh or ctx.options.end_date is not None \
        or not state.get("last_success", {}).get(ctx.location_id)
    completed_filter = None if complete else False
    listed: set[str] = set()
    pages = 0
    for rows in _pages(ctx, completed_filter):
        pages += 1
        listed.update(str(row["id"]) for row in rows)
        rows = [row for row in rows if row["id"] not in deleted]
        report.rows += len(rows)
        if rows:
            yield rows
    gone = set(deleted)
    if ctx.options.end_date is None and complete:
        missing = ctx.known_ids.get("tasks", set()) - listed - deleted
        if missing and pages > 1:
            # offset paging: a task deleted mid-read shifts the later pages and hides one that
            # exists. Before calling anything deleted, list again: a task hidden once is not
            # hidden twice, unless the account keeps changing under the read
            for rows in _pages(ctx, completed_filter):
                fresh = [row for row in rows if row["id"] not in listed and row["id"] not in deleted]
                listed.update(str(row["id"]) for row in rows)
                report.rows += len(fresh)
                if fresh:
                    yield fresh
        gone.update(ctx.sweep("tasks", listed))
    elif ctx.options.end_date is None:
        found: list[dict[str, Any]] = []
        not_found: set[str] = set()  # answered 404: deleted upstream
        for task_id, contact in sorted(ctx.open_tasks.items()):
            if task_id in listed or task_id in deleted or not contact:
                continue  # listed, known deleted, or not readable by id (the sweep judges it)
            answer = _by_id(ctx, contact, task_id)
            if isinstance(answer, dict):
                found.append(answer)
            elif answer is GONE:
                not_found.add(task_id)
        report.rows += len(found)
        if found:
            yield found
        gone.update(ctx.sweep("tasks", set(), candidates=not_found))
    if gone:
        yield hard_delete_rows(ctx, "tasks", gone)
    state.setdefault("last_success", {})[ctx.location_id] = to_iso_z(datetime.now(UTC))


def _pages(ctx: LocationContext, completed: bool | None) -> Iterator[list[dict[str, Any]]]:
    """The location's tasks (only open or only completed ones, unless `completed` is None), a page
    of rows at a time, until a short page. The answer tells no total: pages go ahead in waves, as
    many as the tasks loaded last time call for, then growing (`pages_ahead`)."""
    path = settings.TASKS_SEARCH.format(location_id=ctx.location_id)
    limit = settings.TASKS_SEARCH_LIMIT

    def query(index: int) -> dict[str, Any]:
        return {"skip": index * limit, "limit": limit, **({} if completed is None else {"completed": completed})}

    def fetch(query: dict[str, Any]) -> dict[str, Any]:
        return ctx.client.post(path, version=settings.VERSION_2021_07_28, location_id=ctx.location_id, json=query)

    def size(body: dict[str, Any]) -> int:
        page = body.get("tasks")
        return len(page) if isinstance(page, list) else 0

    # what the listing held when last loaded: as many pages go at once, no request wasted if unchanged
    loaded = ctx.known_ids.get("tasks") if completed is None else ctx.open_tasks
    seen: set[str] = set()
    for index, body in enumerate(pages_ahead(fetch, query, size, limit, ctx.client.map_pages,
                                             expected_rows=len(loaded) if loaded else None)):
        page = body.get("tasks")
        if not isinstance(page, list) or not all(isinstance(task, dict) for task in page):
            raise ApiError(f"location {ctx.location_id}: tasks search response has no 'tasks' list of objects")
        rows = [_row(ctx, task) for task in page]
        ids = {row["id"] for row in rows}
        if rows and ids <= seen:  # the API ignored `skip`: the same page again
            raise ApiError(f"location {ctx.location_id}: tasks search repeated a page at skip {index * limit}; "
                           "stopping")
        seen |= ids
        yield rows


def _by_id(ctx: LocationContext, contact_id: str, task_id: str) -> dict[str, Any] | Gone | None:
    """One task read through its contact: its row, GONE on a 404, None when the API refused in a
    way that proves nothing (400, a token without `contacts.readonly`): the sweep judges it then."""
    path = settings.CONTACT_TASK.format(contact_id=quote(contact_id, safe=""), task_id=quote(task_id, safe=""))
    try:
        body = ctx.client.get(path, version=settings.VERSION_2021_07_28, location_id=ctx.location_id)
    except ScopeError:
        ctx.report("tasks").warnings.append("reading a task by id needs contacts.readonly; completed and deleted "
                                            "open tasks wait for the sweep")
        return None
    except ApiError as exc:
        if exc.status == 404:
            return GONE
        if exc.status != 400:
            raise
        logger.info("location %s: task %s answered 400 by id; left for the sweep", ctx.location_id, task_id)
        return None
    task = body.get("task")
    if not isinstance(task, dict):
        raise ApiError(f"location {ctx.location_id}: task {task_id} response has no 'task' object")
    return _row(ctx, task)


def _row(ctx: LocationContext, task: dict[str, Any]) -> dict[str, Any]:
    row = dict(task)
    task_id = row.pop("_id", None)
    row["id"] = str(row.get("id") or task_id or "")
    if not row["id"]:
        raise ApiError(f"location {ctx.location_id}: a task in the tasks search response has no id")
    row["locationId"] = ctx.location_id
    return convert_timestamps(row, TASK_TIMESTAMPS)
