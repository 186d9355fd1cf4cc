"""Forms, surveys, invoices, payments and products: every route `Version: 2021-07-28` (each spec's
`Version` enum), each family's scope checked by the gateway (scopes.py).

Faithful where a client can go wrong:
- Submissions page with `page`/`limit` (at most 100) and a `meta` envelope; `startAt`/`endAt` are
  UTC dates, both inclusive, and **without `startAt` only the last month is answered** (the spec:
  "By default it will be same date of last month").
- Forms and surveys page with `skip`/`limit` (at most 50), answering `{forms|surveys, total}`.
- Invoices need `altId`, `altType=location`, `limit` and `offset` (all required by the spec);
  `startAt`/`endAt` filter the issue date; items are keyed `_id`.
- Orders, transactions and subscriptions answer `{data, totalCount}`, newest first, filtered on
  creation time only; orders need `altId`, the other two `altId` and `altType`.
- Products answer `total` as a list of `{total}` objects; prices per product `{prices, total}`.
- No route filters on update time: a record paid, refunded or cancelled later keeps its place.
The specs name no maximum `limit` for invoices, payments and products; this sandbox refuses more
than 100 there (a client must page, whatever the real cap is) and, where the spec's default is 0,
answers 10. An unknown id answers 404 (the specs list only 400, 401 and 422).
"""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any

from starlette.routing import Route

from .gateway import ApiFailure, Call, Gateway, require_location, unprocessable
from .index import Record
from .revenue_changes import detail
from .world import Location, World

V0728 = "2021-07-28"
FORMS_MAX_LIMIT = 50
SUBMISSIONS_MAX_LIMIT = 100
MAX_LIMIT = 100  # invoices, payments, products: not in the specs (see above)


def _int(query: dict[str, str], name: str, default: int | None, low: int, high: int | None) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        if default is None:
            raise unprocessable(f"{name} should not be empty")
        return default
    try:
        value = int(raw)
    except ValueError:
        raise unprocessable(f"{name} must be a number conforming to the specified constraints") from None
    if value < low:
        raise unprocessable(f"{name} must not be less than {low}")
    if high is not None and value > high:
        raise unprocessable(f"{name} must not be greater than {high}")
    return value


def _location(world: World, call: Call, name: str) -> Location:
    location_id = call.query.get(name)
    if not location_id:
        raise unprocessable(f"{name} should not be empty")
    require_location(call, location_id)
    loc = world.location(location_id)
    if loc is None:
        raise ApiFailure(400, "Location not found")
    return loc


def _alt(world: World, call: Call, alt_type_required: bool = True) -> Location:
    alt_type = call.query.get("altType")
    if (alt_type_required or alt_type is not None) and alt_type != "location":
        raise unprocessable("altType must be one of the following values: location")
    return _location(world, call, "altId")


def _day(query: dict[str, str], name: str) -> date | None:
    raw = query.get(name)
    if not raw:
        return None
    if len(raw) == 10:
        try:
            return date.fromisoformat(raw)
        except ValueError:
            pass
    raise unprocessable(f"{name} must be a valid date in YYYY-MM-DD format")


def _bound(query: dict[str, str], name: str, end: bool) -> str | None:
    """A payments `startAt`/`endAt` (a date, or a full ISO time) as an ISO `Z` bound to compare with."""
    raw = query.get(name)
    if not raw:
        return None
    try:
        if len(raw) == 10:
            day = date.fromisoformat(raw)
            return f"{day.isoformat()}T23:59:59.999Z" if end else f"{day.isoformat()}T00:00:00.000Z"
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise unprocessable(f"{name} must be a valid date") from None
    moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def same_day_last_month(today: date) -> date:
    """The submissions' default `startAt`: 2026-03-31 -> 2026-02-28."""
    year, month = (today.year, today.month - 1) if today.month > 1 else (today.year - 1, 12)
    return today.replace(year=year, month=month, day=min(today.day, calendar.monthrange(year, month)[1]))


def _copies(rows: list[Record]) -> list[Record]:
    return [dict(r) for r in rows]


