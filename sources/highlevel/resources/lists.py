"""The generic reader of the declarative list table (`endpoints.py`): one reader, many tables.

Why this shape:
- Forms, surveys, submissions, invoices, payments and products differ only in the facts a row of
  `endpoints.LISTS` states, so one reader pages them all (`numbered_pages`: once the first answer
  tells the total, the other pages go out together) and shapes every row the same way: `id` from
  the API's `_id`/`id`, `location_id`, timestamps to UTC.
- `full` lists are merged with `merge_key="location_id"`: a read replaces exactly its location's
  rows, so a record the listing no longer shows leaves the table; it is also recorded in
  `deletions` (detected_by = sweep). An unchanged listing loads nothing (the run's digest).
- `recent` lists (payments) re-read what was created in the last `payments_days_back` days; the
  safety-net sweep re-reads them in full and finds deletions; records named by webhooks are read
  by id. A record the API no longer has (404) is a deletion.
- `created` lists (submissions) read from the day before their cursor: the filter takes dates and
  the API's own default is "the last month", so the first run asks from `start_date` (or 2000-01-01)
  explicitly or years of submissions would be silently missing.
- Prices hang off products (one request per product): they are read when the product listing
  changed, when a price webhook named a product, or in a sweep; otherwise a run costs nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import dlt
import orjson
from dlt.common.normalizers.naming.snake_case import NamingConvention

from ..endpoints import LISTS, ListEndpoint
from ..errors import ApiError
from ..normalize import convert_timestamps, to_iso_z
from ..paginators import numbered_pages
from .columns import json_column, location_key, text, ts
from .context import LocationContext
from .cursors import LocationCursor
from .deletions import HARD_DELETE, hard_delete_rows

EARLIEST = date(2000, 1, 1)  # before any HighLevel account: "from the beginning"
_NAMING = NamingConvention()


def column(name: str) -> str:
    """The column dlt makes of an API field (`amountPaid` -> `amount_paid`)."""
    return str(_NAMING.normalize_identifier(name))


def list_columns(spec: ListEndpoint) -> dict[str, Any]:
    columns: dict[str, Any] = {**location_key(), "id": text(nullable=False)}
    columns.update({column(name): ts() for name in spec.timestamps})
    columns.update({column(name): json_column() for name in spec.json_columns})
    columns.update({column(name): {"data_type": "double"} for name in spec.double_columns})
    if spec.freshness != "full":
        columns.update(HARD_DELETE)
    return columns


def list_resource(spec: ListEndpoint) -> Any:
    """The dlt resource of one table row: its hints are the table contract, its body the reader."""
    merge_key = "location_id" if spec.freshness == "full" else None
    read = {"product_prices": read_prices, "products": read_shared, "object_schemas": read_shared}.get(
        spec.resource, read_list)

    def body(ctx: LocationContext) -> Iterator[list[dict[str, Any]]]:
        yield from read(ctx, spec)

    body.__name__ = body.__qualname__ = spec.resource
    body.__doc__ = f"`{spec.path}` ({spec.freshness}); see resources/lists.py"
    keys: dict[str, Any] = {"merge_key": merge_key} if merge_key else {}
    return dlt.resource(body, name=spec.resource, write_disposition="merge", primary_key="id",
                        columns=list_columns(spec), **keys)


def shape(ctx: LocationContext, spec: ListEndpoint, record: dict[str, Any], **extra: Any) -> dict[str, Any]:
    row = dict(record)
    record_id = row.pop(spec.id_field, None) if spec.id_field != "id" else row.get("id")
    if record_id in (None, ""):
        raise ApiError(f"location {ctx.location_id}: a {spec.resource} record has no {spec.id_field}")
    row["id"] = str(record_id)
    row.pop("_id", None)
    row["locationId"] = ctx.location_id
    row.update(extra)
    return convert_timestamps(row, spec.timestamps)


def pages(ctx: LocationContext, spec: ListEndpoint, params: dict[str, Any], path: str | None = None,
          parallel: bool = True, **extra: Any) -> Iterator[list[dict[str, Any]]]:
    """Every page of one list, shaped; pages after the first in parallel once the total is known
    (not when this read already runs inside the client's page pool: it would wait on itself)."""

    def fetch(query: dict[str, Any]) -> dict[str, Any]:
        return ctx.client.get(path or spec.path.format(location_id=ctx.location_id), version=spec.version,
                              location_id=ctx.location_id, params=query)

    if spec.paging == "none":
        found = fetch(params).get(spec.items_key)
        if not isinstance(found, list):
            raise ApiError(f"location {ctx.location_id}: {spec.path} answer has no '{spec.items_key}' list")
        yield [shape(ctx, spec, record, **extra) for record in found]
        return
    for page in numbered_pages(fetch, params, spec.items_key, spec.limit, spec.paging,
                               ctx.client.map_pages if parallel else None):
        yield [shape(ctx, spec, record, **extra) for record in page]


def read_list(ctx: LocationContext, spec: ListEndpoint) -> Iterator[list[dict[str, Any]]]:
    report = ctx.report(spec.resource)
    sweeping = ctx.options.reconcile
    params: dict[str, Any] = spec.location_params(ctx.location_id)
    cursor = LocationCursor(ctx, spec.resource) if spec.freshness == "created" else None
    state = ctx.resource_state(spec.resource)
    if spec.freshness != "full":
        params.update(_date_window(ctx, spec, cursor, first=ctx.location_id not in state.get("last_success", {})))
    deleted = ctx.deleted_ids(spec.resource)
    listed: set[str] = set()
    for rows in pages(ctx, spec, params):
        listed.update(row["id"] for row in rows)
        rows = [row for row in rows if row["id"] not in deleted]
        if cursor is not None:
            for row in rows:
                cursor.observe(row.get(spec.created_field))
        report.rows += len(rows)
        if rows:
            yield rows
    gone = set(deleted)
    changed = ctx.changed_records.get(spec.resource, {})
    if changed and spec.by_id:
        found = yield_by_id(ctx, spec, sorted(set(changed) - listed - deleted))
        rows = [row for row in found if isinstance(row, dict)]
        gone.update(record_id for record_id in found if isinstance(record_id, str))
        report.rows += len(rows)
        if rows:
            yield rows
    complete = spec.freshness == "full" or (sweeping and ctx.options.end_date is None)
    if complete:
        gone.update(ctx.sweep(spec.resource, listed))
    if gone and spec.freshness != "full":  # full lists: the merge on location_id already dropped them
        yield hard_delete_rows(ctx, spec.resource, gone)
    if cursor is not None:
        cursor.finish()
    else:
        state.setdefault("last_success", {})[ctx.location_id] = to_iso_z(datetime.now(UTC))


def _date_window(ctx: LocationContext, spec: ListEndpoint, cursor: LocationCursor | None,
                 first: bool) -> dict[str, str]:
    """startAt/endAt (YYYY-MM-DD) of this run's read, always explicit (the API's defaults drop history)."""
    options = ctx.options
    now = datetime.now(UTC)
    start: date = options.start_date.date() if options.start_date else EARLIEST
    # a sweep reads everything (what it does not list is gone); other runs read what may have changed
    since = cursor.window_start() if cursor is not None and not options.reconcile else None
    if since is not None:  # the filter takes dates: the cursor's day again, and one more for time zones
        start = max(start, (since - timedelta(days=1)).date())
    elif cursor is None and not (first or options.reconcile or options.full_refresh):
        start = max(start, (now - timedelta(days=options.payments_days_back + 1)).date())
    end = options.end_date.date() if options.end_date else (now + timedelta(days=1)).date()
    return {"startAt": start.isoformat(), "endAt": end.isoformat()}


def yield_by_id(ctx: LocationContext, spec: ListEndpoint, ids: list[str]) -> list[dict[str, Any] | str]:
    """The records webhooks named, read by id in parallel: a row each, or the id when it is gone (404)."""
    assert spec.by_id is not None
    params = spec.location_params(ctx.location_id)

    def fetch(record_id: str) -> dict[str, Any] | str:
        try:
            body = ctx.client.get(spec.by_id.format(id=record_id), version=spec.version,  # type: ignore[union-attr]
                                  location_id=ctx.location_id, params=params)
        except ApiError as exc:
            if exc.status in (404, 410):
                return record_id
            raise
        record = body.get(spec.by_id_key) if spec.by_id_key else body
        if not isinstance(record, dict):
            raise ApiError(f"location {ctx.location_id}: {spec.by_id} answer has no record")
        record = {k: v for k, v in record.items() if k != "traceId"}
        return shape(ctx, spec, record)

    return list(ctx.client.map_pages(fetch, ids))


def read_prices(ctx: LocationContext, spec: ListEndpoint) -> Iterator[list[dict[str, Any]]]:
    """Every product's prices, when something says they may have changed; nothing otherwise."""
    report = ctx.report(spec.resource)
    products = all_rows(ctx, "products")
    digest = hashlib.blake2b(orjson.dumps(products, option=orjson.OPT_SORT_KEYS, default=str),
                             digest_size=16).hexdigest()
    state = ctx.resource_state(spec.resource).setdefault("products_digest", {})
    named = ctx.changed_records.get(spec.resource, {})
    if state.get(ctx.location_id) == digest and not named and not ctx.options.reconcile:
        report.requests_note = "products unchanged: prices not read"
        return
    params = spec.location_params(ctx.location_id)

    def prices_of(product: dict[str, Any]) -> list[dict[str, Any]]:
        path = spec.path.format(product_id=product["id"])
        return [row for rows in pages(ctx, spec, params, path, parallel=False, productId=product["id"])
                for row in rows]

    listed: set[str] = set()
    for rows in ctx.client.map_pages(prices_of, products):  # a request per product, side by side
        listed.update(row["id"] for row in rows)
        report.rows += len(rows)
        if rows:
            yield rows
    ctx.sweep(spec.resource, listed)
    state[ctx.location_id] = digest
    ctx.resource_state(spec.resource).setdefault("last_success", {})[ctx.location_id] = to_iso_z(datetime.now(UTC))


def all_rows(ctx: LocationContext, resource: str) -> list[dict[str, Any]]:
    """Every row of a small `full` list, read once per run for every resource that needs it:
    products for the prices read, object schemas for the records read and the object fields."""
    spec = LISTS[resource]

    def read(ctx: LocationContext) -> list[dict[str, Any]]:
        return [row for rows in pages(ctx, spec, spec.location_params(ctx.location_id)) for row in rows]

    return ctx.shared(resource, read)  # type: ignore[no-any-return]


def read_shared(ctx: LocationContext, spec: ListEndpoint) -> Iterator[list[dict[str, Any]]]:
    """A list other resources read too (products, object schemas): one listing per run."""
    rows = all_rows(ctx, spec.resource)
    listed = {row["id"] for row in rows}
    rows = [dict(row) for row in rows if row["id"] not in ctx.deleted_ids(spec.resource)]
    ctx.report(spec.resource).rows += len(rows)
    if rows:
        yield rows
    ctx.sweep(spec.resource, listed)
    ctx.resource_state(spec.resource).setdefault("last_success", {})[ctx.location_id] = to_iso_z(datetime.now(UTC))
