"""The request pipeline every API route shares: auth, rate limit, Version header, faults, log."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import orjson
from starlette.requests import Request
from starlette.responses import Response

from .faults import Faults
from .ratelimit import RateLimiter
from .world import TokenInfo, World

INVALID_TOKEN = {"statusCode": 401, "message": "Invalid token: access token is invalid", "error": "Unauthorized"}
GARBAGE = b"<html><head><title>502 Bad Gateway</title></head><body>cloudflare</body></html>"


class ApiFailure(Exception):
    """Raised by handlers to answer with a HighLevel-shaped error body."""

    def __init__(self, status: int, message: Any, error: str | None = None) -> None:
        super().__init__(str(message))
        self.status = status
        self.body: dict[str, Any] = {"statusCode": status, "message": message}
        if error:
            self.body["error"] = error


def unprocessable(*messages: str) -> ApiFailure:
    return ApiFailure(422, list(messages) or ["Unprocessable Entity"], "Unprocessable Entity")


@dataclass
class Call:
    """What a handler gets: the parsed request and the token it was made with."""

    request: Request
    token: TokenInfo
    body: Any
    query: dict[str, str]


Handler = Callable[[Call], Awaitable[dict[str, Any]] | dict[str, Any]]


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


class Gateway:
    """Wraps route handlers with the behaviour of HighLevel's edge."""

    def __init__(self, world: World, limiter: RateLimiter, faults: Faults) -> None:
        self.world = world
        self.limiter = limiter
        self.faults = faults
        self.log: list[dict[str, Any]] = []
        self.suspended: set[str] = set()  # shared with the OAuth state
        self.log_lock = asyncio.Lock()

    def route(self, version: str | None, handler: Handler, company_ok: bool = False,
              location_ok: bool = True, form: bool = False) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            body: Any = None
            raw = await request.body()
            if form and "form" in request.headers.get("content-type", ""):
                body, raw = parse_form(raw), b""
            if raw:
                try:
                    body = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    body = raw.decode("utf-8", "replace")
            query = dict(request.query_params)
            entry: dict[str, Any] = {"ts": time.time(), "method": request.method, "path": request.url.path,
                                     "query": query, "body": body if not isinstance(body, str) else None,
                                     "location_id": None, "status": 0, "token_kind": None}
            response = await self._handle(request, version, handler, company_ok, location_ok, body, query, entry)
            entry["status"] = response.status_code
            self.log.append(entry)
            return response

        return endpoint

    async def _handle(self, request: Request, version: str | None, handler: Handler, company_ok: bool,
                      location_ok: bool, body: Any, query: dict[str, str], entry: dict[str, Any]) -> Response:
        token = self._token(request)
        if token is None:
            entry["token_kind"] = "invalid"
            return json_response(401, INVALID_TOKEN)
        if token.location_id is not None and token.location_id in self.suspended:
            return json_response(400, {"statusCode": 400, "message": "Location is not active"})
        entry["token_kind"] = f"{token.kind}:{token.user_type}"
        if token.expires_at is not None and time.time() >= token.expires_at:
            entry["expired_token"] = True
            return json_response(401, INVALID_TOKEN)
        key = token.location_id if token.user_type == "Location" else token.company_id
        entry["location_id"] = key
        allowed, headers = self.limiter.hit(str(key))
        if not allowed:
            return json_response(429, {"statusCode": 429, "message": "Too many requests"}, headers)
        if version is not None:
            sent = request.headers.get("version")
            if not sent:
                return json_response(400, {"statusCode": 400, "message": "Version header was not found"}, headers)
            if sent != version:
                return json_response(400, {"statusCode": 400, "message": f"Version {sent!r} is not supported for "
                                           "this endpoint"}, headers)
        if (token.user_type == "Company" and not company_ok) or (token.user_type == "Location" and not location_ok):
            return json_response(401, {"statusCode": 401, "message": "This authClass type is not allowed to "
                                       "access this scope. Please reach out to the Platform team to get it added."},
                                 headers)
        fault = self.faults.draw(request.url.path)
        if fault.kind == "status":
            message = "Too many requests" if fault.status == 429 else "Internal server error"
            return json_response(fault.status, {"statusCode": fault.status, "message": message}, headers)
        if fault.kind == "garbage":
            return Response(GARBAGE, status_code=200, media_type="text/html", headers=headers)
        if fault.kind == "slow":
            await asyncio.sleep(fault.delay_s)
        try:
            result = handler(Call(request, token, body, query))
            if asyncio.iscoroutine(result):
                result = await result
            assert isinstance(result, dict)
        except ApiFailure as failure:
            return json_response(failure.status, failure.body, headers)
        result.setdefault("traceId", str(uuid.uuid4()))
        return json_response(200, result, headers)

    def _token(self, request: Request) -> TokenInfo | None:
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("bearer "):
            return None
        return self.world.tokens.get(header[7:].strip())


def parse_form(raw: bytes) -> dict[str, str]:
    """application/x-www-form-urlencoded, as the OAuth endpoints take it (first value per key)."""
    return {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True).items()}


def require_location(call: Call, location_id: Any) -> str:
    """A location token may only read its own location."""
    if not isinstance(location_id, str) or not location_id:
        raise unprocessable("locationId should not be empty", "locationId must be a string")
    if call.token.user_type == "Location" and call.token.location_id != location_id:
        raise ApiFailure(403, "The token does not have access to this location.")
    if call.token.user_type == "Company":
        loc = call.request.app.state.world.location(location_id)
        if loc is None or loc.record["companyId"] != call.token.company_id:
            raise ApiFailure(403, "The token does not have access to this location.")
    return location_id
