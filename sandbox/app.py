"""The Starlette app: HighLevel API routes plus a control API under `/__sandbox__/`."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import routes_contacts as rc
from .faults import Faults
from .gateway import Call, Gateway, json_response
from .ratelimit import RateLimiter
from .world import World

V2021_07_28 = "2021-07-28"
V2021_04_15 = "2021-04-15"


def build_app(world: World, limiter: RateLimiter, faults: Faults,
              extra_routes: Callable[[Gateway], list[Route]] | None = None) -> tuple[Starlette, Gateway]:
    gw = Gateway(world, limiter, faults)

    def bind(fn: Callable[[World, Call], dict[str, Any]]) -> Callable[[Call], dict[str, Any]]:
        return partial(fn, world)

    routes = [
        Route("/contacts/search", gw.route(V2021_07_28, bind(rc.search_contacts)), methods=["POST"]),
        Route("/contacts/", gw.route(V2021_07_28, bind(rc.list_contacts)), methods=["GET"]),
        Route("/locations/{location_id}", gw.route(V2021_07_28, bind(rc.get_location), company_ok=True),
              methods=["GET"]),
        Route("/locations/{location_id}/customFields", gw.route(V2021_07_28, bind(rc.custom_fields)),
              methods=["GET"]),
        Route("/users/search", gw.route(V2021_07_28, bind(rc.search_users), company_ok=True), methods=["GET"]),
        *(extra_routes(gw) if extra_routes else []),
        *control_routes(world, limiter, faults, gw),
    ]
    app = Starlette(routes=routes)
    app.state.world = world
    return app, gw


def control_routes(world: World, limiter: RateLimiter, faults: Faults, gw: Gateway) -> list[Route]:
    async def info(request: Request) -> Response:
        return json_response(200, {"location_ids": list(world.locations), "company_id": world.company_id,
                                   "tokens": dict(world.pits), "client_id": world.config.client_id})

    async def truth_contacts(request: Request) -> Response:
        loc = world.location(request.query_params.get("locationId", ""))
        if loc is None:
            return json_response(404, {"message": "unknown location"})
        with world.lock:
            rows = sorted(loc.contacts.truth.values(), key=lambda r: r["id"])
        return json_response(200, {"contacts": rows})

    async def mutate(request: Request) -> Response:
        body = orjson.loads(await request.body())
        actions = {"update": world.update_contacts, "create": world.create_contacts, "delete": world.delete_contacts}
        action = actions.get(body.get("action"))
        if action is None or body.get("locationId") not in world.locations:
            return json_response(400, {"message": "need locationId and action update|create|delete"})
        return json_response(200, {"ids": action(body["locationId"], int(body.get("n", 1)))})

    async def requests(request: Request) -> Response:
        if request.method == "DELETE":
            gw.log.clear()
            return json_response(200, {"cleared": True})
        return json_response(200, {"requests": gw.log})

    async def set_faults(request: Request) -> Response:
        body = orjson.loads(await request.body() or b"{}")
        if body.pop("clear", False):
            faults.clear()
        if body:
            faults.set(**body)
        return json_response(200, {"ok": True})

    async def ratelimits(request: Request) -> Response:
        body = orjson.loads(await request.body() or b"{}")
        limiter.configure(body.get("max"), int(body.get("interval_ms", 10_000)), body.get("daily_quota"))
        return json_response(200, {"ok": True})

    return [
        Route("/__sandbox__/info", info, methods=["GET"]),
        Route("/__sandbox__/truth/contacts", truth_contacts, methods=["GET"]),
        Route("/__sandbox__/mutate", mutate, methods=["POST"]),
        Route("/__sandbox__/requests", requests, methods=["GET", "DELETE"]),
        Route("/__sandbox__/faults", set_faults, methods=["POST"]),
        Route("/__sandbox__/ratelimits", ratelimits, methods=["POST"]),
    ]
