"""Contacts, locations, custom fields and users: the `2021-07-28` family."""

from __future__ import annotations

from typing import Any

from .gateway import ApiFailure, Call, require_location, unprocessable
from .index import IndexedRecords
from .world import Location, World, _ms

SEARCH_WINDOW = 10_000
SORTABLE = ("dateUpdated", "dateAdded")


def _location(world: World, call: Call, location_id: Any) -> Location:
    require_location(call, location_id)
    loc = world.location(location_id)
    if loc is None:
        raise ApiFailure(400, "Location not found")
    return loc


def _bound(value: Any, field: str) -> int:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str):
        try:
            return _ms(value)
        except ValueError:
            pass
    raise unprocessable(f"filters.{field} range value must be an ISO date or epoch milliseconds")


def _ranges(filters: Any) -> tuple[dict[str, tuple[int | None, int | None]], set[str] | None]:
    """Parse the filter grammar: range on date fields, eq on id; groups with AND."""
    ranges: dict[str, tuple[int | None, int | None]] = {}
    ids: set[str] | None = None
    if filters is None:
        return ranges, ids
    if not isinstance(filters, list):
        raise unprocessable("filters must be an array")
    for item in filters:
        if not isinstance(item, dict):
            raise unprocessable("each filter must be an object")
        if "group" in item:
            if item.get("group") != "AND":
                raise unprocessable("only AND groups are supported in this sandbox")
            sub_ranges, sub_ids = _ranges(item.get("filters"))
            ranges.update(sub_ranges)
            ids = sub_ids if ids is None else (ids & sub_ids if sub_ids is not None else ids)
            continue
        field, operator, value = item.get("field"), item.get("operator"), item.get("value")
        if field in SORTABLE and operator == "range":
            if not isinstance(value, dict) or not value:
                raise unprocessable("range filter needs a value object with gt, gte, lt or lte")
            lo, hi = ranges.get(field, (None, None))
            for op, raw in value.items():
                bound = _bound(raw, field)
                if op in ("gte", "gt"):
                    bound += 1 if op == "gt" else 0
                    lo = bound if lo is None else max(lo, bound)
                elif op in ("lte", "lt"):
                    bound -= 1 if op == "lt" else 0
                    hi = bound if hi is None else min(hi, bound)
                else:
                    raise unprocessable(f"unknown range operator {op}")
            ranges[field] = (lo, hi)
        elif field == "id" and operator == "eq":
            wanted = {str(value)}
            ids = wanted if ids is None else ids & wanted
        else:
            raise unprocessable(f"filter on field {field!r} with operator {operator!r} is not supported")
    return ranges, ids


def search_contacts(world: World, call: Call) -> dict[str, Any]:
    body = call.body
    if not isinstance(body, dict):
        raise unprocessable("body must be a JSON object")
    missing = [m for m, k in (("locationId should not be empty", "locationId"),
                              ("pageLimit must be a number", "pageLimit")) if body.get(k) in (None, "")]
    if missing:
        raise unprocessable(*missing)
    loc = _location(world, call, body["locationId"])
    limit = body["pageLimit"]
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 500:
        raise unprocessable("pageLimit must not be greater than 500", "pageLimit must not be less than 1")
    page, after = body.get("page"), body.get("searchAfter")
    if page is not None and after is not None:
        raise unprocessable("page and searchAfter cannot be used together")
    sort = body.get("sort") or [{"field": "dateAdded", "direction": "desc"}]
    if not isinstance(sort, list) or not sort or not isinstance(sort[0], dict):
        raise unprocessable("sort must be an array of {field, direction}")
    field, direction = sort[0].get("field"), str(sort[0].get("direction", "asc")).lower()
    if field not in SORTABLE or direction not in ("asc", "desc"):
        raise unprocessable(f"sort on {field!r} {direction!r} is not supported")
    ranges, ids = _ranges(body.get("filters"))
    skip = 0
    if page is not None:
        if not isinstance(page, int) or page < 1:
            raise unprocessable("page must be a positive number")
        if page * limit > SEARCH_WINDOW:
            raise ApiFailure(400, f"Result window is too large, page * pageLimit must be less than or equal to "
                             f"{SEARCH_WINDOW}; use searchAfter for deep pagination")
        skip = (page - 1) * limit
    cursor = None
    if after is not None:
        if not isinstance(after, list) or len(after) != 2:
            raise unprocessable("searchAfter must be the searchAfter array of the last contact")
        cursor = (int(after[0]), str(after[1]))
    with world.lock:
        index: IndexedRecords = loc.contacts
        index.catch_up()
        keys, total = _select(index, field, direction == "desc", ranges, ids, cursor, limit, skip)
        rows = [{**index.visible[cid], "searchAfter": [stamp, cid]} for stamp, cid in keys]
    return {"contacts": rows, "total": total}


