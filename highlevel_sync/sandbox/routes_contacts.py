"""Contacts, locations, custom fields and users: the `2021-07-28` family.

Both contact readers serve the search index's view (it trails writes); location, custom-field
and user reads are direct.
"""

from __future__ import annotations

import bisect
from typing import Any
from urllib.parse import urlencode

from . import contact_search
from .data import ms_of
from .gateway import ApiFailure, Call, require_location, unprocessable
from .world import Location, World

LIST_MAX_LIMIT = 100
USERS_MAX_LIMIT = 100
CUSTOM_FIELD_MODELS = ("contact", "opportunity", "all")


def _location(world: World, call: Call, location_id: Any) -> Location:
    require_location(call, location_id)
    loc = world.location(location_id)
    if loc is None:
        raise ApiFailure(400, "Location not found")
    return loc


def _number(query: dict[str, str], name: str, default: int) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise unprocessable(f"{name} must be a number conforming to the specified constraints") from None


def search_contacts(world: World, call: Call) -> dict[str, Any]:
    """`POST /contacts/search`: every row carries `searchAfter` = [sort value (epoch ms), id]."""
    query = contact_search.parse(call.body)
    loc = _location(world, call, query.location_id)
    with world.lock:
        index = loc.contacts
        index.catch_up()
        keys, total = contact_search.run(index, query)
        rows = [{**index.visible[cid], "searchAfter": [stamp, cid]} for stamp, cid in keys]
    return {"contacts": rows, "total": total}


def list_contacts(world: World, call: Call) -> dict[str, Any]:
    """Deprecated `GET /contacts/`: by dateAdded ascending (ties by id), `startAfter` (epoch ms) +
    `startAfterId` cursor, `limit` at most 100, optional `query`. No updated-since filter."""
    q = call.query
    loc = _location(world, call, q.get("locationId"))
    limit = _number(q, "limit", 20)
    if limit > LIST_MAX_LIMIT:
        raise unprocessable(f"limit must not be greater than {LIST_MAX_LIMIT}")
    if limit < 1:
        raise unprocessable("limit must not be less than 1")
    text = q.get("query") or None
    with world.lock:
        index = loc.contacts
        index.catch_up()
        after = _list_cursor(index.visible, q, _number(q, "startAfter", -1) if q.get("startAfter") else None)
        if text is None:
            keys, total = index.window("dateAdded", False, None, None, after, limit)
            position = 0 if after is None else bisect.bisect_right(index.sorted_keys("dateAdded"), after)
        else:
            match = contact_search.text_predicate(text)
            matched = [k for k in index.sorted_keys("dateAdded") if match(index.visible[k[1]])]
            position = sum(1 for k in matched if after is not None and k <= after)
            keys, total = matched[position:position + limit], len(matched)
        rows = [index.visible[cid] for _, cid in keys]
    last = keys[-1] if keys else None
    current = position // limit + 1
    more = position + len(keys) < total
    next_url = None
    if last is not None and more:
        params = {"locationId": loc.id, "limit": limit, "startAfter": last[0], "startAfterId": last[1],
                  **({"query": text} if text else {})}
        next_url = f"{str(call.request.base_url).rstrip('/')}/contacts/?{urlencode(params)}"
    meta = {"total": total, "nextPageUrl": next_url, "startAfterId": last[1] if last else None,
            "startAfter": last[0] if last else None, "currentPage": current,
            "nextPage": current + 1 if more else None, "prevPage": current - 1 if current > 1 else None}
    return {"contacts": rows, "count": total, "meta": meta}


def _list_cursor(visible: dict[str, Any], q: dict[str, str], start_after: int | None) -> tuple[int, str] | None:
    """(dateAdded ms, id) to continue after. `startAfterId` alone continues after that contact."""
    after_id = q.get("startAfterId") or None
    if start_after is not None:
        return (start_after, after_id or "\U0010ffff")
    if after_id is not None and after_id in visible:
        return (ms_of(visible[after_id]["dateAdded"]), after_id)
    return None


def get_location(world: World, call: Call) -> dict[str, Any]:
    loc = _location(world, call, call.request.path_params["location_id"])
    return {"location": loc.record}


def custom_fields(world: World, call: Call) -> dict[str, Any]:
    """`GET /locations/{id}/customFields`: `model` contact (the default), opportunity or all."""
    loc = _location(world, call, call.request.path_params["location_id"])
    model = call.query.get("model") or "contact"
    if model not in CUSTOM_FIELD_MODELS:
        raise unprocessable(f"model must be one of the following values: {', '.join(CUSTOM_FIELD_MODELS)}")
    return {"customFields": loc.fields_of(model)}


def search_users(world: World, call: Call) -> dict[str, Any]:
    """`GET /users/search`: `companyId` required (even with a location token); `skip`/`limit`
    are strings (defaults "0"/"25", limit at most 100); `query`, `role`, `type`, `ids` filter."""
    q = call.query
    if not q.get("companyId"):
        raise unprocessable("companyId should not be empty")
    if q["companyId"] != call.token.company_id:
        raise ApiFailure(403, "The token does not have access to this company.")
    skip, limit = _number(q, "skip", 0), _number(q, "limit", 25)
    if limit > USERS_MAX_LIMIT:
        raise unprocessable(f"limit must not be greater than {USERS_MAX_LIMIT}")
    if limit < 1 or skip < 0:
        raise unprocessable("limit must not be less than 1", "skip must not be less than 0")
    if q.get("locationId"):
        users = _location(world, call, q["locationId"]).users
    elif call.token.user_type == "Company":
        users = [u for loc in world.locations.values() for u in loc.users]
    else:
        raise unprocessable("locationId should not be empty")
    text = (q.get("query") or "").lower()
    ids = set(q["ids"].split(",")) if q.get("ids") else None
    users = [u for u in users
             if (not text or text in f"{u['name']} {u['email']}".lower())
             and (not q.get("role") or u["roles"]["role"] == q["role"])
             and (not q.get("type") or u["roles"]["type"] == q["type"])
             and (ids is None or u["id"] in ids)]
    return {"users": users[skip:skip + limit], "count": len(users)}
