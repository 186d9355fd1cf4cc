"""Relations: `GET /associations/relations/{recordId}` per custom-object record, within a request cap.

Why this shape:
- Relations are listed only per record (CONTRACT §11): one request per record, so reading every
  record's relations every run is out of the question. Like notes, they are opt-in
  (`sync_relations` or `--resources ...,relations`) and capped (`relations_max_requests` records per
  location and run); records over the cap wait in this resource's state (`pending`), which commits
  with the rows it describes, and go first next run. The run summary says how many wait.
- Which records: on a location's first read, and in a sweep, all of them; otherwise those the
  records listing shows created or changed since the last read (`covered`, the newest change seen,
  less the overlap; `recent` remembers the stamps near it so the overlap costs nothing), and those
  RelationCreate/RelationDelete webhooks named. The listing is the one `object_records` read this
  run (`objects.record_stamps`); this resource runs after it.
- A record's listing is complete: a loaded relation of the record it no longer shows was deleted
  (hard delete + `deletions` row); a deleted record (webhook or sweep) takes its relations with it.
- Only relations with a custom-object record on one side are reachable this way (contact-business
  links are not): the records read per record are custom-object records.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import dlt

from .. import settings
from ..errors import ApiError, HighLevelError
from ..normalize import to_iso_z, to_utc
from ..paginators import numbered_pages
from .columns import location_key, text
from .context import LocationContext
from .cursors import prune_recent
from .deletions import HARD_DELETE, hard_delete_rows
from .objects import record_stamps

logger = logging.getLogger(__name__)

RESOURCE = "relations"
RELATION_COLUMNS: dict[str, Any] = {
    **location_key(),
    "id": text(nullable=False),
    "association_id": text(),
    "first_object_key": text(),
    "first_record_id": text(),
    "second_object_key": text(),
    "second_record_id": text(),
    **HARD_DELETE,
}
CHUNK = 64  # records whose relations are requested together (the client paces the location)
FIELDS = ("associationId", "firstObjectKey", "firstRecordId", "secondObjectKey", "secondRecordId")


@dlt.resource(name=RESOURCE, write_disposition="merge", primary_key="id", columns=RELATION_COLUMNS)
def relations(ctx: LocationContext) -> Iterator[list[dict[str, Any]]]:
    """The relations of this run's new and changed records (and of those earlier caps deferred)."""
    state = ctx.resource_state(RESOURCE)
    loc = ctx.location_id
    stamps = record_stamps(ctx)
    gone_records = ctx.deleted_ids("object_records") | {
        str(d["id"]) for d in ctx.swept if d["resource"] == "object_records"}
    recent: dict[str, str] = dict(state.get("recent", {}).get(loc, {}))
    queue = _queue(ctx, state, stamps, recent)
    for record_id in gone_records:
        queue.pop(record_id, None)
    cap = ctx.options.relations_max_requests
    wanted = list(queue)
    take, deferred = wanted[:cap], wanted[cap:]
    reader = _Reader(ctx)
    yield from reader.read(take)
    deferred = reader.unread + deferred
    yield from reader.delete(gone_records)

    report = ctx.report(RESOURCE)
    read = len(take) - len(reader.unread)
    note = f"read the relations of {read:,} record(s)" if read or deferred else ""
    if deferred:
        note += f"; {len(deferred):,} record(s) deferred to the next run (relations_max_requests = {cap:,})"
        logger.info("location %s relations: %d record(s) deferred to the next run", loc, len(deferred))
    report.requests_note = note
    if reader.failure:
        report.failure = f"{reader.failure} (relations of {len(deferred):,} record(s) deferred to the next run)"
    pending = state.setdefault("pending", {})
    if deferred:
        pending[loc] = deferred
    else:
        pending.pop(loc, None)
    state.setdefault("recent", {})[loc] = prune_recent(recent, ctx.options.overlap)
    newest = max((when for when in stamps.values() if when is not None), default=None)
    if newest is not None:
        state.setdefault("covered", {})[loc] = to_iso_z(newest)
    state.setdefault("last_success", {})[loc] = to_iso_z(datetime.now(UTC))


