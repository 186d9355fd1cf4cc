"""Custom objects: schemas, record search and reads, object fields, associations and relations.

All `Version: 2021-07-28` (objects.json, custom-fields.json, associations.json). Faithful where a
client can go wrong:
- `POST /objects/{schemaKey}/records/search` takes the spec's body, all five keys required
  (`locationId`, `page`, `pageLimit`, `query`, `searchAfter`) and nothing else. Records come newest
  first by `createdAt` (ties by id), each with `searchAfter` = [createdAt epoch ms, id]; a non-empty
  `searchAfter` continues after that record (then `page` is ignored), an empty one pages by `page`
  within a 10,000-record window. The spec names no largest `pageLimit`: this sandbox takes at most
  100 (RECORDS_MAX_PAGE_LIMIT) and answers 422 above it. Search trails writes by the index lag.
- `GET /objects/{schemaKey}/records/{id}` has no locationId: the token's location is searched; the
  answer is IRecordSchema (`dateAdded`/`dateUpdated`, not search's `createdAt`/`updatedAt`).
- `GET /associations/` and `GET /associations/relations/{recordId}` require `skip` and `limit`
  (at most 100 here; the spec names no maximum). The spec's response schema for both is a single
  association, plainly not the list: the sandbox answers `{"associations"|"relations": [...], "total"}`.
- Custom Fields V2 serves custom objects and business only, not contact or opportunity (CONTRACT §3.7).
"""

from __future__ import annotations

from functools import partial
from typing import Any

from starlette.routing import Route

from .gateway import ApiFailure, Call, Gateway, unprocessable
from .objects_changes import fields_of, record_by_id
from .objects_data import STANDARD_OBJECTS, custom_keys, records_of
from .routes_contacts import _location
from .world import Location, World

V0728 = "2021-07-28"
RECORDS_MAX_PAGE_LIMIT = 100
RECORDS_WINDOW = 10_000
ASSOCIATIONS_MAX_LIMIT = 100
SEARCH_BODY = ("locationId", "page", "pageLimit", "query", "searchAfter")


def _count(raw: Any, name: str, low: int, high: int | None = None) -> int:
    """A number as the validation layer checks one: query strings or JSON numbers, whole, in range."""
    if isinstance(raw, bool) or raw is None or raw == "":
        raise unprocessable(f"{name} must be a number conforming to the specified constraints")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise unprocessable(f"{name} must be a number conforming to the specified constraints") from None
    if value != int(value):
        raise unprocessable(f"{name} must be an integer number")
    if value < low:
        raise unprocessable(f"{name} must not be less than {low}")
    if high is not None and value > high:
        raise unprocessable(f"{name} must not be greater than {high}")
    return int(value)


def _custom_object(loc: Location, key: str) -> str:
    if key in custom_keys(loc):
        return key
    if key in {k for k, *_ in STANDARD_OBJECTS}:
        raise ApiFailure(400, f"Records of the standard object {key!r} are not served by this sandbox; "
                         "read them from their own endpoints", "Bad Request")
    raise ApiFailure(400, f"Object schema {key!r} not found for this location", "Bad Request")


def list_objects(world: World, call: Call) -> dict[str, Any]:
    """`{"objects": [...]}`: the standard objects, then the location's custom objects."""
    loc = _location(world, call, call.query.get("locationId"))
    with world.lock:
        return {"objects": [dict(s) for s in loc.extra.get("object_schemas", [])]}


def search_records(world: World, call: Call) -> dict[str, Any]:
    body = call.body
    if not isinstance(body, dict):
        raise unprocessable("body must be a JSON object")
    unknown = sorted(set(body) - set(SEARCH_BODY))
    if unknown:
        raise unprocessable(*(f"property {name} should not exist" for name in unknown))
    missing = [f"{name} should not be empty" for name in SEARCH_BODY if name not in body]
    if missing:
        raise unprocessable(*missing)
    loc = _location(world, call, body["locationId"])
    key = _custom_object(loc, call.request.path_params["schema_key"])
    limit = _count(body["pageLimit"], "pageLimit", 1, RECORDS_MAX_PAGE_LIMIT)
    page = _count(body["page"], "page", 1)
    query, after = body["query"], body["searchAfter"]
    if not isinstance(query, str):
        raise unprocessable("query must be a string")
    if not isinstance(after, list):
        raise unprocessable("searchAfter must be an array")
    cursor = _cursor(after) if after else None
    if cursor is None and page * limit > RECORDS_WINDOW:
        raise ApiFailure(400, f"Result window is too large, page * pageLimit must be less than or equal to "
                         f"{RECORDS_WINDOW}. Use searchAfter to page deeper.", "Bad Request")
    skip = 0 if cursor is not None else (page - 1) * limit
    with world.lock:
        records = records_of(loc, key)
        assert records is not None
        records.catch_up()
        needle = query.split(":", 1)[-1].strip().lower()
        if not needle:
            keys, total = records.window("createdAt", True, None, None, cursor, limit, skip)
        else:
            primary = _primary(loc, key)
            matched = [k for k in records.scan("createdAt", True, None, None)
                       if needle in str(records.visible[k[1]]["properties"].get(primary, "")).lower()]
            total = len(matched)
            start = skip if cursor is None else next((i for i, k in enumerate(matched) if k < cursor), total)
            keys = matched[start:start + limit]
        rows = [{**records.visible[rid], "searchAfter": [stamp, rid]} for stamp, rid in keys]
    return {"records": rows, "total": total}


