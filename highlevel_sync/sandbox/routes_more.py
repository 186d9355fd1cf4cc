"""Opportunities (2021-07-28), conversations, messages and calendars (2021-04-15)."""

from __future__ import annotations

import base64
import bisect
from functools import partial
from typing import Any

import orjson
from starlette.routing import Route

from .data import ms_of
from .gateway import ApiFailure, Call, Gateway, RawAnswer, unprocessable
from .index import IndexedRecords
from .routes_contacts import _location
from .search_answers import OpportunitySearchAnswers
from .world import World

V0728, V0415 = "2021-07-28", "2021-04-15"
SEARCH_WINDOW = 10_000
EXPORT_CHANNELS = ("Call", "SMS", "Email", "WhatsApp", "Instagram", "Facebook")


def _int(query: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    try:
        value = int(query.get(name, default))
    except ValueError:
        raise unprocessable(f"{name} must be a number") from None
    if not low <= value <= high:
        raise unprocessable(f"{name} must be between {low} and {high}")
    return value


def get_opportunities(world: World, call: Call) -> dict[str, Any]:
    """`GET /opportunities/search`: snake_case params, startAfter/startAfterId, no update filter."""
    q = call.query
    loc = _location(world, call, q.get("location_id"))
    limit = _int(q, "limit", 20, 1, 100)
    status = q.get("status", "all")
    cursor = (int(q["startAfter"]), q["startAfterId"]) if q.get("startAfter") and q.get("startAfterId") else None
    with world.lock:
        opps: IndexedRecords = loc.extra["opportunities"]
        opps.catch_up()
        keys = opps.sorted_keys("createdAt")
        matched = [k for k in keys if status == "all" or opps.visible[k[1]]["status"] == status]
        start = 0
        if cursor is not None:
            start = next((i for i, k in enumerate(matched) if k > cursor), len(matched))
        page = matched[start:start + limit]
        rows = [opps.visible[k[1]] for k in page]
    last = page[-1] if page else None
    meta = {"total": len(matched), "currentPage": None, "nextPage": None, "prevPage": None,
            "startAfter": last[0] if last else None, "startAfterId": last[1] if last else None,
            "nextPageUrl": None if not last or len(page) < limit else
            f"/opportunities/search?location_id={loc.id}&startAfter={last[0]}&startAfterId={last[1]}"}
    return {"opportunities": rows, "meta": meta, "aggregations": {}}


HTML_PAGE = b"<!DOCTYPE html><html><head><title>HighLevel</title></head><body><div id=app></div></body></html>"


def _switched(answer: str, call: Call) -> Any:
    """Apply a switched answer (search_answers.py): raise it, or return the body the route then sees."""
    body, path = call.body, call.request.url.path
    if answer in ("405", "404"):
        raise ApiFailure(int(answer), f"Cannot POST {path}", "Method Not Allowed" if answer == "405" else "Not Found")
    if answer == "403":
        raise ApiFailure(403, "Forbidden resource", "Forbidden")
    if answer == "empty":
        raise RawAnswer(200, b"", "application/json")
    if answer == "non_json":
        raise RawAnswer(200, HTML_PAGE, "text/html; charset=utf-8")
    extended = [key for key in ("filters", "sort") if isinstance(body, dict) and body.get(key)]
    if answer == "422" and extended:
        raise unprocessable(*(f"property {key} should not exist" for key in extended))
    if answer == "400" and extended:
        items = body[extended[0]]
        field = items[0].get("field") if isinstance(items, list) and items and isinstance(items[0], dict) else None
        raise ApiFailure(400, f"Invalid {extended[0]}: field {field} is not supported", "Bad Request")
    if answer == "ignore_filter" and isinstance(body, dict):
        return {key: value for key, value in body.items() if key not in ("filters", "sort")}
    return body


def post_opportunities(world: World, call: Call, answers: OpportunitySearchAnswers | None = None) -> dict[str, Any]:
    """Advanced search: filters/sort on an update field only if this sandbox is set to honour one
    (and the route answers at all: `answers` switches it to any answer seen from real accounts)."""
    target = call.token.location_id or (call.body.get("locationId") if isinstance(call.body, dict) else None)
    answer = answers.answer_for(target) if answers is not None else "honour"
    body = call.body if answer == "honour" else _switched(answer, call)
    if not isinstance(body, dict):
        raise unprocessable("body must be a JSON object")
    loc = _location(world, call, body.get("locationId"))
    limit = body.get("limit", 20)
    if not isinstance(limit, int) or not 1 <= limit <= 500:
        raise unprocessable("limit must not be greater than 500")
    honoured = world.config.opportunity_update_field
    fields = {"date_added": "createdAt"}
    if honoured:
        fields[honoured] = "updatedAt"
    filters, sort = body.get("filters") or [], body.get("sort") or [{"field": "date_added", "direction": "desc"}]
    if (filters or body.get("sort")) and honoured is None:
        raise ApiFailure(401, "This route is not yet supported by the IAM Service.")
    lo = hi = None
    for item in filters:
        field = item.get("field") if isinstance(item, dict) else None
        if field not in fields or item.get("operator") != "range" or not isinstance(item.get("value"), dict):
            raise unprocessable(f"property {field} is not supported for filtering")
        for op, raw in item["value"].items():
            bound = ms_of(raw) if isinstance(raw, str) else int(raw)
            if op in ("gte", "gt"):
                lo = bound + (op == "gt")
            else:
                hi = bound - (op == "lt")
    sort_field = sort[0].get("field") if isinstance(sort[0], dict) else None
    if sort_field not in fields:
        raise unprocessable(f"property {sort_field} is not supported for sorting")
    descending = str(sort[0].get("direction", "asc")).lower() == "desc"
    page, after = body.get("page"), body.get("searchAfter")
    if page is not None and after is not None:
        raise unprocessable("page and searchAfter cannot be used together")
    skip = 0
    if page is not None:
        if (int(page) + 1) * limit > SEARCH_WINDOW:
            raise ApiFailure(400, "Result window is too large; use searchAfter")
        skip = int(page) * limit  # 0-based here, unlike contacts
    cursor = (int(after[0]), str(after[1])) if isinstance(after, list) and len(after) == 2 else None
    with world.lock:
        opps: IndexedRecords = loc.extra["opportunities"]
        opps.catch_up()
        filter_field = fields[filters[0]["field"]] if filters else fields[sort_field]
        if filters and filter_field != fields[sort_field]:
            raise unprocessable("filter and sort must use the same date field in this sandbox")
        keys, total = opps.window(fields[sort_field], descending, lo, hi, cursor, limit, skip)
        rows = [{**opps.visible[cid], "sort": [stamp, cid]} for stamp, cid in keys]
    return {"opportunities": rows, "total": total, "aggregations": {}}


def pipelines(world: World, call: Call) -> dict[str, Any]:
    loc = _location(world, call, call.query.get("locationId"))
    return {"pipelines": loc.extra["pipelines"]}


def search_conversations(world: World, call: Call) -> dict[str, Any]:
    q = call.query
    loc = _location(world, call, q.get("locationId"))
    limit = _int(q, "limit", 20, 1, 100)
    if q.get("sortBy", "last_message_date") != "last_message_date":
        raise unprocessable("only sortBy=last_message_date is supported in this sandbox")
    descending = q.get("sort", "desc") == "desc"
    after = q.get("startAfterDate")
    with world.lock:
        convs = sorted(loc.extra["conversations"].values(), key=lambda c: (c["lastMessageDate"], c["id"]),
                       reverse=descending)
    if after:
        value = int(str(after).split(",")[0])
        convs = [c for c in convs if (c["lastMessageDate"] < value if descending else c["lastMessageDate"] > value)]
    page = convs[:limit]
    return {"conversations": [{**c, "sort": [c["lastMessageDate"]]} for c in page], "total": len(convs)}


def export_messages(world: World, call: Call) -> dict[str, Any]:
    """Location-wide export. Without `channel` emails are excluded (as documented)."""
    q = call.query
    loc = _location(world, call, q.get("locationId"))
    limit = _int(q, "limit", 100, 10, 500)
    sort_by = q.get("sortBy", "createdAt")
    if sort_by not in ("createdAt", "updatedAt"):
        raise unprocessable("sortBy must be createdAt or updatedAt")
    descending = q.get("sortOrder", "desc") == "desc"
    channel = q.get("channel")
    if channel is not None and channel not in EXPORT_CHANNELS:
        raise unprocessable(f"channel must be one of {', '.join(EXPORT_CHANNELS)}")
    field = "dateUpdated" if sort_by == "updatedAt" else "dateAdded"
    # startDate / endDate: which field they filter is unconfirmed (SandboxConfig.message_export_date_field)
    lo = ms_of(q["startDate"]) if q.get("startDate") else None
    hi = ms_of(q["endDate"]) if q.get("endDate") else None
    filtered = world.config.message_export_date_field
    with world.lock:
        keys = _export_keys(loc, channel, field)  # ascending (stamp, id, added, message)
        if (lo is not None or hi is not None) and filtered is not None:
            def stamp(k: tuple[int, str, int, dict[str, Any]]) -> int:
                return k[2] if filtered == "dateAdded" else ms_of(k[3][filtered])

            keys = [k for k in keys if (lo is None or stamp(k) >= lo) and (hi is None or stamp(k) <= hi)]
        total = len(keys)
        if q.get("cursor"):
            try:
                stamp, mid = orjson.loads(base64.urlsafe_b64decode(q["cursor"]))
            except ValueError:
                raise unprocessable("cursor is invalid") from None
            cut = bisect.bisect_left(keys, (stamp, mid)) if descending else bisect.bisect_right(keys, (stamp, mid))
            if not descending:
                while cut < len(keys) and (keys[cut][0], keys[cut][1]) <= (stamp, mid):
                    cut += 1
            keys = keys[:cut] if descending else keys[cut:]
        window = keys[-limit:][::-1] if descending else keys[:limit]
        more = len(keys) > limit
        page = [(k[0], k[1], k[3]) for k in window]
    next_cursor = None
    if more:
        next_cursor = base64.urlsafe_b64encode(orjson.dumps([page[-1][0], page[-1][1]])).decode()
    return {"messages": [t[2] for t in page], "nextCursor": next_cursor, "total": total}


def _export_keys(loc: Any, channel: str | None, field: str) -> list[tuple[int, str, int, dict[str, Any]]]:
    """Sorted export view per (channel, field), cached until messages change (the export is hot)."""
    cache: dict[tuple[str | None, str], Any] = loc.extra.setdefault("_export_cache", {})
    key = (channel, field)
    if key not in cache:
        rows = [m for m in loc.extra["messages"].values()
                if (m["messageType"] == "TYPE_EMAIL") == (channel == "Email")
                and (channel in (None, "Email") or m["messageType"] == _channel_type(channel))]
        cache[key] = sorted((ms_of(m[field]), m["id"], ms_of(m["dateAdded"]), m) for m in rows)
    return cache[key]  # type: ignore[no-any-return]


def _channel_type(channel: str) -> str:
    from .crm import CHANNELS

    return CHANNELS[channel][0]


def calendars(world: World, call: Call) -> dict[str, Any]:
    loc = _location(world, call, call.query.get("locationId"))
    return {"calendars": loc.extra["calendars"]}


def events(world: World, call: Call) -> dict[str, Any]:
    q = call.query
    loc = _location(world, call, q.get("locationId"))
    if not q.get("startTime") or not q.get("endTime"):
        raise unprocessable("startTime should not be empty", "endTime should not be empty")
    if not (q.get("calendarId") or q.get("userId") or q.get("groupId")):
        raise unprocessable("calendarId, userId or groupId is required")
    try:
        lo, hi = int(q["startTime"]), int(q["endTime"])
    except ValueError:
        raise unprocessable("startTime and endTime must be epoch milliseconds") from None
    longest = world.config.max_event_window_days
    if longest is not None and hi - lo > longest * 86_400_000:
        raise unprocessable(f"The time range between startTime and endTime must not exceed {longest} days")
    with world.lock:
        rows = [e for e in loc.extra["events"].values()
                if (not q.get("calendarId") or e["calendarId"] == q["calendarId"]) and lo <= ms_of(e["startTime"]) < hi]
    rows.sort(key=lambda e: ms_of(e["startTime"]))
    return {"events": rows[:world.config.max_events_per_answer]}


def appointment(world: World, call: Call) -> dict[str, Any]:
    """`GET /calendars/events/appointments/{eventId}` -> `{"event": {...}}`, any date. The path has
    no locationId: a location token finds its own location's appointments only. An unknown id
    answers 404 here; the real status for it is not documented (the spec lists 400 and 401)."""
    event_id = call.request.path_params["event_id"]
    with world.lock:
        loc = world.location(call.token.location_id or "")
        event = loc.extra["events"].get(event_id) if loc is not None else None
        if event is None:
            raise ApiFailure(404, "Appointment not found", "Not Found")
        return {"event": dict(event)}


def routes(world: World, gw: Gateway, answers: OpportunitySearchAnswers | None = None) -> list[Route]:
    def r(path: str, version: str, fn: Any, method: str = "GET") -> Route:
        return Route(path, gw.route(version, partial(fn, world)), methods=[method])

    return [
        r("/opportunities/search", V0728, get_opportunities),
        r("/opportunities/search", V0728, partial(post_opportunities, answers=answers), "POST"),
        r("/opportunities/pipelines", V0728, pipelines),
        r("/conversations/search", V0415, search_conversations),
        r("/conversations/messages/export", V0415, export_messages),
        r("/calendars/", V0415, calendars),
        r("/calendars/events", V0415, events),
        r("/calendars/events/appointments/{event_id}", V0415, appointment),
    ]
