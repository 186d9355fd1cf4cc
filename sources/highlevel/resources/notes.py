"""Notes: `GET /contacts/{contactId}/notes`, for the contacts that changed, within a request cap.

Why this shape:
- There is no bulk or location-wide notes reader (CONTRACT §3.1, issue #173) and notes carry no
  `dateUpdated`: one request per contact is the only way, so reading every contact's notes every
  run is out of the question. Notes are read for the contacts this run's contacts read loaded
  (new or changed; a first run loads them all) and for the contacts NoteCreate/NoteUpdate
  webhooks named, since adding a note does not necessarily touch the contact.
- The caller adds the loaded contacts changed since `covered` (the newest change the notes read
  has queued) to `ctx.changed_contacts`: every loaded contact on a location's first notes read,
  else those that runs without notes (`--resources contacts`, a ContactUpdate-triggered run) or a
  run killed between the contacts load and the notes load moved the contacts cursor past.
- Opt-in (`sync_notes` or `--resources ...,notes`), and capped: at most `notes_max_requests`
  requests per location and run, so a backfill never spends the location's daily quota on notes.
  Contacts over the cap wait in this resource's state (`pending`), which commits with the notes
  rows it describes, and go first next run; the run summary says how many were deferred. A
  request that fails (HTTP errors after retries, the daily quota reached, a token refused) stops
  the read: what was read and the queue still commit, and the resource is reported failed.
- A contact's listing is complete, so a note loaded earlier that it no longer shows was deleted
  (hard delete + `deletions` row, detected_by = sweep); a NoteDelete webhook's tombstone does the
  same with detected_by = webhook; a deleted contact takes its notes with it.
- The contacts read re-reads an overlap window each run; a contact seen again with the same
  `dateUpdated` (remembered in `recent`, a few minutes' worth) is not a change and costs nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import dlt

from .. import settings
from ..errors import ApiError, HighLevelError
from ..normalize import convert_timestamps, to_iso_z, to_utc
from .columns import location_key, text, ts
from .context import LocationContext
from .cursors import prune_recent
from .deletions import HARD_DELETE, hard_delete_rows

logger = logging.getLogger(__name__)

NOTE_COLUMNS: dict[str, Any] = {
    **location_key(),
    "id": text(nullable=False),
    "contact_id": text(),
    "body": text(),
    "user_id": text(),
    "title": text(),
    "color": text(),
    "pinned": {"data_type": "bool"},
    "date_added": ts(),
    **HARD_DELETE,
}
# a contact that no longer exists: the spec lists 400 and 401 only; 404 is what a missing record usually gets
NOT_FOUND = (400, 404)
PARALLEL = 4  # requests in flight per location: latency, not the rate budget, bounds a serial walk
ROWS_PER_ITEM = 500


@dlt.resource(name="notes", write_disposition="merge", primary_key="id", columns=NOTE_COLUMNS)
def notes(ctx: LocationContext) -> Iterator[list[dict[str, Any]]]:
    """The notes of this run's changed contacts (and of those deferred by earlier runs' caps)."""
    state = ctx.resource_state("notes")
    loc = ctx.location_id
    recent: dict[str, str] = dict(state.get("recent", {}).get(loc, {}))
    queue = _queue(ctx, list(state.get("pending", {}).get(loc, [])), recent)
    gone_contacts = ctx.deleted_ids("contacts") | {str(d["id"]) for d in ctx.swept if d["resource"] == "contacts"}
    for contact_id in gone_contacts:
        queue.pop(contact_id, None)
    cap = ctx.options.notes_max_requests
    wanted = list(queue)
    take, deferred = wanted[:cap], wanted[cap:]
    reader = _Reader(ctx)
    yield from reader.read(take)
    deferred = reader.unread + deferred
    yield from reader.delete(gone_contacts)

    report = ctx.report("notes")
    read = len(take) - len(reader.unread)
    if deferred:
        report.requests_note = (f"read the notes of {read:,} contact(s); {len(deferred):,} contact(s) deferred to "
                                f"the next run (notes_max_requests = {cap:,})")
        logger.info("location %s notes: %d contact(s) deferred to the next run", loc, len(deferred))
    elif read:
        report.requests_note = f"read the notes of {read:,} contact(s)"
    if reader.failure:
        report.failure = f"{reader.failure} (notes of {len(deferred):,} contact(s) deferred to the next run)"
    pending = state.setdefault("pending", {})
    if deferred:
        pending[loc] = deferred
    else:
        pending.pop(loc, None)
    state.setdefault("recent", {})[loc] = prune_recent(recent, ctx.options.overlap)
    stamps = [when for when in (ctx.changed_contacts or {}).values() if when is not None]
    if stamps:
        covered = to_utc(state.get("covered", {}).get(loc))
        state.setdefault("covered", {})[loc] = to_iso_z(max(stamps) if covered is None else max(covered, *stamps))
    state.setdefault("last_success", {})[loc] = to_iso_z(datetime.now(UTC))


def _queue(ctx: LocationContext, pending: list[str], recent: dict[str, str]) -> dict[str, None]:
    """Contacts whose notes to read, in order: deferred ones first, then this run's changes, then
    the webhooks' (an ordered set). Updates `recent` with the changes it takes."""
    queue: dict[str, None] = dict.fromkeys(pending)
    for contact_id, changed in (ctx.changed_contacts or {}).items():
        stamp = to_iso_z(changed) if changed is not None else None
        if stamp is not None and recent.get(contact_id) == stamp:
            continue  # the contacts read's overlap window showed it again: not a new change
        queue[contact_id] = None
        if stamp is not None:
            recent[contact_id] = stamp
    queue.update(dict.fromkeys(ctx.note_changes))
    return queue