def _cursor(after: list[Any]) -> tuple[int, str]:
    """[epoch ms, id]: the spec types the items as strings, its example sends a number first; both go."""
    try:
        stamp, record_id = after
        if isinstance(stamp, bool) or not isinstance(record_id, str):
            raise ValueError
        return int(stamp), record_id
    except (TypeError, ValueError):
        raise unprocessable("searchAfter must be the searchAfter array of the last record of the previous page") \
            from None


def _primary(loc: Location, key: str) -> str:
    schema = next(s for s in loc.extra["object_schemas"] if s["key"] == key)
    return str(schema["primaryDisplayProperty"])[len(key) + 1:]


def get_record(world: World, call: Call) -> dict[str, Any]:
    """`{"record": {...}}`, read directly (no index lag)."""
    params = call.request.path_params
    with world.lock:
        loc = world.location(call.token.location_id or "")
        record = record_by_id(loc, params["schema_key"], params["record_id"]) if loc is not None else None
        if record is None:
            raise ApiFailure(404, "Record not found", "Not Found")
        return {"record": record}


def object_fields(world: World, call: Call) -> dict[str, Any]:
    """`{"fields": [...], "folders": [...]}` of one custom object (business: none defined here)."""
    loc = _location(world, call, call.query.get("locationId"))
    key = call.request.path_params["object_key"]
    with world.lock:
        if key == "business":
            return {"fields": [], "folders": []}
        _custom_object(loc, key)
        return {"fields": [dict(f) for f in fields_of(loc, key)],
                "folders": [dict(f) for f in loc.extra["object_folders"] if f["objectKey"] == key]}


def list_associations(world: World, call: Call) -> dict[str, Any]:
    loc = _location(world, call, call.query.get("locationId"))
    skip = _count(call.query.get("skip"), "skip", 0)
    limit = _count(call.query.get("limit"), "limit", 1, ASSOCIATIONS_MAX_LIMIT)
    with world.lock:
        rows = [dict(a) for a in loc.extra.get("associations", [])]
    return {"associations": rows[skip:skip + limit], "total": len(rows)}


def record_relations(world: World, call: Call) -> dict[str, Any]:
    """A record's relations (it may be either side), oldest first; optionally only some associations'."""
    loc = _location(world, call, call.query.get("locationId"))
    skip = _count(call.query.get("skip"), "skip", 0)
    limit = _count(call.query.get("limit"), "limit", 1, ASSOCIATIONS_MAX_LIMIT)
    wanted = {part for raw in call.request.query_params.getlist("associationIds") for part in raw.split(",") if part}
    record_id = call.request.path_params["record_id"]
    with world.lock:
        relations = loc.extra.get("relations", {})
        ids = sorted(loc.extra.get("relations_by_record", {}).get(record_id, ()))
        rows = [dict(relations[i]) for i in ids if not wanted or relations[i]["associationId"] in wanted]
    return {"relations": rows[skip:skip + limit], "total": len(rows)}


def routes(world: World, gw: Gateway) -> list[Route]:
    def r(path: str, fn: Any, method: str = "GET") -> Route:
        return Route(path, gw.route(V0728, partial(fn, world)), methods=[method])

    return [
        r("/objects/", list_objects),
        r("/objects/{schema_key}/records/search", search_records, "POST"),
        r("/objects/{schema_key}/records/{record_id}", get_record),
        r("/custom-fields/object-key/{object_key}", object_fields),
        r("/associations/", list_associations),
        r("/associations/relations/{record_id}", record_relations),
    ]
