"""The latency model: a fixed delay per answer plus one per record, overlapping across requests."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from highlevel_sync.highlevel_pipeline import build_parser, cmd_sandbox
from highlevel_sync.sandbox import REALISTIC_LATENCY, Sandbox
from highlevel_sync.sandbox.latency import records_in

from .conftest import Api


def timed(fn: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


@pytest.fixture
def sb(highlevel_sandbox_factory: Any) -> Sandbox:
    sandbox: Sandbox = highlevel_sandbox_factory(contacts_per_location=(600, 40), rate_limit_max=None)
    return sandbox


def test_a_page_waits_the_fixed_delay_plus_one_per_record(sb: Sandbox) -> None:
    api = Api(sb)
    api.search_ok(pageLimit=500)  # connection and first-request costs out of the way
    base, _ = timed(lambda: api.search_ok(pageLimit=500))
    sb.set_latency(200.0, 2.0)
    elapsed, page = timed(lambda: api.search_ok(pageLimit=500))
    assert len(page["contacts"]) == 500
    expected = 0.2 + 500 * 0.002  # 1.2 s
    assert expected <= elapsed - base + 0.01 < expected + 0.6, (elapsed, base)  # slack for a busy machine
    # a short answer waits for its own records only: 2 contacts -> 200 + 4 ms
    small, short = timed(lambda: api.search_ok(pageLimit=2))
    assert len(short["contacts"]) == 2 and 0.2 <= small < 0.2 + 0.6
    # errors wait too: HighLevel is as far away when it refuses
    refused, response = timed(lambda: api.search(pageLimit=501))
    assert response.status_code == 422 and refused >= 0.2


def test_concurrent_requests_overlap_instead_of_queueing(sb: Sandbox) -> None:
    sb.set_latency(400.0, 0.0)
    clients = [Api(sb) for _ in range(20)]
    for api in clients:
        api.search_ok(pageLimit=1)  # 20 open connections, warmed (each waited once: serially, 8 s)
    with ThreadPoolExecutor(max_workers=20) as pool:
        elapsed, pages = timed(lambda: list(pool.map(lambda api: api.search_ok(pageLimit=50), clients)))
    assert all(len(page["contacts"]) == 50 for page in pages)
    assert 0.4 <= elapsed < 1.6, elapsed  # about one latency; one after another would take 8 s


def test_zero_latency_adds_nothing(sb: Sandbox) -> None:
    api = Api(sb)
    api.search_ok(pageLimit=500)
    elapsed, _ = timed(lambda: [api.search_ok(pageLimit=500) for _ in range(5)])
    assert sb.info()["latency"] == {"fixed_ms": 0.0, "per_record_ms": 0.0}
    assert elapsed < 5 * 0.1  # far below even one realistic page (0.5 s) each


def test_token_endpoints_wait_and_control_routes_do_not(sb: Sandbox) -> None:
    sb.set_latency(300.0, 0.0)
    refresh = sb.grant("Company")
    form = {"client_id": sb.client_id, "client_secret": sb.client_secret, "grant_type": "refresh_token",
            "refresh_token": refresh, "user_type": "Company"}
    elapsed, response = timed(lambda: httpx.post(f"{sb.base_url}/oauth/token", data=form, timeout=10))
    assert response.status_code == 200 and elapsed >= 0.3
    elapsed, response = timed(lambda: httpx.get(f"{sb.base_url}/__sandbox__/info", timeout=10))
    assert response.status_code == 200 and elapsed < 0.25


def test_the_control_api_sets_and_validates_it(sb: Sandbox) -> None:
    url = f"{sb.base_url}/__sandbox__/latency"
    answer = httpx.post(url, json={"fixed_ms": REALISTIC_LATENCY[0], "per_record_ms": REALISTIC_LATENCY[1]},
                        timeout=10)
    assert answer.status_code == 200 and answer.json() == {"fixed_ms": 250.0, "per_record_ms": 0.5}
    assert httpx.post(url, json={"per_record_ms": 0.1}, timeout=10).json() == {"fixed_ms": 250.0,
                                                                                 "per_record_ms": 0.1}
    elapsed, page = timed(lambda: Api(sb).search_ok(pageLimit=500))
    assert len(page["contacts"]) == 500 and elapsed >= 0.25 + 0.05
    for bad in ({"fixed_ms": -1}, {"fixed_ms": "slow"}, {"jitter_ms": 5}):
        refused = httpx.post(url, json=bad, timeout=10)
        assert refused.status_code == 400, bad
    assert sb.info()["latency"] == {"fixed_ms": 250.0, "per_record_ms": 0.1}


def test_the_cli_flags_reach_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    served: dict[str, Any] = {}
    monkeypatch.setattr("highlevel_sync.sandbox.serve", lambda config, host, port: served.update(config=config))
    args = build_parser().parse_args(["sandbox", "serve", "--latency-ms", "250", "--latency-per-record-ms", "0.5"])
    assert cmd_sandbox(args) == 0
    assert (served["config"].latency_ms, served["config"].latency_per_record_ms) == REALISTIC_LATENCY
    with pytest.raises(SystemExit):
        build_parser().parse_args(["sandbox", "serve", "--latency-ms", "-5"])


def test_records_are_the_largest_list_in_the_answer() -> None:
    assert records_in({"contacts": [{}] * 500, "total": 12_500, "traceId": "t"}) == 500
    assert records_in({"meta": {"total": 3}, "opportunities": [{}] * 3, "tags": ["a"] * 5}) == 5
    assert records_in({"data": {"items": [1, 2]}}) == 2
    assert records_in({"location": {"id": "x"}}) == 0 and records_in([1, 2, 3]) == 3
