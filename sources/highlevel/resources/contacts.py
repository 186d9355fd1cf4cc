"""Contacts: `POST /contacts/search` sorted by `dateUpdated`, from the stored cursor minus an overlap.

Why this shape:
- It is the only non-deprecated bulk reader, and the only contact endpoint with a change filter.
- `searchAfter` paging, because page numbers stop at 10,000 hits.
- The search index trails writes by seconds and variably, so a strict `>` cursor loses changes:
  each run re-reads `overlap` (default 5 min) behind the newest `dateUpdated` it saw; merge on `id`
  makes the re-read rows harmless.
- The `dateUpdated` filter/sort are not in the official spec. The code does not depend on them:
  it pages until the result set ends, keeps only rows at or after the window start, and takes the
  newest timestamp it saw as the next cursor. If the API ignored the filter the run is still
  correct, only costlier, and the summary says so.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import dlt

from .. import settings
from ..normalize import shape_contact, to_iso_z, to_utc
from ..paginators import RowLimit, search_after_pages
from ..slices import sliced_walk
from .columns import json_column, text, ts
from .context import LocationContext
from .cursors import LocationCursor
from .records import RecordTables

logger = logging.getLogger(__name__)

CONTACT_COLUMNS: dict[str, Any] = {
    "id": text(nullable=False),
    "location_id": text(nullable=False),
    "date_added": ts(),
    "date_updated": ts(dedup_sort="desc"),
    "date_of_birth": ts(),
    "last_activity": ts(),
    "followers": json_column(),
    "attributions": json_column(),
    "additional_emails": json_column(),
    "additional_phones": json_column(),
    "_deleted": {"data_type": "bool", "hard_delete": True},  # set only on rows that delete
    # often null in a whole page: declared so the columns exist from the first load
    **{name: text() for name in ("business_id", "business_name", "website", "company_name", "assigned_to")},
}

VALUE_COLUMNS: dict[str, Any] = {
    "location_id": text(nullable=False),
    "field_id": {"data_type": "text"},
    "field_key": {"data_type": "text"},
    "data_type": {"data_type": "text"},
    "value": {"data_type": "text"},
    "value_number": {"data_type": "double"},
    "value_timestamp": ts(),
    "value_json": json_column(),
    "date_updated": ts(dedup_sort="desc"),
    "_tombstone": {"data_type": "bool", "hard_delete": True},
}


def custom_values_hints(table: str, record_id_field: str) -> Any:
    """Hints for a long custom-value table: an updated record's old values are replaced."""
    return dlt.mark.make_hints(
        table_name=table,
        write_disposition="merge",
        primary_key=[record_id_field, "field_id"],
        merge_key=record_id_field,
        columns={record_id_field: text(nullable=False), **VALUE_COLUMNS},
    )


def contact_hints() -> Any:
    return dlt.mark.make_hints(
        table_name="contacts",
        write_disposition="merge",
        primary_key="id",
        columns=CONTACT_COLUMNS,
        nested_hints={"tags": dlt.mark.make_nested_hints(columns={"tag": text(), "contact_id": text()})},
    )


