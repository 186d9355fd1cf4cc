"""The Starlette app: HighLevel API routes plus a control API under `/__sandbox__/`.

The control API mirrors the `Sandbox` object's methods over HTTP, for a sandbox running in
another process (`highlevel-sync sandbox serve`, the benchmark). It needs no token, is never
rate limited or faulted, and is not in the request log.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import oauth, routes_lists, routes_more, routes_objects, routes_revenue, routes_tasks
from . import routes_contacts as rc
from .gateway import error_response, json_response
from .revenue_control import ACTIONS as REVENUE_ACTIONS
from .world import World

if TYPE_CHECKING:
    from .gateway import Call
    from .server import Sandbox

V2021_07_28 = "2021-07-28"


def build_app(sb: Sandbox) -> Starlette:
    gw, world = sb.gateway, sb.world

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
        *routes_more.routes(world, gw, sb.opportunity_search),
        *routes_tasks.routes(world, gw),
        *routes_objects.routes(world, gw),
        *routes_lists.routes(world, gw),
        *routes_revenue.routes(world, gw),
        *oauth.routes(sb.oauth, gw),
        *control_routes(sb),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: _http_error, Exception: _server_error})
    app.state.world = world
    return app


async def _http_error(request: Request, exc: Exception) -> Response:
    """Unknown paths and methods answer like HighLevel's NestJS stack: JSON, never HTML."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    error = {404: "Not Found", 405: "Method Not Allowed"}.get(status, "Error")
    return error_response(status, f"Cannot {request.method} {request.url.path}", error=error)


async def _server_error(request: Request, exc: Exception) -> Response:
    return error_response(500, "Internal server error")


class _BadControl(Exception):
    pass


def control_routes(sb: Sandbox) -> list[Route]:
    def control(fn: Callable[[Request, dict[str, Any]], Any]) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            try:
                raw = await request.body()
                body = orjson.loads(raw) if raw else {}
                if not isinstance(body, dict):
                    raise _BadControl("body must be a JSON object")
                # in a worker thread: waiting for the index must not stall the API on the event loop
                return json_response(200, await run_in_threadpool(fn, request, body))
            except (_BadControl, orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                return json_response(400, {"error": f"{type(exc).__name__}: {exc}"})

        return endpoint

    def info(request: Request, body: dict[str, Any]) -> Any:
        return {**sb.info(), "base_url": str(request.base_url).rstrip("/")}

    def truth(request: Request, body: dict[str, Any]) -> Any:
        location_id = request.query_params.get("locationId", "")
        if location_id not in sb.location_ids:
            raise _BadControl(f"unknown locationId {location_id!r}")
        family = request.path_params["family"]
        readers: dict[str, Callable[[], Any]] = {
            "contacts": lambda: sb.truth_contacts(location_id),
            "customFields": lambda: sb.truth_custom_fields(location_id, request.query_params.get("model", "contact")),
            "users": lambda: sb.truth_users(location_id),
            "location": lambda: sb.truth_location(location_id),
        }
        reader = readers.get(family, lambda: sb.truth(location_id, family))
        return {family: reader()}

    def mutate(request: Request, body: dict[str, Any]) -> Any:
        actions = {"update": sb.update_contacts, "create": sb.create_contacts, "delete": sb.delete_contacts}
        action, location_id, n = actions.get(body.get("action", "")), body.get("locationId"), body.get("n", 1)
        if action is None or location_id not in sb.location_ids or not isinstance(n, int) or n < 0:
            raise _BadControl('need {"locationId": <id>, "action": "update|create|delete", "n": <count>}')
        return {"ids": action(location_id, n)}

    def requests(request: Request, body: dict[str, Any]) -> Any:
        if request.method == "DELETE":
            sb.clear_requests()
            return {"cleared": True}
        return {"requests": sb.requests(request.query_params.get("pathPrefix"))}

    def faults(request: Request, body: dict[str, Any]) -> Any:
        if body.pop("clear", False):
            sb.faults.clear()
        if "fail_next" in body:
            sb.faults.fail_next(**body.pop("fail_next"))
        if "garbage_next" in body:
            sb.faults.garbage_next(**body.pop("garbage_next"))
        if body:
            sb.faults.set(**body)
        return {"ok": True}

    def opportunity_search(request: Request, body: dict[str, Any]) -> Any:
        if body.pop("clear", False):
            sb.opportunity_search.clear()
        if "answer" in body:
            sb.opportunity_search.set(str(body["answer"]), body.get("locationId"))
        return {"ok": True}

    def ratelimits(request: Request, body: dict[str, Any]) -> Any:
        if body.pop("reset", False):
            sb.reset_rate_limits()
        if body:
            sb.set_rate_limits(**body)
        return {"ok": True}

    def latency(request: Request, body: dict[str, Any]) -> Any:
        sb.set_latency(**body)
        return {"fixed_ms": sb.latency.fixed_ms, "per_record_ms": sb.latency.per_record_ms}

    def scopes(request: Request, body: dict[str, Any]) -> Any:
        location_id, revoked = body.get("locationId"), body.get("revoke")
        if location_id not in sb.location_ids or not isinstance(revoked, list):
            raise _BadControl('need {"locationId": <id>, "revoke": [<scope>, ...]}')
        sb.revoke_scopes(location_id, revoked)
        return {"ok": True}

    def revenue(request: Request, body: dict[str, Any]) -> Any:
        """{"locationId", "action": one of revenue_control.ACTIONS, ...its keyword arguments}."""
        location_id, action = body.pop("locationId", None), body.pop("action", None)
        if location_id not in sb.location_ids or action not in REVENUE_ACTIONS:
            raise _BadControl(f'need {{"locationId": <id>, "action": {"|".join(REVENUE_ACTIONS)}, ...}}')
        try:
            return {"result": getattr(sb, action)(location_id, **body)}
        except LookupError as exc:
            raise _BadControl(str(exc)) from None

    def wait_for_index(request: Request, body: dict[str, Any]) -> Any:
        sb.wait_for_index()
        return {"ok": True}

    return [
        Route("/__sandbox__/info", control(info), methods=["GET"]),
        Route("/__sandbox__/truth/{family}", control(truth), methods=["GET"]),
        Route("/__sandbox__/mutate", control(mutate), methods=["POST"]),
        Route("/__sandbox__/requests", control(requests), methods=["GET", "DELETE"]),
        Route("/__sandbox__/faults", control(faults), methods=["POST"]),
        Route("/__sandbox__/ratelimits", control(ratelimits), methods=["POST"]),
        Route("/__sandbox__/latency", control(latency), methods=["POST"]),
        Route("/__sandbox__/opportunity-search", control(opportunity_search), methods=["POST"]),
        Route("/__sandbox__/wait-for-index", control(wait_for_index), methods=["POST"]),
        Route("/__sandbox__/scopes", control(scopes), methods=["POST"]),
        Route("/__sandbox__/revenue", control(revenue), methods=["POST"]),
    ]
