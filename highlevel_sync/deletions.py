"""Feed what the webhook inbox knows into a location's run, and record what it applied.

The source never touches the inbox: this layer reads pending tombstones (and the appointments,
invoices, orders... webhooks named, which the run reads by id) before the run, hands them to the
resources, and marks them applied only after the load committed, so a crash in between re-applies
them (hard deletes and reads by id are idempotent) instead of losing them.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import datetime
from pathlib import Path
from typing import Any

from sources.highlevel.endpoints import LISTS
from sources.highlevel.normalize import to_utc
from sources.highlevel.resources.context import LocationContext

logger = logging.getLogger("highlevel.deletions")

LoadedTask = tuple[str | None, bool | None]  # a loaded task's contact id and completed flag
SWEPT_RESOURCES = ("contacts", "opportunities")  # listed in full by the reconcile sweep
# appointments are swept too, but only within the time window the sweep re-reads: see
# `loaded_appointments` and resources/calendars.py


def open_inbox(path: str | None) -> Any:
    """The webhook inbox if one exists (the receiver created it); None otherwise."""
    if not path or not Path(path).exists():
        return None
    from sources.highlevel.webhooks.inbox import Inbox

    return Inbox(path)


def prepare(ctx: LocationContext, inbox: Any, pipeline: Any, reconcile: bool, resources: list[str],
            loaded_tasks: dict[str, LoadedTask] | None = None) -> None:
    """Load pending deletions (and, for a sweep, the ids already loaded) into the context.

    Only for the resources this run syncs: the others' tombstones stay pending until a run applies them.
    `loaded_tasks`: the location's loaded tasks, read for all locations at once (`loaded_tasks_by_location`).
    """
    if inbox is not None:
        for deletion in inbox.pending_deletions(ctx.location_id):
            if deletion.resource in resources:
                ctx.deletions.setdefault(deletion.resource, []).append(
                    {"id": deletion.id, "deleted_at": deletion.deleted_at, "detected_by": deletion.detected_by})
        if "appointments" in resources:
            for change in inbox.pending_changes(ctx.location_id, "appointments"):
                ctx.changed_appointments[change.id] = change.changed_at
        if "notes" in resources:  # NoteCreate/Update: the contact whose notes to read again
            for change in inbox.pending_changes(ctx.location_id, "notes"):
                ctx.note_changes[change.id] = change.changed_at
        # invoices, orders, custom-object records...: read by id; prices: per product; relations: per record
        for resource in (r for r in (*LISTS, "object_records", "relations") if r in resources):
            changed = {change.id: change.changed_at for change in inbox.pending_changes(ctx.location_id, resource)}
            if changed:
                ctx.changed_records[resource] = changed
    if "notes" in resources:
        # contacts loaded since the notes read last looked (all of them the first time): runs without
        # notes, or killed before their notes loaded, moved the contacts cursor past them; the
        # contacts read of this run adds its own changes
        ctx.changed_contacts = loaded_contacts(pipeline, ctx.location_id, notes_covered(ctx))
        ctx.known_notes = loaded_notes(pipeline, ctx.location_id)
    if "relations" in resources:  # a record's re-read relations replace its loaded ones
        ctx.known_relations = loaded_relations(pipeline, ctx.location_id)
    if "tasks" in resources:  # open ones listed every run: a loaded open task not listed is read by id
        ctx.known_ids["tasks"] = set(loaded_tasks or ())
        ctx.open_tasks = {task_id: contact_id for task_id, (contact_id, completed) in (loaded_tasks or {}).items()
                          if not completed}
    if reconcile:
        for resource in (r for r in SWEPT_RESOURCES if r in resources):
            ctx.known_ids[resource] = loaded_ids(pipeline, resource, ctx.location_id)
        if "appointments" in resources:
            ctx.known_appointments = loaded_appointments(pipeline, ctx.location_id)


def forget(ctx: LocationContext, resource: str) -> None:
    """A resource failed: its deletions (and reads by id) were not applied, keep them pending."""
    ctx.deletions.pop(resource, None)
    ctx.swept[:] = [d for d in ctx.swept if d["resource"] != resource]
    if resource == "appointments":
        ctx.changed_appointments.clear()
    if resource == "notes":
        ctx.note_changes.clear()
    ctx.changed_records.pop(resource, None)


def loaded_ids(pipeline: Any, table: str, location_id: str) -> set[str]:
    try:
        with pipeline.sql_client() as client:
            rows = client.execute_sql(
                f"select id from {client.make_qualified_table_name(table)} where location_id = %s", location_id)
    except Exception:  # the table does not exist yet: nothing to reconcile against
        return set()
    return {str(row[0]) for row in rows}


def loaded_ids_by_location(pipeline: Any, table: str, locations: Collection[str]) -> dict[str, set[str]]:
    """The loaded ids of `table` for each of `locations`, in one query (see `loaded_ids_by_table`)."""
    return loaded_ids_by_table(pipeline, [table], locations).get(table, {})


def loaded_ids_by_table(pipeline: Any, tables: Collection[str], locations: Collection[str]
                        ) -> dict[str, dict[str, set[str]]]:
    """The loaded ids of each of `tables`, per location of `locations`: one query per table, all on
    one destination connection.

    Every run sweeps tasks and the lists, for every location: a query (a destination connection,
    ~0.1-0.2 s on DuckDB) per location, or even per table, would cost an agency's no-change run
    more than its requests. A table not created yet has nothing loaded.
    """
    wanted = set(locations)
    loaded: dict[str, dict[str, set[str]]] = {table: {} for table in tables}
    try:
        with pipeline.sql_client() as client:
            existing = {str(row[0]) for row in client.execute_sql(
                "select table_name from information_schema.tables where table_schema = %s",
                client.dataset_name) or ()}
            for table in (t for t in tables if t in existing):
                rows = client.execute_sql(f"select location_id, id from {client.make_qualified_table_name(table)}")
                for location_id, record_id in rows or ():
                    if location_id in wanted:
                        loaded[table].setdefault(location_id, set()).add(str(record_id))
    except Exception:  # no dataset yet: nothing loaded
        logger.debug("loaded ids not read", exc_info=True)
    return loaded


def loaded_tasks_by_location(pipeline: Any, locations: Collection[str]) -> dict[str, dict[str, LoadedTask]]:
    """The loaded tasks of each of `locations`, in one query: id -> (contact id, completed). Every run
    judges the open ones the open listing no longer shows (resources/tasks.py)."""
    wanted = set(locations)
    try:
        with pipeline.sql_client() as client:
            rows = client.execute_sql("select location_id, id, contact_id, completed from "
                                      f"{client.make_qualified_table_name('tasks')}")
    except Exception:  # the table (or a column) does not exist yet: nothing loaded
        return {}
    loaded: dict[str, dict[str, LoadedTask]] = {}
    for location_id, task_id, contact_id, completed in rows or ():
        if location_id in wanted:
            loaded.setdefault(location_id, {})[str(task_id)] = (
                None if contact_id is None else str(contact_id), None if completed is None else bool(completed))
    return loaded


def notes_covered(ctx: LocationContext) -> datetime | None:
    """Contact changes up to this instant (less the overlap) are known to the notes read; None: all
    are owed (notes were never read for the location)."""
    state = (ctx.states or {}).get("notes", {})
    covered = state.get("covered", {}).get(ctx.location_id)
    if covered is None or not state.get("last_success", {}).get(ctx.location_id):
        return None
    moment = to_utc(covered)
    return None if moment is None else moment - ctx.options.overlap


def loaded_contacts(pipeline: Any, location_id: str, since: datetime | None) -> dict[str, datetime | None]:
    """Loaded contacts changed at or after `since` (all of them for None): id -> date_updated."""
    try:
        with pipeline.sql_client() as client:
            table = client.make_qualified_table_name("contacts")
            if since is None:
                rows = client.execute_sql(f"select id, date_updated from {table} where location_id = %s", location_id)
            else:
                rows = client.execute_sql(f"select id, date_updated from {table} where location_id = %s"
                                          " and date_updated >= %s", location_id, since)
    except Exception:  # the table does not exist yet
        return {}
    return {str(contact_id): to_utc(updated) for contact_id, updated in rows}


def loaded_notes(pipeline: Any, location_id: str) -> dict[str, set[str]]:
    """Loaded notes per contact, so re-reading a contact's notes finds the ones deleted since."""
    try:
        with pipeline.sql_client() as client:
            rows = client.execute_sql(
                f"select contact_id, id from {client.make_qualified_table_name('notes')} where location_id = %s",
                location_id)
    except Exception:  # the table does not exist yet
        return {}
    loaded: dict[str, set[str]] = {}
    for contact_id, note_id in rows:
        loaded.setdefault(str(contact_id), set()).add(str(note_id))
    return loaded


