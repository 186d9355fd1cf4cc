"""The request pipeline every API route shares: auth, rate limit, Version header, faults, log.

Order, as seen from outside: an unknown token is refused before anything is counted; a known
token's request is counted against its location (company tokens: the company) before the
Version header and faults are checked, so a client's mistakes and bad luck cost quota as they do
upstream. Every API answer, errors included, carries the five rate-limit headers; every success
body a `traceId`; every error body `{"statusCode", "message"}` (422s: `message` is a list). Every
answer then waits out the latency model (latency.py) on the event loop, overlapping the others.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import orjson
from starlette.requests import Request
from starlette.responses import Response

from .faults import Faults
from .latency import Latency, records_in
from .ratelimit import RateLimiter
from .scopes import NOT_AUTHORIZED, required_scope
from .tokens import TokenInfo
from .world import World

INVALID_TOKEN = {"statusCode": 401, "message": "Invalid token: access token is invalid", "error": "Unauthorized"}
NO_LOCATION_ACCESS = "The token does not have access to this location."
GARBAGE = (b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway"
           b"</h1></center><hr><center>cloudflare</center></body></html>")
FAULT_MESSAGES = {429: "Too many requests", 500: "Internal server error", 502: "Bad Gateway",
                  503: "Service Unavailable", 504: "Gateway Timeout"}
REQUEST_LOG_SIZE = 200_000  # newest entries kept: a long-running `serve` must not grow without bound


class ApiFailure(Exception):
    """Raised by handlers to answer with a HighLevel-shaped error body."""

    def __init__(self, status: int, message: Any, error: str | None = None) -> None:
        super().__init__(str(message))
        self.status = status
        self.body: dict[str, Any] = {"statusCode": status, "message": message}
        if error:
            self.body["error"] = error


class RawAnswer(Exception):
    """Raised by handlers to answer with exactly these bytes (an empty or non-JSON body)."""

    def __init__(self, status: int, content: bytes, media_type: str) -> None:
        super().__init__(f"HTTP {status} with a raw body")
        self.status = status
        self.content = content
        self.media_type = media_type


def unprocessable(*messages: str) -> ApiFailure:
    """A 422 as HighLevel's validation layer sends it: `message` is a list of strings."""
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


def error_response(status: int, message: Any, headers: dict[str, str] | None = None,
                   error: str | None = None) -> Response:
    body: dict[str, Any] = {"statusCode": status, "message": message}
    if error:
        body["error"] = error
    return json_response(status, body, headers)


class _BadJson(Exception):
    pass