def _select(index: IndexedRecords, field: str, descending: bool, ranges: dict[str, tuple[int | None, int | None]],
            ids: set[str] | None, cursor: tuple[int, str] | None, limit: int, skip: int,
            ) -> tuple[list[tuple[int, str]], int]:
    other = {f: r for f, r in ranges.items() if f != field}
    lo, hi = ranges.get(field, (None, None))
    if not other and ids is None:
        return index.window(field, descending, lo, hi, cursor, limit, skip)
    # general path: filter the whole sorted view (rare; the fast path serves incremental syncs)
    keys = index.sorted_keys(field)
    sort_key = {f: index._keys[f] for f in other}
    matched = [k for k in keys
               if (lo is None or k[0] >= lo) and (hi is None or k[0] <= hi)
               and (ids is None or k[1] in ids)
               and all(_within(sort_key[f](index.visible[k[1]]), r) for f, r in other.items())]
    if descending:
        matched.reverse()
    if cursor is not None:
        matched = [k for k in matched if (k < cursor if descending else k > cursor)]
        return matched[:limit], len(matched)
    return matched[skip:skip + limit], len(matched)


def _within(value: int, bounds: tuple[int | None, int | None]) -> bool:
    lo, hi = bounds
    return (lo is None or value >= lo) and (hi is None or value <= hi)


def list_contacts(world: World, call: Call) -> dict[str, Any]:
    """Deprecated `GET /contacts/`: by dateAdded ascending, startAfter/startAfterId, max 100."""
    q = call.query
    loc = _location(world, call, q.get("locationId"))
    try:
        limit = int(q.get("limit", "20"))
    except ValueError:
        raise unprocessable("limit must be a number") from None
    if not 1 <= limit <= 100:
        raise unprocessable("limit must not be greater than 100")
    cursor = None
    if q.get("startAfterId") and q.get("startAfter"):
        cursor = (int(q["startAfter"]), q["startAfterId"])
    with world.lock:
        loc.contacts.catch_up()
        keys, total = loc.contacts.window("dateAdded", False, None, None, cursor, limit)
        rows = [loc.contacts.visible[cid] for _, cid in keys]
    last = keys[-1] if keys else None
    meta = {"total": total, "currentPage": None, "nextPage": None, "prevPage": None,
            "startAfterId": last[1] if last else None, "startAfter": last[0] if last else None,
            "nextPageUrl": (f"/contacts/?locationId={loc.id}&startAfter={last[0]}&startAfterId={last[1]}"
                            if last and len(keys) == limit else None)}
    return {"contacts": rows, "count": total, "meta": meta}


def get_location(world: World, call: Call) -> dict[str, Any]:
    loc = _location(world, call, call.request.path_params["location_id"])
    return {"location": loc.record}


def custom_fields(world: World, call: Call) -> dict[str, Any]:
    loc = _location(world, call, call.request.path_params["location_id"])
    model = call.query.get("model", "all")
    if model not in ("contact", "opportunity", "all"):
        raise unprocessable("model must be one of contact, opportunity, all")
    return {"customFields": [f for f in loc.custom_fields if model == "all" or f["model"] == model]}


def search_users(world: World, call: Call) -> dict[str, Any]:
    q = call.query
    if not q.get("companyId"):
        raise unprocessable("companyId should not be empty")
    if q["companyId"] != world.company_id:
        raise ApiFailure(403, "The token does not have access to this company.")
    try:
        skip, limit = int(q.get("skip", "0")), int(q.get("limit", "25"))
    except ValueError:
        raise unprocessable("skip and limit must be numeric strings") from None
    if not 1 <= limit <= 100 or skip < 0:
        raise unprocessable("limit must be between 1 and 100")
    if q.get("locationId"):
        users = _location(world, call, q["locationId"]).users
    elif call.token.user_type == "Company":
        users = [u for loc in world.locations.values() for u in loc.users]
    else:
        raise unprocessable("locationId should not be empty")
    return {"users": users[skip:skip + limit], "count": len(users)}
