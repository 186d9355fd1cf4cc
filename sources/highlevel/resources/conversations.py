"""Conversations and every message, each on the cheapest incremental path the API offers.

- conversations: `GET /conversations/search` has no change filter, but sorts by
  `last_message_date` descending; reading stops at the first row older than the cursor minus the
  overlap, so a quiet location costs one request.
- messages: the location-wide `GET /conversations/messages/export`, sorted by `updatedAt`
  descending, stopping at the cursor minus the overlap. Without `channel` it excludes emails, so
  a second pass asks for `channel=Email`. Never one request per conversation.
- A location's first read of messages (every one of them) goes in creation-time slices side by
  side (slices.py), or one walk through an opaque cursor would take a page's latency per 500
  messages. See `_every_message`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import dlt

from .. import settings
from ..normalize import convert_timestamps, to_iso_z
from ..paginators import Page, export_cursor_answers, export_cursor_pages, prefetch, sort_value_pages
from ..slices import check_range, sliced_walk
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
# Slices of the export ask this much beyond their range: whether `startDate`/`endDate` are
# inclusive, and to what precision they compare, is unconfirmed; a row within it may come twice
EXPORT_SLICE_MARGIN_MS = 1_000


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

    The export's `startDate` is not used for changes: which timestamp it filters is unconfirmed
    (creation time would hide old messages whose status changed). Reading `updatedAt` descending
    and stopping at the window is correct whatever that filter does, and costs requests in
    proportion to changes. A first read takes every message, in any order: see `_every_message`.
    """
    report = ctx.report("messages")
    for channel in EXPORT_PASSES:
        # each pass has its own cursor: the two streams advance independently
        cursor = LocationCursor(ctx, "messages", None if channel is None else channel.lower())
        every = cursor.stored is None and ctx.options.start_date is None  # no window: nothing stops early
        pages = _every_message(ctx, channel) if every else _message_pages(ctx, channel)
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


def _every_message(ctx: LocationContext, channel: str | None) -> Iterator[list[dict[str, Any]]]:
    """Every message of a pass, oldest created first, read in creation-time slices side by side.

    The slices filter by `startDate`/`endDate`, which is creation time here, but unconfirmed
    (CONTRACT §9). Each slice asks a margin beyond its range, whatever the filter's bounds and
    precision, and keeps what comes within it: rows near a boundary may come twice (the merge on
    `id` keeps one), none is dropped. A row created beyond the margin means the filter is ignored or
    on another field (update time: then a message is in the slice of its update, and its creation
    lies before the slice): the read then starts again as one walk, and rows already taken come
    twice. Every message created before the first page's last row is on that page, so the slices
    after it miss none under either field. The export's cursor belongs to its query: the first
    slice starts at the first page's last millisecond instead of going on from it.
    """
    def fetch(query: dict[str, Any]) -> dict[str, Any]:
        return ctx.client.get(settings.MESSAGES_EXPORT, version=settings.VERSION_2021_04_15,
                              location_id=ctx.location_id, params=query)

    def walk(lo: int | None, hi: int | None, _after: list[Any] | None) -> Iterator[tuple[Page, dict[str, Any]]]:
        params: dict[str, Any] = {"locationId": ctx.location_id, "limit": settings.MESSAGES_EXPORT_LIMIT,
                                  "sortBy": "createdAt", "sortOrder": "asc"}
        if channel:
            params["channel"] = channel
        if lo is not None:
            params["startDate"] = _iso(lo - EXPORT_SLICE_MARGIN_MS)
        if hi is not None:
            params["endDate"] = _iso(hi + EXPORT_SLICE_MARGIN_MS)
        for rows, response in export_cursor_answers(fetch, params, "messages"):
            # every row: the answer's order is not relied on either
            check_range(rows, "dateAdded", lo, hi, EXPORT_SLICE_MARGIN_MS)
            yield rows, response

    for rows, _ in sliced_walk(walk, "dateAdded", settings.MESSAGES_EXPORT_LIMIT, None, None,
                               max_slices=ctx.options.search_slices, markers=False, margin=EXPORT_SLICE_MARGIN_MS):
        yield rows


def _iso(ms: int) -> str:
    return to_iso_z(datetime.fromtimestamp(ms / 1000, tz=UTC))


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

