"""Conversations and every message, each on the cheapest incremental path the API offers.

- conversations: `GET /conversations/search` has no change filter, but sorts by
  `last_message_date` descending; reading stops at the first row older than the cursor minus the
  overlap, so a quiet location costs one request.
- messages: the location-wide `GET /conversations/messages/export`, sorted by `updatedAt`
  descending, stopping at the cursor minus the overlap. Without `channel` it excludes emails, so
  a second pass asks for `channel=Email`. Never one request per conversation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import dlt

from .. import settings
from ..normalize import convert_timestamps
from ..paginators import export_cursor_pages, prefetch, sort_value_pages
from .columns import json_column, text, ts
from .context import LocationContext, ResourceReport
from .cursors import LocationCursor

CONVERSATION_TIMESTAMPS = ("lastMessageDate", "dateAdded", "dateUpdated", "lastManualMessageDate")
MESSAGE_TIMESTAMPS = ("dateAdded", "dateUpdated", "createdAt", "updatedAt")

CONVERSATION_COLUMNS: dict[str, Any] = {
    "id": text(nullable=False),
    "location_id": text(nullable=False),
    "last_message_date": ts(dedup_sort="desc"),
    "date_added": ts(),
    "date_updated": ts(),
    "tags": json_column(),
    "followers": json_column(),
}
MESSAGE_COLUMNS: dict[str, Any] = {
    "id": text(nullable=False),
    "location_id": text(nullable=False),
    "date_added": ts(),
    "date_updated": ts(dedup_sort="desc"),
    "created_at": ts(),
    "updated_at": ts(),
    "attachments": json_column(),
    "meta": json_column(),
}
# The export channels: no channel = everything except email; then email on its own.
EXPORT_PASSES: tuple[str | None, ...] = (None, "Email")


@dlt.resource(name="conversations", write_disposition="merge", primary_key="id", columns=CONVERSATION_COLUMNS)
def conversations(ctx: LocationContext) -> Iterator[list[dict[str, Any]]]:
    cursor = LocationCursor(ctx, "conversations")
    report = ctx.report("conversations")
    pages = ahead_on_backfill(_conversation_pages(ctx), cursor)
    yield from newest_first(pages, ctx, cursor, CONVERSATION_TIMESTAMPS, report,
                            lambda row: row.get("lastMessageDate") or row.get("dateUpdated") or row.get("dateAdded"))
    cursor.finish()


@dlt.resource(name="messages", write_disposition="merge", primary_key="id", columns=MESSAGE_COLUMNS)
def messages(ctx: LocationContext) -> Iterator[list[dict[str, Any]]]:
    """Newest-updated first, stopping below the cursor minus the overlap.

    The export's `startDate` is not used: which timestamp it filters is unconfirmed (creation time
    would hide old messages whose status changed). Reading `updatedAt` descending and stopping at
    the window is correct whatever that filter does, and costs requests in proportion to changes.
    """
    report = ctx.report("messages")
    for channel in EXPORT_PASSES:
        # each pass has its own cursor: the two streams advance independently
        cursor = LocationCursor(ctx, "messages", None if channel is None else channel.lower())
        pages = ahead_on_backfill(_message_pages(ctx, channel), cursor)
        yield from newest_first(pages, ctx, cursor, MESSAGE_TIMESTAMPS, report, _changed)
        cursor.finish()


def _conversation_pages(ctx: LocationContext) -> Iterator[list[dict[str, Any]]]:
    def fetch(query: dict[str, Any]) -> dict[str, Any]:
        return ctx.client.get(settings.CONVERSATIONS_SEARCH, version=settings.VERSION_2021_04_15,
                              location_id=ctx.location_id, params=query)

    params = {"locationId": ctx.location_id, "sortBy": "last_message_date", "sort": "desc"}
    return sort_value_pages(fetch, params, "conversations", settings.CONVERSATIONS_LIMIT, "lastMessageDate",
                            warn=ctx.report("conversations").warnings.append)


def _message_pages(ctx: LocationContext, channel: str | None) -> Iterator[list[dict[str, Any]]]:
    params: dict[str, Any] = {"locationId": ctx.location_id, "limit": settings.MESSAGES_EXPORT_LIMIT,
                              "sortBy": "updatedAt", "sortOrder": "desc"}
    if channel:
        params["channel"] = channel

    def fetch(query: dict[str, Any]) -> dict[str, Any]:
        return ctx.client.get(settings.MESSAGES_EXPORT, version=settings.VERSION_2021_04_15,
                              location_id=ctx.location_id, params=query)

    return export_cursor_pages(fetch, params, "messages")


def ahead_on_backfill(pages: Iterator[list[dict[str, Any]]], cursor: LocationCursor) -> Iterator[list[dict[str, Any]]]:
    """Fetch ahead only when every page will be read (no cursor yet). An incremental walk stops
    early, and pages fetched ahead of that stop would be wasted requests."""
    return prefetch(pages) if cursor.stored is None and cursor.ctx.options.start_date is None else pages


def newest_first(
    pages: Iterator[list[dict[str, Any]]],
    ctx: LocationContext,
    cursor: LocationCursor,
    timestamps: tuple[str, ...],
    report: ResourceReport,
    stamp_of: Callable[[dict[str, Any]], Any],
) -> Iterator[list[dict[str, Any]]]:
    """Rows of a newest-first stream until the first one older than the window; no page beyond it."""
    since, until = cursor.window_start(), ctx.options.end_date
    for page in pages:
        rows = []
        reached_old = False
        for record in page:
            row = {**record, "locationId": record.get("locationId") or ctx.location_id}
            row.pop("sort", None)
            convert_timestamps(row, timestamps)
            stamp = stamp_of(row)
            if since is not None and stamp is not None and stamp < since:
                reached_old = True  # sorted newest first: everything after this is older still
                break
            if until is not None and stamp is not None and stamp > until:
                continue
            cursor.observe(stamp)
            rows.append(row)
        report.rows += len(rows)
        if rows:
            yield rows
        if reached_old:
            return


def _changed(row: dict[str, Any]) -> Any:
    for name in ("dateUpdated", "updatedAt", "dateAdded", "createdAt"):
        if row.get(name) is not None:
            return row[name]
    return None

