"""The sandbox behaves like HighLevel where a client can get it wrong (CONTRACT §1, §3.1, §5, §8)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from highlevel_sync.sandbox import Sandbox, SandboxConfig


@pytest.fixture
def sb(highlevel_sandbox_factory: Any) -> Sandbox:
    return highlevel_sandbox_factory(contacts_per_location=(10_600, 30), index_lag_s=0.6, rate_limit_max=None)


def api(sb: Sandbox, location: str | None = None, version: str | None = "2021-07-28") -> httpx.Client:
    headers = {"Authorization": f"Bearer {sb.token_for(location or sb.location_ids[0])}"}
    if version:
        headers["Version"] = version
    return httpx.Client(base_url=sb.base_url, headers=headers, timeout=30)


def search(client: httpx.Client, sb: Sandbox, **body: Any) -> httpx.Response:
    return client.post("/contacts/search", json={"locationId": sb.location_ids[0], "pageLimit": 100, **body})


def test_version_header_is_required_per_family(sb: Sandbox) -> None:
    assert search(api(sb, version=None), sb).status_code == 400
    assert "Version" in search(api(sb, version=None), sb).json()["message"]
    assert search(api(sb, version="2021-04-15"), sb).status_code == 400  # the conversations family's value
    assert search(api(sb), sb).status_code == 200
    calendars = api(sb, version="2021-07-28").get("/calendars/", params={"locationId": sb.location_ids[0]})
    assert calendars.status_code == 400


def test_paging_limits_and_the_10k_window(sb: Sandbox) -> None:
    client = api(sb)
    too_big = search(client, sb, pageLimit=501)
    assert too_big.status_code == 422 and isinstance(too_big.json()["message"], list)
    assert client.post("/contacts/search", json={"locationId": sb.location_ids[0]}).status_code == 422
    assert search(client, sb, page=100).status_code == 200  # hits 9,901-10,000
    assert search(client, sb, page=101).status_code == 400  # beyond the window
    first = search(client, sb).json()["contacts"]
    assert search(client, sb, page=1, searchAfter=first[-1]["searchAfter"]).status_code == 422


def test_search_after_walks_everything_in_order(sb: Sandbox) -> None:
    client = api(sb)
    seen: list[tuple[int, str]] = []
    body: dict[str, Any] = {"pageLimit": 500, "sort": [{"field": "dateUpdated", "direction": "asc"}]}
    while True:
        page = search(client, sb, **body).json()["contacts"]
        seen.extend(tuple(c["searchAfter"]) for c in page)
        if len(page) < 500:
            break
        body["searchAfter"] = page[-1]["searchAfter"]
    assert len(seen) == 10_600 == len(set(seen)) and seen == sorted(seen)


def test_date_range_filter_and_index_lag(sb: Sandbox) -> None:
    client = api(sb)
    since = "2025-12-01T00:00:00.000Z"
    body = {"filters": [{"field": "dateUpdated", "operator": "range", "value": {"gte": since}}],
            "sort": [{"field": "dateUpdated", "direction": "desc"}], "pageLimit": 500}
    before = search(client, sb, **body).json()
    assert all(c["dateUpdated"] >= since for c in before["contacts"])
    changed = sb.update_contacts(sb.location_ids[0], 1)[0]
    right_after = {c["id"]: c for c in search(client, sb, **body).json()["contacts"]}
    truth = next(c for c in sb.truth_contacts(sb.location_ids[0]) if c["id"] == changed)
    assert right_after.get(changed, {}).get("dateUpdated") != truth["dateUpdated"]  # not yet indexed
    time.sleep(0.7)
    later = {c["id"]: c for c in search(client, sb, **body).json()["contacts"]}
    assert later[changed]["dateUpdated"] == truth["dateUpdated"]
    assert search(client, sb, filters=[{"field": "email", "operator": "wildcard", "value": "x"}]).status_code == 422


def test_tokens_are_scoped_to_their_location(sb: Sandbox) -> None:
    other = api(sb, location=sb.location_ids[1])
    assert search(other, sb).status_code == 403
    bad = httpx.post(f"{sb.base_url}/contacts/search", headers={"Authorization": "Bearer pit-nope",
                                                                  "Version": "2021-07-28"}, json={})
    assert bad.status_code == 401 and bad.json()["message"].startswith("Invalid token")


def test_rate_limit_headers_and_429(highlevel_sandbox_factory: Any) -> None:
    sb = highlevel_sandbox_factory(SandboxConfig(contacts_per_location=(20,), rate_limit_max=5,
                                                 rate_limit_interval_ms=1_000, daily_quota=8))
    client = api(sb)
    statuses = []
    for _ in range(6):
        response = search(client, sb)
        statuses.append(response.status_code)
        for header in ("X-RateLimit-Limit-Daily", "X-RateLimit-Daily-Remaining", "X-RateLimit-Interval-Milliseconds",
                       "X-RateLimit-Max", "X-RateLimit-Remaining"):
            assert header in response.headers
    assert statuses == [200] * 5 + [429]
    time.sleep(1.05)
    assert [search(client, sb).status_code for _ in range(4)] == [200, 200, 200, 429]  # daily quota of 8 used
    assert search(client, sb).headers["X-RateLimit-Daily-Remaining"] == "0"


def test_faults_and_request_log(sb: Sandbox) -> None:
    client = api(sb)
    sb.faults.fail_next(1, 503)
    sb.faults.garbage_next(1)
    assert search(client, sb).status_code == 503
    garbage = search(client, sb)
    assert garbage.status_code == 200 and garbage.headers["content-type"].startswith("text/html")
    assert search(client, sb).status_code == 200
    log = sb.requests("/contacts/search")
    assert [e["status"] for e in log[-3:]] == [503, 200, 200]
    assert log[-1]["body"]["pageLimit"] == 100 and log[-1]["location_id"] == sb.location_ids[0]


def test_same_seed_same_data_and_a_big_location_is_quick() -> None:
    started = time.monotonic()
    one = Sandbox(SandboxConfig(contacts_per_location=(30_000,), seed=3))
    assert time.monotonic() - started < 20
    two = Sandbox(SandboxConfig(contacts_per_location=(30_000,), seed=3))
    assert one.location_ids == two.location_ids
    loc = one.location_ids[0]
    assert one.truth_contacts(loc)[:50] == two.truth_contacts(loc)[:50]
