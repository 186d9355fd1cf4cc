"""Opportunities and pipelines.

`GET /opportunities/search` has no updated-since filter. The advanced `POST /opportunities/search`
accepts filters and sorts, but the update-time field name is undocumented and accounts answer the
route differently (CONTRACT §9). So it is *probed*: the first POST page with a candidate field must
come back sorted and filtered (rows at or after the window start, ascending). Any other answer but
a bad token or the rate budget (400/403/404/405/422, 5xx, a filter ignored, an empty or non-JSON
body) is a refusal: the next candidate is tried when the answer was about the field, and finally
the documented full `GET` scan, which keeps only rows whose `updatedAt` is in the window. Both paths
produce the same rows; a refusal never fails the resource. What the probe found is kept per
location in state for a day, so steady runs pay no probe requests; the summary says which path ran.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import dlt

from .. import settings
from ..errors import ApiError, HighLevelError
from ..normalize import convert_timestamps, custom_value_row, to_iso_z, to_utc
from ..paginators import prefetch, search_after_pages, start_after_pages
from .columns import json_column, location_key, text, ts
from .contacts import custom_values_hints
from .context import LocationContext
from .cursors import LocationCursor
from .probe import ProbeMemory, Refusal, Unusable, refusal_of
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

    memory = ctx.resource_state("opportunities").setdefault("probe", {})
    for page in prefetch(_changed_pages(ctx, memory, None if reconcile else since, until)):
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


def _changed_pages(
    ctx: LocationContext, memory: dict[str, Any], since: datetime | None, until: datetime | None
) -> Iterator[list[Any]]:
    """The changed opportunities: by POST search on an update field if one works, else a GET scan.

    `memory` (the resource state's `probe` section) keeps per location what the last probe found,
    so a steady run goes straight to the path that works: the field's first page is still checked
    (rows filtered and sorted) at no extra cost, and a refusal then re-probes at once. The probe
    runs on backfills too: 500 rows per POST page beat 100 per GET page.
    """
    report = ctx.report("opportunities")
    probe = ProbeMemory(memory, ctx.location_id)
    known = probe.recall()
    remembered_at = f"remembered from the probe at {known.get('at')}" if known is not None else ""
    if known is not None and known.get("path") == "get":
        report.requests_note = f"full GET scan (POST search {known.get('reason')}; {remembered_at})"
        yield from _get_scan(ctx)
        return
    remembered = known.get("field") if known is not None else None
    candidates = sorted(settings.OPPORTUNITY_UPDATE_FIELDS, key=lambda f: f != remembered)
    refusals: list[Refusal] = []
    for field in candidates:
        trusted = field == remembered
        outcome = _try_field(ctx, field, since, until, trusted)
        if isinstance(outcome, Refusal):
            logger.info("location %s: POST opportunity search on %s unusable (%s)",
                        ctx.location_id, field, outcome.reason)
            report.probes.append(f"{field}: {outcome.reason}")
            report.total = None  # a refused answer's `total` describes nothing we read
            refusals.append(outcome)
            if trusted:
                probe.forget()
            if outcome.whole_route:
                break
            continue
        first, pages, proven = outcome
        how = remembered_at if trusted else "probed now"
        if not trusted and proven:
            probe.remember("post", field, "works")
        if first:
            report.requests_note = f"POST search {'filtered' if since else 'sorted'} on {field} ({how})"
            yield first
            yield from pages
        else:
            report.requests_note = f"POST search on {field}: no changes ({how})"
        return
    reason = "; ".join(f"{r.field}: {r.reason}" if not r.whole_route else r.reason for r in refusals)
    if all(r.lasting for r in refusals):
        probe.remember("get", None, f"refused ({reason})")
    report.requests_note = f"full GET scan (POST search refused ({reason}); probed now)"
    yield from _get_scan(ctx)


def _try_field(
    ctx: LocationContext, field: str, since: datetime | None, until: datetime | None, trusted: bool
) -> tuple[list[Any], Iterator[list[Any]], bool] | Refusal:
    """The first page of the POST search on `field` and the rest to come, or why it cannot be used.

    Also says whether the field is *proven* (worth remembering): a filtered, sorted page, or an
    empty window that a range check showed to be real. A `trusted` (remembered) field skips that
    check, which is what makes a run without changes cost one request.
    """
    pages = _post_search(ctx, field, since, until)
    try:
        first = next(pages, None)
        if first is None:
            if trusted or since is None:
                return [], pages, False
            # empty: no changes, or a filter on a field the index does not have (which matches
            # nothing). Only a hit just before the window tells the two apart.
            if _field_works(ctx, field, since):
                return [], pages, True
            return Refusal(field, "matches nothing", whole_route=False)
    except HighLevelError as exc:
        refusal = refusal_of(field, exc)
        if refusal is None:
            raise
        return refusal
    if not _honoured(first, since):
        return Refusal(field, "filter ignored", whole_route=False)
    return first, pages, True


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
        response = ctx.client.post(settings.OPPORTUNITIES_SEARCH, version=settings.VERSION_2021_07_28,
                                   location_id=ctx.location_id, json=request)
        if not isinstance(response.get("opportunities"), list):
            raise Unusable(f"location {ctx.location_id}: POST {settings.OPPORTUNITIES_SEARCH} answered without "
                            f"an 'opportunities' list (keys {sorted(response)[:8]})")
        return response

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