def forms(world: World, kind: str, call: Call) -> dict[str, Any]:
    """`GET /forms/` and `GET /surveys/`: skip/limit, in the account's order."""
    loc = _location(world, call, "locationId")
    limit = _int(call.query, "limit", 10, 1, FORMS_MAX_LIMIT)
    skip = _int(call.query, "skip", 0, 0, None)
    with world.lock:
        rows = list(loc.extra[kind].values())
        return {kind: _copies(rows[skip:skip + limit]), "total": len(rows)}


def submissions(world: World, kind: str, call: Call) -> dict[str, Any]:
    """`GET /forms/submissions` and `GET /surveys/submissions`: newest first, page/limit."""
    q = call.query
    loc = _location(world, call, "locationId")
    page = _int(q, "page", 1, 1, None)
    limit = _int(q, "limit", 20, 1, SUBMISSIONS_MAX_LIMIT)
    today = datetime.now(UTC).date()
    first = _day(q, "startAt") or same_day_last_month(today)
    last = _day(q, "endAt") or today
    lo, hi = f"{first.isoformat()}T00:00:00.000Z", f"{(last + timedelta(days=1)).isoformat()}T00:00:00.000Z"
    parent, text = q.get(f"{kind}Id"), (q.get("q") or "").lower()
    with world.lock:
        rows = [r for r in loc.extra[f"{kind}_submissions"].values()
                if lo <= r["createdAt"] < hi and (not parent or r[f"{kind}Id"] == parent)
                and (not text or text == r["contactId"].lower() or _mentions(r["others"], text))]
        rows.sort(key=lambda r: (r["createdAt"], r["id"]), reverse=True)
        total = len(rows)
        chunk = _copies(rows[(page - 1) * limit:page * limit])
    return {"submissions": chunk, "meta": {"total": total, "currentPage": page,
                                           "nextPage": page + 1 if page * limit < total else None,
                                           "prevPage": page - 1 if page > 1 else None}}


def list_invoices(world: World, call: Call) -> dict[str, Any]:
    q = call.query
    loc = _alt(world, call)
    limit = _int(q, "limit", None, 1, MAX_LIMIT)
    offset = _int(q, "offset", None, 0, None)
    if q.get("sortField", "issueDate") != "issueDate":
        raise unprocessable("sortField must be one of the following values: issueDate")
    if q.get("sortOrder", "descend") not in ("ascend", "descend"):
        raise unprocessable("sortOrder must be one of the following values: ascend, descend")
    first, last = _day(q, "startAt"), _day(q, "endAt")
    status, contact, text = q.get("status"), q.get("contactId"), (q.get("search") or "").lower()
    with world.lock:
        rows = [r for r in loc.extra["invoices"].values()
                if (first is None or r["issueDate"] >= first.isoformat())
                and (last is None or r["issueDate"] <= last.isoformat())
                and (not status or r["status"] == status)
                and (not contact or r["contactDetails"]["id"] == contact)
                and (not text or text in f"{r['_id']} {r['name']} {r['contactDetails']}".lower())]
        rows.sort(key=lambda r: (r["issueDate"], r["createdAt"], r["_id"]), reverse=q.get("sortOrder") != "ascend")
        return {"invoices": _copies(rows[offset:offset + limit]), "total": len(rows)}


def _mentions(others: Record, text: str) -> bool:
    return any(text in str(others.get(key) or "").lower() for key in ("full_name", "email", "phone"))


def payments(world: World, family: str, alt_type_required: bool, filters: tuple[str, ...],
             call: Call) -> dict[str, Any]:
    """`GET /payments/orders|transactions|subscriptions`: newest first, limit/offset."""
    q = call.query
    loc = _alt(world, call, alt_type_required)
    if q.get("locationId") and q["locationId"] != loc.id:
        raise ApiFailure(403, "The token does not have access to this location.")
    limit = _int(q, "limit", 10, 1, MAX_LIMIT)
    offset = _int(q, "offset", 0, 0, None)
    lo, hi = _bound(q, "startAt", end=False), _bound(q, "endAt", end=True)
    wanted = {name: q[name] for name in filters if q.get(name)}
    text = (q.get("search") or "").lower()
    with world.lock:
        rows = [r for r in loc.extra[family].values()
                if (lo is None or r["createdAt"] >= lo) and (hi is None or r["createdAt"] <= hi)
                and all(r.get("_id" if name == "id" else name) == value for name, value in wanted.items())
                and (not text or text in f"{r.get('contactName')} {r.get('sourceName', '')}".lower())]
        rows.sort(key=lambda r: (r["createdAt"], r["_id"]), reverse=True)
        return {"data": _copies(rows[offset:offset + limit]), "totalCount": len(rows)}


