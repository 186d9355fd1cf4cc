"""Custom-object records: `POST /objects/{key}/records/search` per custom object, re-read in full.

Why this shape:
- The search has no change filter (CONTRACT §11), so every run re-reads each custom object's
  records with `searchAfter` at the largest page the API takes (100), the objects side by side
  (`client.map_pages`); an unchanged read loads nothing (the run's digest, `REREAD_IN_FULL`).
- Only custom objects (`standard: false`) are read: the standard ones (contact, opportunity,
  business) are synced as their own tables, and their search is refused. The schema listing is
  shared with `object_schemas` and the object fields (`lists.all_rows`): a location without
  custom objects costs that one request and nothing more.
- Merged on `location_id` like the full lists: a read replaces its location's rows, so a record
  the search no longer shows leaves the table and gets a `deletions` row (sweep). A RecordDelete
  webhook's record is dropped from the read (the search trails writes) and recorded as a webhook
  deletion.
- RecordCreate/RecordUpdate webhooks name a record but not its object: it is read by id
  (`GET /objects/{key}/records/{id}`: direct, no index lag) under the object whose search showed
  it, else under each custom object until one has it. Its search row is held back, so the load
  carries one version of it.
- Rows keep what search and the read by id both give: `properties` whole (JSON, keyed by the field
  key without the object prefix), `owner` and `followers` (user ids, JSON), `created_at` and
  `updated_at` in UTC (`createdAt`/`updatedAt` in search, `dateAdded`/`dateUpdated` by id).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any
from urllib.parse import quote

import dlt

from .. import settings
from ..errors import ApiError
from ..normalize import to_utc
from ..paginators import search_after_pages
from .columns import json_column, location_key, text, ts
from .context import LocationContext
from .lists import all_rows

RESOURCE = "object_records"
STAMPS = "object_record_stamps"  # the ctx.shared key of this run's listed records: id -> updated_at
RECORD_COLUMNS: dict[str, Any] = {
    **location_key(),
    "id": text(nullable=False),
    "object_key": text(),
    "properties": json_column(),
    "owner": json_column(),
    "followers": json_column(),
    "created_at": ts(),
    "updated_at": ts(),
}
NOT_THERE = (400, 404)  # another object's key (or a deleted record) answers 404; the spec lists 400


def custom_object_keys(ctx: LocationContext) -> list[str]:
    """The location's custom objects' keys, from the run's one schema listing."""
    return [str(schema["key"]) for schema in all_rows(ctx, "object_schemas")
            if schema.get("standard") is False and schema.get("key")]


def shape_record(ctx: LocationContext, object_key: str, record: dict[str, Any]) -> dict[str, Any]:
    record_id = record.get("id")
    if record_id in (None, ""):
        raise ApiError(f"location {ctx.location_id}: a {object_key} record has no id")
    return {"id": str(record_id), "location_id": ctx.location_id, "object_key": object_key,
            "properties": record.get("properties") or {}, "owner": list(record.get("owner") or []),
            "followers": list(record.get("followers") or []),
            "created_at": to_utc(record.get("createdAt", record.get("dateAdded"))),
            "updated_at": to_utc(record.get("updatedAt", record.get("dateUpdated")))}


def search_object(ctx: LocationContext, object_key: str) -> list[dict[str, Any]]:
    """Every record of one custom object, newest first, shaped."""
    # every key is required, `page` included (ignored once searchAfter is set); nothing else is allowed
    body = {"locationId": ctx.location_id, "page": 1, "pageLimit": settings.OBJECT_RECORDS_PAGE_LIMIT,
            "query": "", "searchAfter": []}
    path = settings.OBJECTS.format(key=quote(object_key, safe="."))

    def fetch(request: dict[str, Any]) -> dict[str, Any]:
        return ctx.client.post(path, version=settings.VERSION_2021_07_28, location_id=ctx.location_id, json=request)

    pages = search_after_pages(fetch, body, "records", settings.OBJECT_RECORDS_PAGE_LIMIT, keep_page=True)
    return [shape_record(ctx, object_key, record) for page, _ in pages for record in page]


@dlt.resource(name=RESOURCE, write_disposition="merge", primary_key="id", merge_key="location_id",
              columns=RECORD_COLUMNS)
def object_records(ctx: LocationContext) -> Iterator[list[dict[str, Any]]]:
    """Every record of every custom object of the location (webhook-named ones read by id)."""
    report = ctx.report(RESOURCE)
    keys = custom_object_keys(ctx)
    deleted = ctx.deleted_ids(RESOURCE)
    named = set(ctx.changed_records.get(RESOURCE, {})) - deleted
    held: dict[str, str] = {}  # a named record the search showed -> its object
    stamps: dict[str, datetime | None] = {}
    for rows in ctx.client.map_pages(lambda key: search_object(ctx, key), keys):  # the objects side by side
        kept = []
        for row in rows:
            if row["id"] in deleted:
                continue
            if row["id"] in named:
                held[row["id"]] = row["object_key"]
                continue
            kept.append(row)
            stamps[row["id"]] = row["updated_at"] or row["created_at"]
        report.rows += len(kept)
        if kept:
            yield kept
    if named and keys:
        found = read_by_id(ctx, keys, held, sorted(named))
        stamps.update((row["id"], row["updated_at"] or row["created_at"]) for row in found)
        report.rows += len(found)
        if found:
            yield found
    ctx.sweep(RESOURCE, set(stamps))
    ctx.shared(STAMPS, lambda _: stamps)  # the relations read (later in the run) reads this listing
    if not keys:
        report.requests_note = "no custom objects"


def read_by_id(ctx: LocationContext, keys: list[str], held: dict[str, str], ids: list[str]) -> list[dict[str, Any]]:
    """The named records read by id, in parallel; one no object has any more is left out (gone)."""

    def fetch(record_id: str) -> dict[str, Any] | None:
        for key in [held[record_id]] if record_id in held else keys:
            path = settings.OBJECT_RECORD.format(key=quote(key, safe="."), id=quote(record_id, safe=""))
            try:
                body = ctx.client.get(path, version=settings.VERSION_2021_07_28, location_id=ctx.location_id)
            except ApiError as exc:
                if exc.status in NOT_THERE:
                    continue
                raise
            record = body.get("record")
            if not isinstance(record, dict):
                raise ApiError(f"location {ctx.location_id}: {path} answer has no 'record' object")
            return shape_record(ctx, key, record)
        return None

    return [row for row in ctx.client.map_pages(fetch, ids) if row is not None]


def record_stamps(ctx: LocationContext) -> dict[str, datetime | None]:
    """id -> last change of every custom-object record: what this run's records read listed, or
    (when the run does not read records) a search of its own."""

    def search(ctx: LocationContext) -> dict[str, datetime | None]:
        deleted = ctx.deleted_ids(RESOURCE)
        return {row["id"]: row["updated_at"] or row["created_at"]
                for rows in ctx.client.map_pages(lambda key: search_object(ctx, key), custom_object_keys(ctx))
                for row in rows if row["id"] not in deleted}

    return ctx.shared(STAMPS, search)  # type: ignore[no-any-return]