class _Reader:
    """Reads contacts' notes a few at a time; remembers what it could not read."""

    def __init__(self, ctx: LocationContext) -> None:
        self.ctx = ctx
        self.deleted = ctx.deleted_ids("notes")
        self.unread: list[str] = []
        self.failure: str | None = None
        self._rows: list[dict[str, Any]] = []
        self._gone: set[str] = set()

    def read(self, contact_ids: list[str]) -> Iterator[list[dict[str, Any]]]:
        with ThreadPoolExecutor(max_workers=PARALLEL, thread_name_prefix="highlevel-notes") as pool:
            for start in range(0, len(contact_ids), PARALLEL * 4):
                chunk = contact_ids[start:start + PARALLEL * 4]
                futures = [pool.submit(self._fetch, contact_id) for contact_id in chunk]
                for contact_id, future in zip(chunk, futures, strict=True):
                    self._take(contact_id, future)
                if self.failure is not None:
                    self.unread.extend(contact_ids[start + len(chunk):])
                    break
                if len(self._rows) >= ROWS_PER_ITEM:
                    yield self._flush()
        if self._rows:
            yield self._flush()

    def _fetch(self, contact_id: str) -> list[dict[str, Any]] | None:
        """The contact's notes; None when the contact no longer exists."""
        try:
            body = self.ctx.client.get(settings.CONTACT_NOTES.format(contact_id=quote(contact_id, safe="")),
                                       version=settings.VERSION_2021_07_28, location_id=self.ctx.location_id)
        except ApiError as exc:
            if exc.status not in NOT_FOUND:
                raise
            return None
        found = body.get("notes")
        if not isinstance(found, list) or not all(isinstance(note, dict) and note.get("id") for note in found):
            raise ApiError(f"location {self.ctx.location_id}: notes response for contact {contact_id} has no "
                           "'notes' list of notes with ids")
        return found

    def _take(self, contact_id: str, future: Future[list[dict[str, Any]] | None]) -> None:
        try:
            found = future.result()
        except HighLevelError as exc:
            self.unread.append(contact_id)
            self.failure = self.failure or str(exc)
            return
        if found is None:
            logger.info("location %s: contact %s is gone; its notes go with it", self.ctx.location_id, contact_id)
            found = []
        listed = {str(note["id"]) for note in found}
        self._gone.update(self.ctx.sweep("notes", listed, self.ctx.known_notes.get(contact_id, set())))
        for note in found:
            if str(note["id"]) not in self.deleted:
                row = {**note, "id": str(note["id"]), "contactId": note.get("contactId") or contact_id,
                       "locationId": self.ctx.location_id}
                self._rows.append(convert_timestamps(row, ("dateAdded", "dateUpdated")))

    def _flush(self) -> list[dict[str, Any]]:
        rows, self._rows = self._rows, []
        self.ctx.report("notes").rows += len(rows)
        return rows

    def delete(self, gone_contacts: set[str]) -> Iterator[list[dict[str, Any]]]:
        """Hard deletes: notes the re-reads no longer list, webhook tombstones, deleted contacts' notes."""
        for contact_id in sorted(gone_contacts):
            self._gone.update(self.ctx.sweep("notes", set(), self.ctx.known_notes.get(contact_id, set())))
        gone = self._gone | self.deleted
        if gone:
            yield hard_delete_rows(self.ctx, "notes", gone)