def _queue(ctx: LocationContext, state: dict[str, Any], stamps: dict[str, datetime | None],
           recent: dict[str, str]) -> dict[str, None]:
    """Records whose relations to read, in order (an ordered set): deferred ones, then changed ones,
    then the webhooks'. Updates `recent` with the changes it takes."""
    loc = ctx.location_id
    queue: dict[str, None] = dict.fromkeys(state.get("pending", {}).get(loc, []))
    covered = to_utc(state.get("covered", {}).get(loc))
    everything = ctx.options.reconcile or covered is None or loc not in state.get("last_success", {})
    since = None if everything or covered is None else covered - ctx.options.overlap
    for record_id, changed in stamps.items():
        stamp = to_iso_z(changed) if changed is not None else None
        if since is not None and (changed is None or changed < since or recent.get(record_id) == stamp):
            continue  # unchanged since the last read (or shown again by the overlap)
        queue[record_id] = None
        if stamp is not None:
            recent[record_id] = stamp
    queue.update(dict.fromkeys(ctx.changed_records.get(RESOURCE, {})))
    return queue


class _Reader:
    """Reads records' relations a chunk at a time; remembers what it could not read."""

    def __init__(self, ctx: LocationContext) -> None:
        self.ctx = ctx
        self.deleted = ctx.deleted_ids(RESOURCE)
        self.unread: list[str] = []
        self.failure: str | None = None
        self._emitted: set[str] = set()
        self._gone: set[str] = set()

    def read(self, record_ids: list[str]) -> Iterator[list[dict[str, Any]]]:
        for start in range(0, len(record_ids), CHUNK):
            chunk = record_ids[start:start + CHUNK]
            rows: list[dict[str, Any]] = []
            done = 0
            try:
                for record_id, found in zip(chunk, self.ctx.client.map_pages(self._fetch, chunk), strict=False):
                    rows += self._take(record_id, found)
                    done += 1
            except HighLevelError as exc:
                self.failure = str(exc)
                self.unread.extend(record_ids[start + done:])
            self.ctx.report(RESOURCE).rows += len(rows)
            if rows:
                yield rows
            if self.failure is not None:
                return

    def _fetch(self, record_id: str) -> list[dict[str, Any]]:
        path = settings.RECORD_RELATIONS.format(id=quote(record_id, safe=""))

        def fetch(query: dict[str, Any]) -> dict[str, Any]:
            return self.ctx.client.get(path, version=settings.VERSION_2021_07_28, location_id=self.ctx.location_id,
                                       params=query)

        found = [relation for page in numbered_pages(fetch, {"locationId": self.ctx.location_id}, "relations",
                                                     settings.RELATIONS_PAGE_LIMIT, "skip")
                 for relation in page]
        if not all(isinstance(relation, dict) and relation.get("id") for relation in found):
            raise ApiError(f"location {self.ctx.location_id}: relations of record {record_id} have no ids")
        return found

    def _take(self, record_id: str, found: list[dict[str, Any]]) -> list[dict[str, Any]]:
        listed = {str(relation["id"]) for relation in found}
        known = self.ctx.known_relations.get(record_id, set()) - self._gone
        self._gone.update(self.ctx.sweep(RESOURCE, listed, known))
        rows = []
        for relation in found:
            relation_id = str(relation["id"])
            if relation_id in self.deleted or relation_id in self._emitted:
                continue
            self._emitted.add(relation_id)
            row: dict[str, Any] = {"id": relation_id, "location_id": self.ctx.location_id}
            row.update({_snake(name): relation.get(name) for name in FIELDS})
            rows.append(row)
        return rows

    def delete(self, gone_records: set[str]) -> Iterator[list[dict[str, Any]]]:
        """Hard deletes: relations re-reads no longer list, and every relation of a deleted record."""
        for record_id in sorted(gone_records):
            known = self.ctx.known_relations.get(record_id, set()) - self._gone - self._emitted
            self._gone.update(self.ctx.sweep(RESOURCE, set(), known))
        gone = self._gone | self.deleted
        if gone:
            yield hard_delete_rows(self.ctx, RESOURCE, gone)


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)
