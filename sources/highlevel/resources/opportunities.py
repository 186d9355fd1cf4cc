"""Opportunities and pipelines.

`GET /opportunities/search` has no updated-since filter. The advanced `POST /opportunities/search`
accepts filters and sorts, but the update-time field name is undocumented. So each run *probes*:
the first POST page with a candidate field must come back sorted and filtered (rows at or after the
window start, ascending). If a candidate is refused or its rows prove the filter was ignored, the
next candidate is tried, and finally a full `GET` scan that keeps only rows whose `updatedAt` is in
the window. Both paths produce the same rows; the summary reports which one ran and what it cost.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import dlt

from .. import settings
from ..errors import ApiError, AuthError
from ..normalize import convert_timestamps, custom_value_row, to_iso_z, to_utc
from ..paginators import prefetch, search_after_pages, start_after_pages
from .columns import json_column, location_key, text, ts
from .contacts import custom_values_hints
from .context import LocationContext
from .cursors import LocationCursor
from .records import RecordTables

logger = logging.getLogger(__name__)

OPPORTUNITY_TIMESTAMPS = ("createdAt", "updatedAt", "lastStatusChangeAt", "lastStageChangeAt", "lastActionDate",
                          "dateAdded", "dateUpdated")
OPPORTUNITY_COLUMNS: dict[str, Any] = {
    "id": text(nullable=False),
    "location_id": text(nullable=False),
    "created_at": ts(),
    "updated_at": ts(dedup_sort="desc"),
    "last_status_change_at": ts(),
    "last_stage_change_at": ts(),
    "last_action_date": ts(),
    "monetary_value": {"data_type": "double"},
    "followers": json_column(),
    "contact__tags": json_column(),
    "_deleted": {"data_type": "bool", "hard_delete": True},
}


def shape_opportunity(
    record: dict[str, Any], location_id: str, definitions: dict[str, dict[str, Any]]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    row = dict(record)
    row.pop("searchAfter", None)
    row.pop("sort", None)
    custom = row.pop("customFields", None) or []
    row["locationId"] = row.get("locationId") or location_id
    convert_timestamps(row, OPPORTUNITY_TIMESTAMPS)
    contact = row.get("contact")
    if isinstance(contact, dict) and "tags" in contact:
        row["contact"] = {**contact}
        row["contact__tags"] = row["contact"].pop("tags")
    values = []
    for item in custom:
        if isinstance(item, dict) and item.get("id"):
            raw = item.get("fieldValue", item.get("value"))
            for key in ("fieldValueString", "fieldValueNumber", "fieldValueArray", "fieldValueDate"):
                if raw is None and key in item:
                    raw = item[key]
            value_row = custom_value_row("opportunity_id", row["id"], location_id, str(item["id"]), raw,
                                         definitions.get(str(item["id"])))
            value_row["date_updated"] = row.get("updatedAt")
            values.append(value_row)
    return row, values


# Two tables per resource: hints live on the table variants (see contacts.py for why).
@dlt.resource(name="opportunities", write_disposition="merge")
def opportunities(ctx: LocationContext) -> Iterator[Any]:
    cursor = LocationCursor(ctx, "opportunities")
    definitions = {str(d.get("id")): d for d in ctx.custom_field_definitions()}
    value_hints = custom_values_hints("opportunity_custom_field_values", "opportunity_id")
    row_hints = dlt.mark.make_hints(table_name="opportunities", write_disposition="merge", primary_key="id",
                                    columns=OPPORTUNITY_COLUMNS)
    since, until = cursor.window_start(), ctx.options.end_date
    deleted = ctx.deleted_ids("opportunities")
    reconcile = ctx.options.reconcile and until is None
    clear_old_values = cursor.stored is not None or ctx.options.full_refresh or until is not None
    tables = RecordTables(ctx, "opportunities", row_hints, value_hints, "opportunity_id", clear_old_values)
    listed: set[str] = set()

    for page in prefetch(_changed_pages(ctx, None if reconcile else since, until)):
        for record in page:
            listed.add(str(record.get("id")))
            if record.get("id") in deleted:
                continue
            row, value_rows = shape_opportunity(record, ctx.location_id, definitions)
            changed = row.get("updatedAt") or row.get("createdAt")
            if since is not None and changed is not None and changed < since:
                continue
            if until is not None and changed is not None and changed > until:
                continue
            cursor.observe(changed)
            tables.add(row, value_rows)
        yield from tables.flush()
        cursor.save()
    yield from tables.delete(deleted | (set(ctx.sweep("opportunities", listed)) if reconcile else set()))
    cursor.finish()


def _changed_pages(ctx: LocationContext, since: datetime | None, until: datetime | None) -> Iterator[list[Any]]:
    """Try the cheap POST path with each candidate field; fall back to a full GET scan.

    The probe runs on backfills too: 500 rows per POST page beat 100 per GET page.
    """
    report = ctx.report("opportunities")
    for field in settings.OPPORTUNITY_UPDATE_FIELDS:
        pages = _post_search(ctx, field, since, until)
        try:
            first = next(pages, None)
            if first is None:
                # empty: no changes, or a filter on a field the index does not have (which matches
                # nothing). Only a hit just before the window tells the two apart.
                if since is None or _field_works(ctx, field, since):
                    report.requests_note = f"POST search on {field}: no changes"
                    return
                report.probes.append(f"{field}: matches nothing")
                continue
        except (ApiError, AuthError) as exc:
            if isinstance(exc, ApiError) and exc.status not in (400, 403, 404, 422):
                raise
            logger.info("location %s: POST opportunity search with %s refused (%s)", ctx.location_id, field, exc)
            report.probes.append(f"{field}: refused")
            continue
        if _honoured(first, since):
            report.requests_note = f"POST search {'filtered' if since else 'sorted'} on {field}"
            yield first
            yield from pages
            return
        logger.info("location %s: POST opportunity search ignored the %s filter", ctx.location_id, field)
        report.probes.append(f"{field}: filter ignored")
    report.requests_note = "full GET scan (no usable update filter)"
    yield from _get_scan(ctx)


def _field_works(ctx: LocationContext, field: str, since: datetime) -> bool:
    """True when a range on `field` finds the newest opportunity before `since` (so it is real)."""
    body = {"locationId": ctx.location_id, "limit": 1, "sort": [{"field": field, "direction": "desc"}],
            "filters": [{"field": field, "operator": "range", "value": {"lt": to_iso_z(since)}}]}
    rows = ctx.client.post(settings.OPPORTUNITIES_SEARCH, version=settings.VERSION_2021_07_28,
                           location_id=ctx.location_id, json=body).get("opportunities") or []
    if not rows:
        return False
    try:
        stamp = to_utc(rows[0].get("updatedAt") or rows[0].get("dateUpdated"))
    except ValueError:
        return False
    return stamp is not None and stamp < since


def _post_search(
    ctx: LocationContext, field: str, since: datetime | None, until: datetime | None
) -> Iterator[list[Any]]:
    bounds = {}
    if since is not None:
        bounds["gte"] = to_iso_z(since)
    if until is not None:
        bounds["lte"] = to_iso_z(until)
    body: dict[str, Any] = {"locationId": ctx.location_id, "sort": [{"field": field, "direction": "asc"}]}
    if bounds:
        body["filters"] = [{"field": field, "operator": "range", "value": bounds}]

    def fetch(request: dict[str, Any]) -> dict[str, Any]:
        return ctx.client.post(settings.OPPORTUNITIES_SEARCH, version=settings.VERSION_2021_07_28,
                               location_id=ctx.location_id, json=request)

    for page, response in search_after_pages(fetch, body, "opportunities", settings.OPPORTUNITIES_POST_LIMIT, "limit"):
        if isinstance(response.get("total"), int):
            ctx.report("opportunities").total = response["total"]
        yield page


def _honoured(page: list[dict[str, Any]], since: datetime | None) -> bool:
    """A filtered, sorted page: every row in the window and in ascending update order."""
    stamps = []
    for row in page:
        try:
            stamp = to_utc(row.get("updatedAt") or row.get("dateUpdated"))
        except ValueError:
            return False
        if stamp is None or (since is not None and stamp < since):
            return False
        stamps.append(stamp)
    return stamps == sorted(stamps)


def _get_scan(ctx: LocationContext) -> Iterator[list[Any]]:
    def fetch(query: dict[str, Any]) -> dict[str, Any]:
        return ctx.client.get(settings.OPPORTUNITIES_SEARCH, version=settings.VERSION_2021_07_28,
                              location_id=ctx.location_id, params=query)

    params = {"location_id": ctx.location_id, "status": "all"}
    yield from start_after_pages(fetch, params, "opportunities", settings.OPPORTUNITIES_GET_LIMIT)


@dlt.resource(name="pipelines", write_disposition="merge", primary_key="id", merge_key="location_id",
              columns=location_key())
def pipelines(ctx: LocationContext) -> Iterator[list[dict[str, Any]]]:
    """Pipelines with their stages (child table `pipelines__stages`), replaced per location."""
    body = ctx.client.get(settings.PIPELINES, version=settings.VERSION_2021_07_28, location_id=ctx.location_id,
                          params={"locationId": ctx.location_id})
    items = body.get("pipelines")
    if not isinstance(items, list):
        raise ApiError(f"location {ctx.location_id}: pipelines response has no 'pipelines' list")
    rows = []
    for pipeline in items:
        row = {**pipeline, "locationId": ctx.location_id}
        row["stages"] = [{**stage, "pipeline_id": pipeline.get("id"), "location_id": ctx.location_id}
                         for stage in pipeline.get("stages") or [] if isinstance(stage, dict)]
        rows.append(row)
    ctx.report("pipelines").rows += len(rows)
    if rows:
        yield rows
