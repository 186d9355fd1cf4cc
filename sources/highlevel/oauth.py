"""Calls to HighLevel's OAuth endpoints: code exchange, refresh, location-token minting.

These run while the token store lock is held (a refresh must never race another), so they use
their own small httpx client instead of the paced API client: a token call must not wait behind
data requests, and the data client's auth is what is being repaired. Nothing here logs a token.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import orjson

from . import settings
from .errors import AuthError, LocationInactive
from .tokenstore import TokenSet

TOKEN_PATH = "/oauth/token"
LOCATION_TOKEN_PATH = "/oauth/locationToken"
INSTALLED_LOCATIONS_PATH = "/oauth/installedLocations"
AUTHORIZE_URL = "https://marketplace.gohighlevel.com/v2/oauth/chooselocation"
READ_SCOPES = (
    "contacts.readonly", "opportunities.readonly", "conversations.readonly", "conversations/message.readonly",
    "calendars.readonly", "calendars/groups.readonly", "calendars/events.readonly", "users.readonly",
    "locations.readonly", "locations/customFields.readonly", "locations/tasks.readonly", "oauth.readonly",
    "oauth.write",
)


class OAuthApp:
    """A Marketplace app's credentials and the token calls made with them."""

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        *,
        timeout_s: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.client_id = client_id
        self._client_secret = client_secret
        self._http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout_s, transport=transport,
                                  headers={"Accept": "application/json"})

    def __repr__(self) -> str:
        return f"OAuthApp(client_id={self.client_id!r}, client_secret=<redacted>)"

    @property
    def app_id(self) -> str:
        """The marketplace app id is the client id up to its first dash (as the official SDKs derive it)."""
        return self.client_id.split("-", 1)[0]

    def exchange_code(self, code: str, redirect_uri: str | None = None, user_type: str | None = None) -> TokenSet:
        form = {"grant_type": "authorization_code", "code": code}
        if redirect_uri:
            form["redirect_uri"] = redirect_uri
        if user_type:
            form["user_type"] = user_type
        return self._token_call(form, what="authorization code")

    def refresh(self, tokens: TokenSet) -> TokenSet:
        if not tokens.refresh_token:
            raise AuthError("no refresh token stored; run `highlevel-sync auth login` to re-authorise")
        form = {"grant_type": "refresh_token", "refresh_token": tokens.refresh_token, "user_type": tokens.user_type}
        return self._token_call(form, what="refresh token")

    def mint_location_token(self, company: TokenSet, location_id: str) -> TokenSet:
        """A location token from the agency token; re-minted on expiry rather than refreshed."""
        response = self._post(
            LOCATION_TOKEN_PATH,
            {"companyId": company.company_id or "", "locationId": location_id},
            headers={"Authorization": f"Bearer {company.access_token}", "Version": settings.VERSION_2021_07_28},
        )
        body = _json(response)
        if response.status_code >= 400:
            message = _message(body)
            if "not active" in message.lower():
                raise LocationInactive(f"location {location_id}: sub-account is not active ({message}); skipped")
            raise AuthError(
                f"location {location_id}: cannot mint a location token (HTTP {response.status_code}: {message}); "
                "is the app still installed there?"
            )
        tokens = _token_set(body, default_user_type="Location")
        return TokenSet(**{**tokens.to_json(), "scopes": tokens.scopes, "location_id": location_id,
                           "company_id": company.company_id, "minted": True, "refresh_token": None})

    def _token_call(self, form: dict[str, str], what: str) -> TokenSet:
        form = {"client_id": self.client_id, "client_secret": self._client_secret, **form}
        response = self._post(TOKEN_PATH, form)
        body = _json(response)
        if response.status_code >= 400:
            message = _message(body)
            lowered = message.lower() + " " + str(body.get("error", "")).lower()
            if "not active" in lowered:
                raise LocationInactive(f"sub-account is not active ({message}); it is skipped")
            if "invalid_client" in lowered or ("client" in lowered and "secret" in lowered):
                raise AuthError(
                    f"HighLevel rejected the app credentials ({message}); check "
                    "SOURCES__HIGHLEVEL__CREDENTIALS__CLIENT_ID / CLIENT_SECRET"
                )
            if "invalid_grant" in lowered or response.status_code in (400, 401):
                raise AuthError(
                    f"HighLevel refused the {what} ({message}); the app must be re-authorised: "
                    "run `highlevel-sync auth login`"
                )
            raise AuthError(f"token endpoint failed (HTTP {response.status_code}: {message}); retry later")
        return _token_set(body)

    def _post(self, path: str, form: dict[str, str], headers: dict[str, str] | None = None) -> httpx.Response:
        try:
            return self._http.post(path, data=form, headers=headers)
        except httpx.TransportError as exc:
            raise AuthError(f"cannot reach the token endpoint ({type(exc).__name__}); check base_url") from None

    def close(self) -> None:
        self._http.close()


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = orjson.loads(response.content) if response.content else {}
    except orjson.JSONDecodeError:
        return {"message": f"non-JSON body (HTTP {response.status_code})"}
    return body if isinstance(body, dict) else {"message": str(body)}


def _message(body: dict[str, Any]) -> str:
    message = body.get("error_description") or body.get("message") or body.get("error") or "no message"
    return "; ".join(map(str, message)) if isinstance(message, list) else str(message)


def _token_set(body: dict[str, Any], default_user_type: str = "Location") -> TokenSet:
    access = body.get("access_token")
    if not isinstance(access, str) or not access:
        raise AuthError("token endpoint answered without an access_token; retry, then re-authorise")
    scope = body.get("scope") or ""
    lifetime = float(body.get("expires_in") or 86399)
    return TokenSet(
        access_token=access,
        refresh_token=body.get("refresh_token") if isinstance(body.get("refresh_token"), str) else None,
        expires_at=time.time() + lifetime,
        lifetime_s=lifetime,
        user_type=str(body.get("userType") or default_user_type),
        scopes=tuple(scope.split()) if isinstance(scope, str) else tuple(scope),
        company_id=body.get("companyId"),
        location_id=body.get("locationId"),
        user_id=body.get("userId"),
    )