# The resource writes two tables, each with its own hints (dlt "table variants"). The resource's
# own hints stay minimal on purpose: a variant starts from them, so anything set here would leak
# into the custom-value table.
@dlt.resource(name="contacts", write_disposition="merge")
def contacts(ctx: LocationContext) -> Iterator[Any]:
    """Changed contacts of one location (all of them on the first run) plus their custom values."""
    cursor = LocationCursor(ctx, "contacts")
    until = ctx.options.end_date
    report = ctx.report("contacts")
    reconcile = ctx.options.reconcile
    # a long read goes in chunks, one extract each; a sweep must see every id in one extract
    chunked = not reconcile and not cursor.stateless and ctx.options.chunk_rows > 0
    point = cursor.resume_point() if chunked else None
    if point is not None:
        since, after, seen = to_utc(point.get("since")), point.get("after"), int(point.get("read", 0))
        # earlier chunks loaded values; a contact changed since then comes again and replaces them
        clear_old_values = True
        logger.info("location %s contacts: continuing a chunked read after %d contacts", ctx.location_id, seen)
    else:
        since, after, seen = cursor.window_start(), None, 0
        # a location's first load has no old custom values to clear
        clear_old_values = cursor.stored is not None or ctx.options.full_refresh or until is not None
    definitions = {str(d.get("id")): d for d in ctx.custom_field_definitions()}
    value_hints = custom_values_hints("contact_custom_field_values", "contact_id")
    row_hints = contact_hints()
    deleted = ctx.deleted_ids("contacts")
    tables = RecordTables(ctx, "contacts", row_hints, value_hints, "contact_id", clear_old_values)
    listed: set[str] = set()
    ignored_filter = 0
    last_log = time.monotonic()

    def fetch(request: dict[str, Any]) -> dict[str, Any]:
        return ctx.client.post(
            settings.CONTACTS_SEARCH, version=settings.VERSION_2021_07_28, location_id=ctx.location_id, json=request
        )

    page_size = ctx.options.contacts_page_size

    def walk(lo: int | None, hi: int | None, marker: list[Any] | None) -> Iterator[tuple[list[Any], dict[str, Any]]]:
        return search_after_pages(fetch, _search_body(ctx.location_id, _instant(lo), _instant(hi)), "contacts",
                                  page_size, after=marker)

    # a reconcile sweep lists every contact (no filter) to find the ones that disappeared; the
    # walk goes in time slices side by side (slices.py), the pages still arrive in order
    lo = None if reconcile or since is None else _epoch_ms(since)
    # a chunk cut leaves the walk's slices fetching ahead: the next chunk of this run takes them up
    # where this one stopped instead of fetching those pages again
    walks: dict[str, Any] = ctx.shared("open_walks", lambda _: {})
    left = walks.pop("contacts", None)
    if left is not None and point is not None and left[0] == repr(after):
        pages = left[1]
    else:
        if left is not None:
            left[1].close()
        pages = sliced_walk(walk, "dateUpdated", page_size, lo, None if until is None else _epoch_ms(until), after,
                            max_slices=ctx.options.search_slices)
    limit = RowLimit(ctx.options.chunk_rows if chunked else None, page_size, already=seen)
    last_page: list[dict[str, Any]] = []
    for page, response in limit(pages):  # fetched ahead already (slices.py)
        if isinstance(response.get("total"), int):
            report.total = response["total"]
        for contact in page:
            if reconcile:
                listed.add(str(contact.get("id")))
            if contact.get("id") in deleted:
                continue  # deleted upstream, still in a lagging search index
            row, value_rows = shape_contact(contact, ctx.location_id, definitions)
            changed = row.get("dateUpdated") or row.get("dateAdded")
            if changed is not None and ((since and changed < since) or (until and changed > until)):
                ignored_filter += 0 if reconcile else 1  # not a change: the API ignored the filter
                continue
            cursor.observe(changed)
            tables.add(row, value_rows)
            if ctx.changed_contacts is not None:  # notes are synced: the notes read follows this change
                ctx.changed_contacts[str(row["id"])] = changed
        seen += len(page)
        last_page = page
        yield from tables.flush()
        cursor.save()
        if time.monotonic() - last_log > 5:
            last_log = time.monotonic()
            logger.info("location %s contacts: %d of %s read", ctx.location_id, seen, response.get("total", "?"))

    if ignored_filter:
        report.warnings.append(
            f"contacts search returned {ignored_filter} rows outside the window: the dateUpdated "
            "filter looks ignored by the API, so each run scans every contact"
        )
    if limit.cut:
        marker = last_page[-1].get("searchAfter") or last_page[-1].get("sort")
        walks["contacts"] = (repr(marker), pages)
        cursor.stop_at({"since": to_iso_z(since) if since else None, "after": marker, "read": seen})
        report.more = True
        return
    cursor.stop_at(None)
    yield from tables.delete(deleted | (set(ctx.sweep("contacts", listed)) if reconcile and until is None else set()))
    cursor.finish()


def _epoch_ms(instant: datetime) -> int:
    return int(instant.timestamp() * 1000)


def _instant(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC)


def _search_body(location_id: str, since: datetime | None, until: datetime | None) -> dict[str, Any]:
    body: dict[str, Any] = {"locationId": location_id, "sort": [{"field": "dateUpdated", "direction": "asc"}]}
    bounds: dict[str, str] = {}
    if since is not None:
        bounds["gte"] = to_iso_z(since)
    if until is not None:
        bounds["lte"] = to_iso_z(until)
    if bounds:
        body["filters"] = [{"field": "dateUpdated", "operator": "range", "value": bounds}]
    return body
