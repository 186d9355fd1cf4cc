"""Calls to HighLevel's OAuth endpoints: code exchange, refresh, location-token minting.

These run while the token store lock is held (a refresh must never race another), so they use
their own small httpx client instead of the paced API client: a token call must not wait behind
data requests, and the data client's auth is what is being repaired. They share the client's retry
policy (retries.py), not its pacing. Nothing here logs a token.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
import orjson
from tenacity import RetryCallState

from . import retries, settings
from .endpoints import LISTS
from .errors import ApiError, AuthError, HighLevelError, LocationInactive, RetryableError, ScopeError
from .tokenstore import TokenSet

logger = logging.getLogger(__name__)
_T = TypeVar("_T")

TOKEN_PATH = "/oauth/token"
LOCATION_TOKEN_PATH = "/oauth/locationToken"
INSTALLED_LOCATIONS_PATH = "/oauth/installedLocations"
AUTHORIZE_URL = "https://marketplace.gohighlevel.com/v2/oauth/chooselocation"
# what `auth login` asks for: every resource's read scope (settings.CORE_SCOPES, endpoints.LISTS)
READ_SCOPES = (
    *sorted({*settings.CORE_SCOPES.values(), *(spec.scope for spec in LISTS.values())}),
    "calendars/groups.readonly", "oauth.readonly", "oauth.write",
)


class OAuthApp:
    """A Marketplace app's credentials and the token calls made with them.

    Every call rides out transient failures (429, 5xx, timeouts, a gateway's HTML page) with the
    client's retry policy (retries.py); only a real refusal fails, with a message naming its cause.
    A refresh is the delicate one: the refresh token is single-use, and a failure after HighLevel
    may have acted on it (a timeout, a 5xx) is ambiguous. Replaying the same token is still right
    either way: if HighLevel never used it the replay succeeds; if it did, the new pair was in the
    lost answer and nothing we hold can recover it, and the `invalid_grant` the replay gets is
    reported as exactly that. Before such a replay the token store is read again (`stored`), in
    case another worker rotated the grant meanwhile.
    """

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        *,
        timeout_s: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        max_attempts: int = settings.DEFAULT_MAX_ATTEMPTS,
        backoff_base_s: float = settings.DEFAULT_BACKOFF_BASE_S,
        backoff_max_s: float = settings.DEFAULT_BACKOFF_MAX_S,
    ) -> None:
        self.client_id = client_id
        self._client_secret = client_secret
        self._base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self._base_url, timeout=timeout_s, transport=transport,
                                  headers={"Accept": "application/json"})
        self._max_attempts = max_attempts
        self._backoff = (backoff_base_s, backoff_max_s)

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

    def refresh(self, tokens: TokenSet, stored: Callable[[], TokenSet | None] | None = None) -> TokenSet:
        """New tokens for `tokens`' refresh token. `stored` reads the grant's current entry in the
        token store; it is consulted before replaying a refresh whose answer may have been lost."""
        if not tokens.refresh_token:
            raise AuthError("no refresh token stored; run `highlevel-sync auth login` to re-authorise")
        form = {"grant_type": "refresh_token", "refresh_token": tokens.refresh_token, "user_type": tokens.user_type}
        return self._token_call(form, what="refresh token", stored=stored)

    def mint_location_token(self, company: TokenSet, location_id: str) -> TokenSet:
        """A location token from the agency token; re-minted on expiry rather than refreshed."""
        form = {"companyId": company.company_id or "", "locationId": location_id}
        headers = {"Authorization": f"Bearer {company.access_token}", "Version": settings.VERSION_2021_07_28}

        def attempt() -> dict[str, Any]:
            status, body = self._post(LOCATION_TOKEN_PATH, form, headers)
            if status >= 400:
                raise _mint_refusal(location_id, status, body)
            return body

        body = self._with_retries(attempt, f"location {location_id}: cannot mint a location token")
        tokens = _token_set(body, default_user_type="Location")
        return TokenSet(**{**tokens.to_json(), "scopes": tokens.scopes, "location_id": location_id,
                           "company_id": company.company_id, "minted": True, "refresh_token": None})

    def _token_call(self, form: dict[str, str], what: str,
                    stored: Callable[[], TokenSet | None] | None = None) -> TokenSet:
        form = {"client_id": self.client_id, "client_secret": self._client_secret, **form}
        sent = form.get("refresh_token")
        lost: list[str] = []  # failures after which HighLevel may have used the grant we sent

        def attempt() -> TokenSet:
            if lost and stored is not None:
                current = stored()
                if current is not None and current.refresh_token and current.refresh_token != sent \
                        and not current.expires_within(0):
                    return current  # another worker rotated the grant meanwhile: theirs is the live pair
            try:
                status, body = self._post(TOKEN_PATH, form)
            except _AnswerLost as exc:
                lost.append(str(exc))
                raise
            if status >= 400:
                raise _token_refusal(status, body, what, lost)
            return _token_set(body)

        return self._with_retries(attempt, f"cannot use the {what}")

    def _with_retries(self, attempt: Callable[[], _T], what: str) -> _T:
        """`attempt()` under the shared retry policy; transient failures that outlast it are
        reported as HighLevel being unavailable, never as a refusal."""

        def log(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            logger.warning("%s yet (%s), retry %d/%d", what, exc, state.attempt_number, self._max_attempts - 1)

        try:
            for call in retries.retrying(self._max_attempts, *self._backoff, before_sleep=log):
                with call:
                    return attempt()
        except RetryableError as exc:
            raise ApiError(
                f"{what}: HighLevel was unavailable for {self._max_attempts} attempt(s) (last: {exc}); an outage "
                "on HighLevel's side or the network, not a refusal of this app: retry later"
            ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _post(self, path: str, form: dict[str, str], headers: dict[str, str] | None = None
              ) -> tuple[int, dict[str, Any]]:
        """One call: (status, JSON body) for an answer of HighLevel's own; transient failures raise."""
        try:
            response = self._http.post(path, data=form, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:  # nothing was sent
            raise RetryableError(f"cannot reach {self._base_url} ({type(exc).__name__}); check base_url") from None
        except httpx.TransportError as exc:
            raise _AnswerLost(f"no answer from {self._base_url} ({type(exc).__name__})") from None
        transient = retries.transient_answer(response)
        if transient is not None:
            if transient.status == 429:  # refused at the door: nothing was used
                raise transient
            raise _AnswerLost(str(transient), status=transient.status) from None
        return response.status_code, _json(response)

    def close(self) -> None:
        self._http.close()


class _AnswerLost(RetryableError):
    """A transient failure after which HighLevel may have acted on the request (a timeout, a 5xx,
    a gateway page): for a refresh, the grant may have rotated."""


class AgencyTokenRefused(AuthError):
    """The agency (company) access token itself was refused while minting: renew it, mint again."""


def _mint_refusal(location_id: str, status: int, body: dict[str, Any]) -> HighLevelError:
    message = _message(body)
    lowered = message.lower()
    if "not active" in lowered:
        return LocationInactive(f"location {location_id}: sub-account is not active ({message}); skipped")
    if status == 401 and ("scope" in lowered or "authclass" in lowered):
        return ScopeError(f"location {location_id}: the agency token may not mint location tokens ({message}); "
                          "re-authorise the app as an agency with the oauth.write scope: `highlevel-sync auth login`")
    if status == 401 and ("invalid token" in lowered or "expired" in lowered or "jwt" in lowered):
        return AgencyTokenRefused(f"location {location_id}: HighLevel refused the agency token while minting "
                                  f"({message}); run `highlevel-sync auth login` as an agency admin")
    if status == 401:
        return AuthError(f"location {location_id}: the app is not installed in this sub-account (HTTP 401: "
                         f"{message}); install it there, or leave the location out of the run")
    return AuthError(f"location {location_id}: HighLevel refused a location token (HTTP {status}: {message}); "
                     "check the agency grant (companyId, oauth.write scope)")


def _token_refusal(status: int, body: dict[str, Any], what: str, lost: list[str]) -> HighLevelError:
    message = _message(body)
    lowered = message.lower() + " " + str(body.get("error", "")).lower()
    if "not active" in lowered:
        return LocationInactive(f"sub-account is not active ({message}); it is skipped")
    if "invalid_client" in lowered or ("client" in lowered and "secret" in lowered):
        return AuthError(
            f"HighLevel rejected the app credentials ({message}); check "
            "SOURCES__HIGHLEVEL__CREDENTIALS__CLIENT_ID / CLIENT_SECRET"
        )
    if lost and ("invalid_grant" in lowered or status in (400, 401)):
        return AuthError(
            f"HighLevel refused the {what} when it was sent again ({message}): the first attempt failed "
            f"({lost[0]}) after HighLevel had already used it, so the new token pair was in an answer that never "
            "arrived and cannot be recovered; the app must be re-authorised: run `highlevel-sync auth login`"
        )
    if "invalid_grant" in lowered or status in (400, 401):
        return AuthError(
            f"HighLevel refused the {what} ({message}); the app must be re-authorised: "
            "run `highlevel-sync auth login`"
        )
    return AuthError(f"the token endpoint refused the {what} (HTTP {status}: {message}); check the app's settings")


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