def list_products(world: World, call: Call) -> dict[str, Any]:
    q = call.query
    loc = _location(world, call, "locationId")
    limit = _int(q, "limit", 10, 1, MAX_LIMIT)
    offset = _int(q, "offset", 0, 0, None)
    if q.get("sortOrder", "desc") not in ("asc", "desc"):
        raise unprocessable("sortOrder must be one of the following values: asc, desc")
    text = (q.get("search") or "").lower()
    with world.lock:
        rows = [r for r in loc.extra["products"].values() if not text or text in r["name"].lower()]
        rows.sort(key=lambda r: (r["createdAt"], r["_id"]), reverse=q.get("sortOrder", "desc") == "desc")
        return {"products": _copies(rows[offset:offset + limit]), "total": [{"total": len(rows)}]}


def list_prices(world: World, call: Call) -> dict[str, Any]:
    """A product's prices, oldest first; a product that does not exist (any more) has none."""
    q = call.query
    loc = _location(world, call, "locationId")
    limit = _int(q, "limit", 10, 1, MAX_LIMIT)
    offset = _int(q, "offset", 0, 0, None)
    product_id = call.request.path_params["product_id"]
    ids = set(q["ids"].split(",")) if q.get("ids") else None
    with world.lock:
        rows = [r for r in loc.extra["product_prices"].values()
                if r["product"] == product_id and (ids is None or r["_id"] in ids)]
        rows.sort(key=lambda r: (r["createdAt"], r["_id"]))
        return {"prices": _copies(rows[offset:offset + limit]), "total": len(rows)}


def by_id(world: World, family: str, param: str, locate: str, what: str, call: Call) -> dict[str, Any]:
    """One record by id, as its spec's by-id schema has it (the object itself, no envelope).
    `locate`: how the location is named ("altId+altType", "altId" or "locationId")."""
    if locate == "locationId":
        loc = _location(world, call, "locationId")
    else:
        loc = _alt(world, call, alt_type_required=locate == "altId+altType")
    record_id = call.request.path_params[param]
    with world.lock:
        record = loc.extra[family].get(record_id)
        if record is None:
            raise ApiFailure(404, f"{what} not found", "Not Found")
        return detail(loc, family, record)


def routes(world: World, gw: Gateway) -> list[Route]:
    def r(path: str, fn: Any, *args: Any) -> Route:
        return Route(path, gw.route(V0728, partial(fn, world, *args)), methods=["GET"])

    return [
        r("/forms/", forms, "forms"),
        r("/forms/submissions", submissions, "form"),
        r("/surveys/", forms, "surveys"),
        r("/surveys/submissions", submissions, "survey"),
        r("/invoices/", list_invoices),
        r("/invoices/{invoice_id}", by_id, "invoices", "invoice_id", "altId+altType", "Invoice"),
        r("/payments/orders", payments, "orders", False, ("status", "contactId", "sourceId")),
        r("/payments/orders/{order_id}", by_id, "orders", "order_id", "altId", "Order"),
        r("/payments/transactions", payments, "transactions", True,
          ("contactId", "entityId", "subscriptionId", "entitySourceType")),
        r("/payments/transactions/{transaction_id}", by_id, "transactions", "transaction_id", "altId+altType",
          "Transaction"),
        r("/payments/subscriptions", payments, "subscriptions", True, ("contactId", "entityId", "id")),
        r("/payments/subscriptions/{subscription_id}", by_id, "subscriptions", "subscription_id", "altId+altType",
          "Subscription"),
        r("/products/", list_products),
        r("/products/{product_id}", by_id, "products", "product_id", "locationId", "Product"),
        r("/products/{product_id}/price", list_prices),
    ]
