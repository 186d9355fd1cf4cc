"""Fixtures for the sandbox's own tests: real HTTP against a sandbox on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from highlevel_sync.sandbox import Sandbox, SandboxConfig

VERSION = "2021-07-28"
RATE_HEADERS = ("X-RateLimit-Limit-Daily", "X-RateLimit-Daily-Remaining", "X-RateLimit-Interval-Milliseconds",
                "X-RateLimit-Max", "X-RateLimit-Remaining")


class Api:
    """An HTTP client for one location, sending its PIT and the contacts-family Version header."""

    def __init__(self, sb: Sandbox, location_id: str | None = None, token: str | None = None,
                 version: str | None = VERSION) -> None:
        self.sb = sb
        self.location_id = location_id or sb.location_ids[0]
        headers = {"Authorization": f"Bearer {token or sb.token_for(self.location_id)}"}
        if version is not None:
            headers["Version"] = version
        self.http = httpx.Client(base_url=sb.base_url, headers=headers, timeout=30)

    def search(self, **body: Any) -> httpx.Response:
        return self.http.post("/contacts/search", json={"locationId": self.location_id, "pageLimit": 100, **body})

    def search_ok(self, **body: Any) -> dict[str, Any]:
        response = self.search(**body)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def walk(self, page_limit: int = 500, **body: Any) -> list[dict[str, Any]]:
        """Every contact the query matches, paging with searchAfter until a short page."""
        rows: list[dict[str, Any]] = []
        while True:
            page = self.search_ok(pageLimit=page_limit, **body)["contacts"]
            rows.extend(page)
            if len(page) < page_limit:
                return rows
            body["searchAfter"] = page[-1]["searchAfter"]

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.http.get(path, params=params)


@pytest.fixture(scope="module")
def big() -> Iterator[Sandbox]:
    """The default data volume (12,500 + 300 + 40 contacts), no burst limit, a short index lag.
    Module-scoped: tests using it must not mutate contacts."""
    with Sandbox(SandboxConfig(rate_limit_max=None, index_lag_s=0.4)) as sb:
        yield sb


@pytest.fixture
def small(highlevel_sandbox_factory: Any) -> Sandbox:
    """A fresh small sandbox per test (mutations and limits allowed), burst limit off."""
    sandbox: Sandbox = highlevel_sandbox_factory(contacts_per_location=(300, 40), index_lag_s=0.4,
                                                 rate_limit_max=None)
    return sandbox
