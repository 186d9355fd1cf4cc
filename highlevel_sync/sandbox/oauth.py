"""OAuth as HighLevel runs it: single-use rotating refresh tokens, expiring access tokens,
company vs location tokens, installed locations, location-token minting, suspended/uninstalled
sub-accounts. A reused refresh token is refused (401 invalid_grant) and logged as burned."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from functools import partial
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .gateway import ApiFailure, Call, Gateway, json_response, parse_form, unprocessable
from .tokens import READ_SCOPES, TokenInfo
from .world import World

ALL_SCOPES = READ_SCOPES | {"oauth.readonly", "oauth.write"}  # what an install grants


@dataclass
class Grant:
    user_type: str
    company_id: str
    location_id: str | None
    scopes: frozenset[str]


class OAuthState:
    def __init__(self, world: World) -> None:
        self.world = world
        self.refresh_tokens: dict[str, Grant] = {}
        self.spent: set[str] = set()
        self.codes: dict[str, Grant] = {}
        self.installed: set[str] = set(world.locations)
        self.suspended: set[str] = set()
        self.burned = 0

    def grant(self, user_type: str, location_id: str | None = None, scopes: frozenset[str] = ALL_SCOPES) -> str:
        token = "rt-" + secrets.token_urlsafe(32)
        self.refresh_tokens[token] = Grant(user_type, self.world.company_id, location_id, scopes)
        return token

    def code(self, user_type: str, location_id: str | None = None) -> str:
        code = secrets.token_hex(20)  # never starts with "-", which a command line would read as an option
        self.codes[code] = Grant(user_type, self.world.company_id, location_id, ALL_SCOPES)
        return code

    def issue(self, grant: Grant, with_refresh: bool = True) -> dict[str, Any]:
        access = "at-" + secrets.token_urlsafe(32)
        ttl = self.world.config.access_token_ttl_s
        self.world.tokens.add(access, TokenInfo("oauth", grant.user_type, grant.company_id, grant.location_id,
                                              grant.scopes, time.time() + ttl))
        body: dict[str, Any] = {"access_token": access, "token_type": "Bearer", "expires_in": ttl,
                                "scope": " ".join(sorted(grant.scopes)), "userType": grant.user_type,
                                "companyId": grant.company_id, "userId": "sandbox-user"}
        if grant.location_id:
            body["locationId"] = grant.location_id
        if grant.user_type == "Company":
            body["approvedLocations"] = sorted(self.installed)
        if with_refresh:
            refresh = "rt-" + secrets.token_urlsafe(32)
            self.refresh_tokens[refresh] = grant
            body["refresh_token"] = refresh
        return body


def token_endpoint(state: OAuthState, gw: Gateway) -> Any:
    """`POST /oauth/token`: no bearer token and no rate-limit count, so not a `gw.route`; it shares
    the edge's faults (drawn before the grant is looked at: a faulted refresh rotates nothing) and
    latency. The log shows the grant type only, never a secret."""

    async def endpoint(request: Request) -> Response:
        form = parse_form(await request.body())
        entry: dict[str, Any] = {"ts": time.time(), "method": "POST", "path": "/oauth/token", "query": {},
                                 "body": {"grant_type": form.get("grant_type")}, "location_id": None, "status": 0,
                                 "token_kind": None}
        response = await gw.fault("/oauth/token", None) or _token(state, form, entry)
        entry["status"] = response.status_code
        gw.log.append(entry)
        await gw.latency.wait(0)
        return response

    return endpoint


def _token(state: OAuthState, form: dict[str, Any], entry: dict[str, Any]) -> Response:
    config = state.world.config
    if form.get("client_id") != config.client_id or form.get("client_secret") != config.client_secret:
        return json_response(401, {"statusCode": 401, "error": "invalid_client",
                                   "message": "Invalid client: client_id or client_secret is wrong"})
    with state.world.lock:
        grant_type = form.get("grant_type")
        if grant_type == "refresh_token":
            token = str(form.get("refresh_token", ""))
            if token in state.spent:
                state.burned += 1
                entry["burned"] = True
                return json_response(401, {"statusCode": 401, "error": "invalid_grant",
                                           "message": "Invalid grant: refresh token is invalid"})
            grant = state.refresh_tokens.pop(token, None)
            if grant is None:
                return json_response(401, {"statusCode": 401, "error": "invalid_grant",
                                           "message": "Invalid grant: refresh token is invalid"})
            state.spent.add(token)
        elif grant_type == "authorization_code":
            grant = state.codes.pop(str(form.get("code", "")), None)
            if grant is None:
                return json_response(401, {"statusCode": 401, "error": "invalid_grant",
                                           "message": "Invalid grant: authorization code is invalid"})
        else:
            return json_response(422, {"statusCode": 422, "message": ["grant_type must be a valid enum value"],
                                       "error": "Unprocessable Entity"})
        entry["location_id"] = grant.location_id or grant.company_id
        if grant.location_id and grant.location_id in state.suspended:
            return json_response(400, {"statusCode": 400, "message": "Location is not active"})
        return json_response(200, state.issue(grant))


def mint_location_token(state: OAuthState, call: Call) -> dict[str, Any]:
    form = call.body if isinstance(call.body, dict) else {}
    if not form:
        raise unprocessable("companyId should not be empty", "locationId should not be empty")
    location_id = str(form.get("locationId", ""))
    if form.get("companyId") != call.token.company_id:
        raise ApiFailure(400, "Company id does not match the token")
    if location_id not in state.world.locations or location_id not in state.installed:
        raise ApiFailure(401, "This app is not installed on the location", "Unauthorized")
    if location_id in state.suspended:
        raise ApiFailure(400, "Location is not active")
    body = state.issue(Grant("Location", call.token.company_id, location_id, call.token.scopes), with_refresh=True)
    body.update(planId=None, appId=state.world.config.client_id.split("-")[0], versionId="v1")
    return body


def installed_locations(state: OAuthState, call: Call) -> dict[str, Any]:
    q = call.query
    if q.get("companyId") != call.token.company_id or not q.get("appId"):
        raise unprocessable("companyId should not be empty", "appId should not be empty")
    skip, limit = int(q.get("skip", "0")), int(q.get("limit", "20"))
    if limit > 100:
        raise unprocessable("limit must not be greater than 100")
    rows = [{"_id": loc.id, "name": loc.record["name"], "address": loc.record["address"], "isInstalled": True,
             "versionId": "v1", "installedAt": "2025-06-01T00:00:00.000Z"}
            for loc in state.world.locations.values() if loc.id in state.installed]
    return {"locations": rows[skip:skip + limit], "count": len(state.world.locations),
            "installToFutureLocations": False}


def routes(state: OAuthState, gw: Gateway) -> list[Route]:
    return [
        Route("/oauth/token", token_endpoint(state, gw), methods=["POST"]),
        Route("/oauth/locationToken", gw.route("2021-07-28", partial(mint_location_token, state), company_ok=True,
                                               location_ok=False, form=True), methods=["POST"]),
        Route("/oauth/installedLocations", gw.route("2021-07-28", partial(installed_locations, state),
                                                    company_ok=True, location_ok=False), methods=["GET"]),
    ]
