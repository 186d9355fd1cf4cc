"""Credentials as `httpx.Auth` flows, so every request of a location carries the right token.

A Private Integration Token is a static bearer token scoped to one location. OAuth (rotating,
single-use refresh tokens and agency fan-out) builds on the same interface: the client only ever
asks "which auth for this location?".
"""

from __future__ import annotations

import threading
from collections.abc import Generator, Mapping

import httpx

from .errors import AuthError, ConfigError
from .killpoints import kill_point
from .oauth import AgencyTokenRefused, OAuthApp
from .tokenstore import StoreData, TokenSet, TokenStore


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


# --- OAuth -------------------------------------------------------------------------------------

COMPANY_KEY = "__company__"


class TokenManager:
    """Hands out valid access tokens per key (a location id, or COMPANY_KEY), rotating safely.

    The rule that keeps single-use refresh tokens alive: under the store's cross-process lock,
    re-read the store; if someone else already rotated, use their tokens; otherwise refresh (or
    re-mint a location token from the company token), *save*, and only then use the new token.
    """

    def __init__(self, store: TokenStore, app: OAuthApp, refresh_margin_s: float = 120.0) -> None:
        self.store = store
        self.app = app
        self.refresh_margin_s = refresh_margin_s
        self._cache: dict[str, TokenSet] = {}
        self._thread_lock = threading.RLock()
        self.refreshes = 0
        self.mints = 0

    def current(self, key: str) -> TokenSet:
        with self._thread_lock:
            tokens = self._cache.get(key)
        if tokens is None:
            tokens = self._lookup(self.store.load(), key)
        if tokens is None:
            if key != COMPANY_KEY and self._has_company():
                return self.renew(key, rejected=None)
            raise AuthError(
                f"no OAuth token for {_describe(key)} in the token store; run `highlevel-sync auth login` "
                "or `highlevel-sync auth import`"
            )
        if tokens.needs_renewal(self.refresh_margin_s):
            return self.renew(key, rejected=tokens)
        with self._thread_lock:
            self._cache[key] = tokens
        return tokens

    def renew(self, key: str, rejected: TokenSet | None) -> TokenSet:
        """Replace `rejected` (expired or refused) with fresh tokens, at most once across processes."""
        with self._thread_lock, self.store.lock():
            data = self.store.load()
            stored = self._lookup(data, key)
            if stored is not None and (rejected is None or stored.access_token != rejected.access_token) \
                    and not stored.needs_renewal(self.refresh_margin_s):
                self._cache[key] = stored  # another worker rotated already
                return stored
            if key == COMPANY_KEY or (stored is not None and not stored.minted and stored.refresh_token):
                if stored is None:
                    raise AuthError("no company token stored; run `highlevel-sync auth login`")
                fresh = self.app.refresh(stored, stored=lambda: self._lookup(self.store.load(), key))
                self.refreshes += 1
                fresh = _keep_identity(fresh, stored)
            else:
                company = self._company_locked(data)
                try:
                    fresh = self.app.mint_location_token(company, key)
                except AgencyTokenRefused:  # revoked or expired early: renew it, then mint once more
                    company = self.renew(COMPANY_KEY, rejected=company)
                    fresh = self.app.mint_location_token(company, key)
                self.mints += 1
                data = self.store.load()  # company tokens may have rotated inside _company_locked
            if key == COMPANY_KEY:
                data = StoreData(company=fresh, locations=data.locations)
            else:
                data = data.with_location(key, fresh)
            self.store.save(data)  # persisted before anyone uses it
            kill_point("token_refresh")
            self._cache[key] = fresh
            return fresh

    def _company_locked(self, data: StoreData) -> TokenSet:
        company = data.company
        if company is None:
            raise AuthError("no company (agency) token stored; run `highlevel-sync auth login` as an agency admin")
        if company.needs_renewal(self.refresh_margin_s):
            company = self.renew(COMPANY_KEY, rejected=company)
        return company

    def _has_company(self) -> bool:
        return self.store.load().company is not None

    @staticmethod
    def _lookup(data: StoreData, key: str) -> TokenSet | None:
        return data.company if key == COMPANY_KEY else data.locations.get(key)


class OAuthTokenAuth(httpx.Auth):
    """Bearer token from the TokenManager; on a 401 "invalid token" renew once and replay.

    A 401 about scopes is not fixed by refreshing, so it is passed through (the client turns it
    into a ScopeError). The store lock is never held while the API request is in flight.
    """

    requires_response_body = True

    def __init__(self, manager: TokenManager, key: str) -> None:
        self.manager = manager
        self.key = key

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        tokens = self.manager.current(self.key)
        request.headers["Authorization"] = f"Bearer {tokens.access_token}"
        response = yield request
        if response.status_code != 401 or not _token_rejected(response.text):
            return
        tokens = self.manager.renew(self.key, rejected=tokens)
        request.headers["Authorization"] = f"Bearer {tokens.access_token}"
        yield request

    def __repr__(self) -> str:
        return f"OAuthTokenAuth({_describe(self.key)})"


class OAuthAuthProvider:
    """Auth per location for OAuth installs (location tokens, or minted from the agency token)."""

    def __init__(self, manager: TokenManager) -> None:
        self.manager = manager
        self._auth: dict[str, OAuthTokenAuth] = {}

    def __call__(self, key: str) -> httpx.Auth:
        if key not in self._auth:
            self._auth[key] = OAuthTokenAuth(self.manager, key)
        return self._auth[key]


def _token_rejected(body: str) -> bool:
    """A 401 that a new token can fix: an invalid/expired token, not a missing scope or an IAM refusal."""
    lowered = body.lower()
    if "scope" in lowered or "iam" in lowered or "authclass" in lowered:
        return False
    return "invalid" in lowered or "expired" in lowered or "jwt" in lowered or not lowered.strip()


def _keep_identity(fresh: TokenSet, stored: TokenSet) -> TokenSet:
    """Refresh answers may omit ids; keep what the store knew."""
    return TokenSet(
        access_token=fresh.access_token,
        refresh_token=fresh.refresh_token or stored.refresh_token,
        expires_at=fresh.expires_at,
        lifetime_s=fresh.lifetime_s,
        user_type=fresh.user_type or stored.user_type,
        scopes=fresh.scopes or stored.scopes,
        company_id=fresh.company_id or stored.company_id,
        location_id=fresh.location_id or stored.location_id,
        user_id=fresh.user_id or stored.user_id,
    )


def _describe(key: str) -> str:
    return "the agency (company)" if key == COMPANY_KEY else f"location {key}"
