"""Credentials as `httpx.Auth` flows, so every request of a location carries the right token.

A Private Integration Token is a static bearer token scoped to one location. OAuth (rotating,
single-use refresh tokens and agency fan-out) builds on the same interface: the client only ever
asks "which auth for this location?".
"""

from __future__ import annotations

from collections.abc import Generator, Mapping

import httpx

from .errors import ConfigError


class BearerAuth(httpx.Auth):
    """A static bearer token (Private Integration Token). Never shows the token in its repr."""

    def __init__(self, token: str) -> None:
        if not token or not token.strip():
            raise ConfigError("empty token: set SOURCES__HIGHLEVEL__PRIVATE_INTEGRATION_TOKEN")
        self._header = f"Bearer {token.strip()}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request

    def __repr__(self) -> str:
        return "BearerAuth(token=<redacted>)"


class StaticAuthProvider:
    """Maps each location to its auth; used for Private Integration Tokens (one per location)."""

    def __init__(self, tokens: Mapping[str, str]) -> None:
        self._auth = {location: BearerAuth(token) for location, token in tokens.items()}

    def __call__(self, location_id: str) -> httpx.Auth:
        try:
            return self._auth[location_id]
        except KeyError:
            raise ConfigError(
                f"no credentials for location {location_id}: a Private Integration Token reads only the "
                "location it was created in; set SOURCES__HIGHLEVEL__LOCATION_ID to that location"
            ) from None

    def __repr__(self) -> str:
        return f"StaticAuthProvider(locations={sorted(self._auth)})"
