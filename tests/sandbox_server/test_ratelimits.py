"""Burst window and daily quota per location, with the five headers on every answer (CONTRACT §5)."""

from __future__ import annotations

import time
from typing import Any

import httpx

from highlevel_sync.sandbox import Sandbox

from .conftest import RATE_HEADERS, Api


def limited(factory: Any, **limits: Any) -> Sandbox:
    sb: Sandbox = factory(contacts_per_location=(30, 10), index_lag_s=0.2, **limits)
    return sb


def test_every_api_answer_carries_the_five_headers(highlevel_sandbox_factory: Any) -> None:
    sb = limited(highlevel_sandbox_factory)
    api = Api(sb)
    answers = [api.search(), api.search(pageLimit=0), Api(sb, version=None).search(), api.get("/contacts/"),
               httpx.post(f"{sb.base_url}/contacts/search", json={}, headers={"Version": "2021-07-28"})]
    assert [a.status_code for a in answers] == [200, 422, 400, 422, 401]
    for answer in answers:
        assert all(h in answer.headers for h in RATE_HEADERS), answer.headers
    first, last = answers[0].headers, answers[3].headers
    assert first["X-RateLimit-Max"] == "100" and first["X-RateLimit-Interval-Milliseconds"] == "10000"
    assert first["X-RateLimit-Limit-Daily"] == "200000"
    assert int(first["X-RateLimit-Remaining"]) - int(last["X-RateLimit-Remaining"]) == 3  # errors count too
    assert int(first["X-RateLimit-Daily-Remaining"]) - int(last["X-RateLimit-Daily-Remaining"]) == 3
    assert all(not e["path"].startswith("/__sandbox__") for e in sb.requests())


def test_burst_limit_gives_429_then_recovers(highlevel_sandbox_factory: Any) -> None:
    sb = limited(highlevel_sandbox_factory, rate_limit_max=5, rate_limit_interval_ms=600)
    api = Api(sb)
    answers = [api.search() for _ in range(7)]
    assert [a.status_code for a in answers] == [200] * 5 + [429] * 2
    assert answers[5].json() == {"statusCode": 429, "message": "Too many requests"}
    assert all(h in answers[6].headers for h in RATE_HEADERS)
    assert answers[4].headers["X-RateLimit-Remaining"] == "0"
    other = Api(sb, sb.location_ids[1])  # per location: another location's budget is untouched
    assert other.search().status_code == 200
    time.sleep(0.65)
    assert api.search().status_code == 200


def test_default_burst_limit_is_100_per_10_seconds(highlevel_sandbox_factory: Any) -> None:
    sb = limited(highlevel_sandbox_factory)
    api = Api(sb)
    statuses = [api.search(pageLimit=1).status_code for _ in range(101)]
    assert statuses == [200] * 100 + [429]


def test_daily_quota_gives_429(highlevel_sandbox_factory: Any) -> None:
    sb = limited(highlevel_sandbox_factory, daily_quota=4)
    api = Api(sb)
    answers = [api.search() for _ in range(5)]
    assert [a.status_code for a in answers] == [200] * 4 + [429]
    assert answers[3].headers["X-RateLimit-Daily-Remaining"] == "0"
    assert answers[4].headers["X-RateLimit-Limit-Daily"] == "4"


def test_limits_switched_off_still_send_headers_with_large_numbers(highlevel_sandbox_factory: Any) -> None:
    sb = limited(highlevel_sandbox_factory, rate_limit_max=None, daily_quota=None)
    answer = Api(sb).search()
    assert all(int(answer.headers[h]) >= 10_000 for h in RATE_HEADERS)


def test_limits_change_at_run_time(highlevel_sandbox_factory: Any) -> None:
    sb = limited(highlevel_sandbox_factory)
    api = Api(sb)
    sb.set_rate_limits(max=2)
    assert [api.search().status_code for _ in range(3)] == [200, 200, 429]
    assert api.search().headers["X-RateLimit-Limit-Daily"] == "200000"  # omitted settings stay
    sb.set_rate_limits(max=None, daily_quota=3)
    assert [api.search().status_code for _ in range(4)] == [200, 200, 200, 429]
    sb.reset_rate_limits()
    answer = api.search()
    assert answer.status_code == 200 and answer.headers["X-RateLimit-Max"] == "100"