class Gateway:
    """Wraps route handlers with the behaviour of HighLevel's edge."""

    def __init__(self, world: World, limiter: RateLimiter, faults: Faults, latency: Latency | None = None) -> None:
        self.world = world
        self.limiter = limiter
        self.faults = faults
        self.latency = latency or Latency()
        self.log: deque[dict[str, Any]] = deque(maxlen=REQUEST_LOG_SIZE)
        self.suspended: set[str] = set()  # shared with the OAuth state
        # one-shot actions run just before a matching request is served: [path prefix, requests to
        # let through first, action]. They stand for people editing the account while a client reads.
        self._before: list[list[Any]] = []
        self._before_lock = threading.Lock()

    def before_request(self, path_prefix: str, action: Callable[[], Any], after: int = 0) -> None:
        """Run `action` once, right before the (after + 1)-th API request under `path_prefix` is served."""
        with self._before_lock:
            self._before.append([path_prefix, after, action])

    def _run_before(self, path: str) -> None:
        due = []
        with self._before_lock:
            for hook in list(self._before):
                if not path.startswith(hook[0]):
                    continue
                if hook[1] > 0:
                    hook[1] -= 1
                    continue
                self._before.remove(hook)
                due.append(hook[2])
        for action in due:
            action()

    def route(self, version: str | None, handler: Handler, company_ok: bool = False,
              location_ok: bool = True, form: bool = False) -> Callable[[Request], Awaitable[Response]]:
        """An endpoint for `handler`: `version` is the required Version header (None: none needed);
        `company_ok`/`location_ok` say which token classes the route accepts; `form` accepts
        form-encoded bodies (the OAuth endpoints)."""

        async def endpoint(request: Request) -> Response:
            query = dict(request.query_params)
            entry: dict[str, Any] = {"ts": time.time(), "method": request.method, "path": request.url.path,
                                     "query": query, "body": None, "location_id": None, "status": 0,
                                     "token_kind": None}
            try:
                body = await _read_body(request, form)
                entry["body"] = body
                response = await self._handle(request, version, handler, company_ok, location_ok, body, query,
                                              entry)
            except _BadJson as bad:
                response = error_response(400, str(bad), self._headers_for(request, entry), "Bad Request")
            entry["status"] = response.status_code
            self.log.append(entry)
            await self.latency.wait(entry.get("records", 0))
            return response

        return endpoint

    async def fault(self, path: str, key: str | None, headers: dict[str, str] | None = None,
                    body: Any = None) -> Response | None:
        """The answer a drawn fault gives instead of the handler's (None: serve normally); a slow
        fault waits here and then serves normally. Shared with the OAuth token endpoint."""
        fault = self.faults.draw(path, key, body)
        if fault.kind == "status":
            return error_response(fault.status, FAULT_MESSAGES.get(fault.status, "Internal server error"), headers)
        if fault.kind == "garbage":
            return Response(GARBAGE, status_code=200, media_type="text/html", headers=headers)
        if fault.kind == "slow":
            await asyncio.sleep(fault.delay_s)
        return None

    def _headers_for(self, request: Request, entry: dict[str, Any]) -> dict[str, str]:
        """Count a request whose body could not be parsed, as upstream does."""
        token = self._token(request)
        if token is None:
            return self.limiter.headers()
        key = self._key(token)
        entry["location_id"] = key
        return self.limiter.hit(key)[1]

    async def _handle(self, request: Request, version: str | None, handler: Handler, company_ok: bool,
                      location_ok: bool, body: Any, query: dict[str, str], entry: dict[str, Any]) -> Response:
        token = self._token(request)
        if token is None:
            entry["token_kind"] = "invalid"
            return json_response(401, INVALID_TOKEN, self.limiter.headers())
        entry["token_kind"] = f"{token.kind}:{token.user_type}"
        if token.expired():
            entry["expired_token"] = True
            return json_response(401, INVALID_TOKEN, self.limiter.headers())
        key = self._key(token)
        entry["location_id"] = key
        allowed, headers = self.limiter.hit(key)
        if not allowed:
            return error_response(429, "Too many requests", headers)
        if token.location_id is not None and token.location_id in self.suspended:
            return error_response(400, "Location is not active", headers)
        if version is not None:
            sent = request.headers.get("version")
            if not sent:
                return error_response(400, "Version header was not found", headers)
            if sent != version:
                return error_response(400, f"Version '{sent}' is not supported by this endpoint; "
                                      f"use Version: {version}", headers)
        if (token.user_type == "Company" and not company_ok) or (token.user_type == "Location" and not location_ok):
            return error_response(401, "This authClass type is not allowed to access this scope. Please reach out "
                                  "to the Platform team to get it added.", headers)
        scope = required_scope(request.url.path)
        if scope is not None and scope not in token.scopes:
            return error_response(401, NOT_AUTHORIZED, headers, "Unauthorized")
        faulted = await self.fault(request.url.path, key, headers, body)
        if faulted is not None:
            return faulted
        self._run_before(request.url.path)
        try:
            result = handler(Call(request, token, body, query))
            if asyncio.iscoroutine(result):
                result = await result
            assert isinstance(result, dict)
        except ApiFailure as failure:
            return json_response(failure.status, failure.body, headers)
        except RawAnswer as raw:
            return Response(raw.content, status_code=raw.status, media_type=raw.media_type, headers=headers)
        result.setdefault("traceId", str(uuid.uuid4()))
        entry["records"] = records_in(result)
        return json_response(200, result, headers)

    @staticmethod
    def _key(token: TokenInfo) -> str:
        """What the limits count against: the location for location tokens, else the company."""
        return token.location_id if token.user_type == "Location" and token.location_id else token.company_id

    def _token(self, request: Request) -> TokenInfo | None:
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("bearer "):
            return None
        return self.world.tokens.lookup(header[7:].strip())


async def _read_body(request: Request, form: bool) -> Any:
    raw = await request.body()
    if not raw:
        return None
    if form and "form" in request.headers.get("content-type", ""):
        return parse_form(raw)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _BadJson(f"Unexpected token in JSON at position {exc.pos}") from None


def parse_form(raw: bytes) -> dict[str, str]:
    """application/x-www-form-urlencoded, as the OAuth endpoints take it (first value per key)."""
    return {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True).items()}


def require_location(call: Call, location_id: Any) -> str:
    """A location token may only read its own location; a company token only its company's."""
    if not isinstance(location_id, str) or not location_id:
        raise unprocessable("locationId should not be empty", "locationId must be a string")
    if call.token.user_type == "Location" and call.token.location_id != location_id:
        raise ApiFailure(403, NO_LOCATION_ACCESS)
    if call.token.user_type == "Company":
        loc = call.request.app.state.world.location(location_id)
        if loc is None or loc.record["companyId"] != call.token.company_id:
            raise ApiFailure(403, NO_LOCATION_ACCESS)
    return location_id
