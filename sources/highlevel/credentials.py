"""Which credentials a run uses and which locations they reach (PIT, location OAuth, agency fan-out).

Shared by `run_sync` and the plain dlt source (`standalone.py`): one resolver, one set of errors."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from . import settings
from .auth import COMPANY_KEY, OAuthAuthProvider, StaticAuthProvider, TokenManager
from .client import AuthProvider, HighLevelClient
from .config import SourceConfig
from .errors import ConfigError
from .oauth import INSTALLED_LOCATIONS_PATH, OAuthApp
from .paginators import skip_limit_pages
from .tokenstores import describe_token_store, open_token_store

logger = logging.getLogger("highlevel.credentials")


@dataclass
class Credentials:
    auth: AuthProvider
    locations: list[str] | None  # None: ask the API (agency "all")
    company_id: str | None = None
    manager: TokenManager | None = None


def oauth_app(config: SourceConfig, transport: Any = None) -> OAuthApp:
    if not config.client_id or not config.client_secret:
        raise ConfigError(
            "OAuth needs the app's credentials: set SOURCES__HIGHLEVEL__CREDENTIALS__CLIENT_ID and "
            "SOURCES__HIGHLEVEL__CREDENTIALS__CLIENT_SECRET (or use a Private Integration Token)"
        )
    return OAuthApp(config.base_url, config.client_id, config.client_secret, transport=transport,
                    max_attempts=config.max_attempts)


def resolve_credentials(config: SourceConfig, locations: Sequence[str] | None) -> Credentials:
    """Pick credentials and the locations they can read; errors say which setting to fix."""
    wanted = list(locations or config.location_ids)
    if config.private_integration_token:
        if not wanted:
            raise ConfigError(
                "a Private Integration Token reads one location: set SOURCES__HIGHLEVEL__LOCATION_ID to its id"
            )
        if len(wanted) > 1 or wanted == ["all"]:
            raise ConfigError(
                "a Private Integration Token reads only its own location; give one location id, "
                "or use an agency OAuth token (`highlevel-sync auth login`) for several"
            )
        return Credentials(StaticAuthProvider({wanted[0]: config.private_integration_token}), wanted)
    store = open_token_store(config.token_store)
    if not store.exists():
        raise ConfigError(
            "no credentials: set SOURCES__HIGHLEVEL__PRIVATE_INTEGRATION_TOKEN and SOURCES__HIGHLEVEL__LOCATION_ID, "
            "or authorise the OAuth app with `highlevel-sync auth login` "
            f"(token store {describe_token_store(config.token_store)} not found)"
        )
    data = store.load()
    manager = TokenManager(store, oauth_app(config))
    company_id = config.company_id or (data.company.company_id if data.company else None)
    if wanted == ["all"] or (not wanted and data.company is not None):
        if data.company is None:
            raise ConfigError("--locations all needs an agency (Company) token; run `highlevel-sync auth login`")
        return Credentials(OAuthAuthProvider(manager), None, company_id, manager)
    if not wanted:
        wanted = sorted(data.locations)
    if not wanted:
        raise ConfigError("the token store holds no location; run `highlevel-sync auth login`")
    return Credentials(OAuthAuthProvider(manager), wanted, company_id, manager)


def installed_locations(client: HighLevelClient, company_id: str, app_id: str) -> list[str]:
    """Every sub-account the app is installed in; paged until a short page (`count` is ambiguous)."""
    params = {"companyId": company_id, "appId": app_id, "isInstalled": "true"}

    def fetch(query: dict[str, Any]) -> dict[str, Any]:
        return client.get(INSTALLED_LOCATIONS_PATH, version=settings.VERSION_2021_07_28,
                          location_id=COMPANY_KEY, params=query)

    ids: list[str] = []
    for page in skip_limit_pages(fetch, params, "locations", 100):
        ids.extend(str(item.get("_id") or item.get("id")) for item in page if item.get("_id") or item.get("id"))
    logger.info("agency %s: app installed in %d locations", company_id, len(ids))
    return list(dict.fromkeys(ids))