def loaded_relations(pipeline: Any, location_id: str) -> dict[str, set[str]]:
    """Loaded relations under each of their two records, so re-reading a record's relations (or
    deleting the record) finds the ones gone since."""
    try:
        with pipeline.sql_client() as client:
            rows = client.execute_sql(
                f"select id, first_record_id, second_record_id from {client.make_qualified_table_name('relations')}"
                " where location_id = %s", location_id)
    except Exception:  # the table does not exist yet
        return {}
    loaded: dict[str, set[str]] = {}
    for relation_id, first, second in rows:
        for record_id in (first, second):
            if record_id is not None:
                loaded.setdefault(str(record_id), set()).add(str(relation_id))
    return loaded


def loaded_appointments(pipeline: Any, location_id: str) -> dict[str, tuple[datetime | None, str | None]]:
    """Loaded appointments: id -> (start time in UTC, calendar id), so the sweep judges only those
    its re-read could have listed."""
    try:
        with pipeline.sql_client() as client:
            rows = client.execute_sql(
                f"select id, start_time, calendar_id from {client.make_qualified_table_name('appointments')}"
                " where location_id = %s", location_id)
    except Exception:  # the table (or a column) does not exist yet: nothing to reconcile against
        return {}
    loaded: dict[str, tuple[datetime | None, str | None]] = {}
    for record_id, start, calendar_id in rows:
        try:
            starts = to_utc(start)
        except ValueError:
            starts = None
        loaded[str(record_id)] = (starts, None if calendar_id is None else str(calendar_id))
    return loaded


def commit(ctx: LocationContext, inbox: Any) -> None:
    """After a successful load: mark inbox tombstones and reads by id applied, keep the sweep's findings."""
    if inbox is None:
        return
    from sources.highlevel.webhooks.inbox import Change

    inbox.mark_changes_applied([Change("appointments", event_id, ctx.location_id, changed_at)
                                for event_id, changed_at in ctx.changed_appointments.items()])
    # read, or deferred into the notes state that this load committed: either way no longer pending
    inbox.mark_changes_applied([Change("notes", contact_id, ctx.location_id, changed_at)
                                for contact_id, changed_at in ctx.note_changes.items()])
    inbox.mark_changes_applied([Change(resource, record_id, ctx.location_id, changed_at)
                                for resource, changed in ctx.changed_records.items()
                                for record_id, changed_at in changed.items()])
    applied = [(resource, str(d["id"]), ctx.location_id) for resource, items in ctx.deletions.items()
               for d in items]
    for found in ctx.swept:
        inbox.record_deletion(found["resource"], found["id"], found["location_id"], found["deleted_at"], "sweep")
        applied.append((found["resource"], found["id"], found["location_id"]))
    inbox.mark_deletions_applied(applied)
