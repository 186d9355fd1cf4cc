"""Switchable faults: one-shot and random, deterministic for a seed, API routes only."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from highlevel_sync.sandbox import Sandbox

from .conftest import RATE_HEADERS, Api


def test_fail_next_answers_the_status_n_times(small: Sandbox) -> None:
    api = Api(small)
    small.faults.fail_next(2, 503)
    answers = [api.search() for _ in range(3)]
    assert [a.status_code for a in answers] == [503, 503, 200]
    assert answers[0].json() == {"statusCode": 503, "message": "Service Unavailable"}
    assert all(h in answers[0].headers for h in RATE_HEADERS)


def test_fail_next_with_a_path_prefix_spares_other_paths(small: Sandbox) -> None:
    api = Api(small)
    small.faults.fail_next(1, 500, path_prefix="/users/")
    assert api.search().status_code == 200
    assert api.get("/users/search", companyId=small.company_id, locationId=api.location_id).status_code == 500
    assert api.get("/users/search", companyId=small.company_id, locationId=api.location_id).status_code == 200


def test_garbage_next_is_a_200_html_page(small: Sandbox) -> None:
    api = Api(small)
    small.faults.garbage_next(1, path_prefix="/contacts/")
    garbage = api.search()
    assert garbage.status_code == 200 and garbage.headers["content-type"].startswith("text/html")
    with pytest.raises(ValueError):
        garbage.json()
    assert api.search().json()["contacts"]


def test_random_errors_are_deterministic_for_a_seed(highlevel_sandbox_factory: Any) -> None:
    runs = []
    for _ in range(2):
        sb: Sandbox = highlevel_sandbox_factory(contacts_per_location=(5,), rate_limit_max=None)
        sb.faults.set(error_rate=0.5, error_statuses=(429, 502))
        api = Api(sb)
        runs.append([api.search().status_code for _ in range(30)])
    assert runs[0] == runs[1]
    assert set(runs[0]) == {200, 429, 502}


def test_slow_and_garbage_rates_and_clear(small: Sandbox) -> None:
    api = Api(small)
    small.faults.set(slow_rate=1.0, slow_ms=150)
    started = time.monotonic()
    assert api.search().status_code == 200
    assert time.monotonic() - started >= 0.15
    small.faults.set(slow_rate=0.0, garbage_rate=1.0)
    assert api.search().headers["content-type"].startswith("text/html")
    small.faults.clear()
    assert api.search().status_code == 200 and api.search().json()["contacts"]


def test_faults_never_touch_control_routes(small: Sandbox) -> None:
    small.faults.set(error_rate=1.0)
    assert httpx.get(f"{small.base_url}/__sandbox__/info").status_code == 200
    assert Api(small).search().status_code in (429, 500, 502, 503)
