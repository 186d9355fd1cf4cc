"""The account's small lists, each one `Version: 2021-07-28` GET as its spec has it.

`GET /campaigns/?locationId[&status]` -> `{"campaigns"}`, `GET /workflows/?locationId` ->
`{"workflows"}`, `GET /links/?locationId` -> `{"links"}`, `GET /locations/{locationId}/tags` ->
`{"tags"}`, `GET /locations/{locationId}/customValues` -> `{"customValues"}` (none of them paged),
and `GET /businesses/?locationId[&limit&skip]` -> `{"businesses"}` (`limit` default "100", `skip`
default "0", strings in the spec). Each needs its own read scope (scopes.py; the gateway checks).
"""

from __future__ import annotations

from functools import partial
from typing import Any

from starlette.routing import Route

from .gateway import Call, Gateway
from .routes_contacts import _location
from .routes_objects import _count
from .world import Location, World

V0728 = "2021-07-28"


def _rows(world: World, loc: Location, family: str) -> list[dict[str, Any]]:
    with world.lock:
        return [dict(row) for row in loc.extra.get(family, [])]


def campaigns(world: World, call: Call) -> dict[str, Any]:
    loc = _location(world, call, call.query.get("locationId"))
    status = call.query.get("status")
    return {"campaigns": [c for c in _rows(world, loc, "campaigns") if not status or c["status"] == status]}


def workflows(world: World, call: Call) -> dict[str, Any]:
    return {"workflows": _rows(world, _location(world, call, call.query.get("locationId")), "workflows")}


def links(world: World, call: Call) -> dict[str, Any]:
    return {"links": _rows(world, _location(world, call, call.query.get("locationId")), "links")}


def _path_location(world: World, call: Call) -> Location:
    return _location(world, call, call.request.path_params["location_id"])


def tags(world: World, call: Call) -> dict[str, Any]:
    return {"tags": _rows(world, _path_location(world, call), "tags")}


def custom_values(world: World, call: Call) -> dict[str, Any]:
    return {"customValues": _rows(world, _path_location(world, call), "custom_values")}


def businesses(world: World, call: Call) -> dict[str, Any]:
    loc = _location(world, call, call.query.get("locationId"))
    limit = _count(call.query.get("limit", "100"), "limit", 1)
    skip = _count(call.query.get("skip", "0"), "skip", 0)
    return {"businesses": _rows(world, loc, "businesses")[skip:skip + limit]}


def routes(world: World, gw: Gateway) -> list[Route]:
    def r(path: str, fn: Any) -> Route:
        return Route(path, gw.route(V0728, partial(fn, world)), methods=["GET"])

    return [
        r("/campaigns/", campaigns),
        r("/workflows/", workflows),
        r("/links/", links),
        r("/locations/{location_id}/tags", tags),
        r("/locations/{location_id}/customValues", custom_values),
        r("/businesses/", businesses),
    ]
