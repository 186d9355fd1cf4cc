"""Opportunities survive whatever the unconfirmed `POST /opportunities/search` answers.

Every answer but success, a bad token or the rate budget falls back to the documented GET scan;
the table still equals the sandbox's truth, the probe's finding is remembered per location (a
second run sends no probe request), and the summary says which path ran.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from highlevel_sync.sandbox.data import ms_of
from sources.highlevel import settings
from sources.highlevel.errors import (
    ApiError,
    AuthError,
    HighLevelError,
    LocationAccessError,
    LocationInactive,
    QuotaExhausted,
    RateLimited,
    ScopeError,
)
from sources.highlevel.resources.probe import PROBE_TTL, ProbeMemory, refusal_of

from .conftest import Harness

OPPORTUNITIES = 250
GET_PAGES = math.ceil(OPPORTUNITIES / settings.OPPORTUNITIES_GET_LIMIT)
MAX_ATTEMPTS = 3  # a non-JSON 200 is retried as a garbage body, then refused
CANDIDATES = len(settings.OPPORTUNITY_UPDATE_FIELDS)

# sandbox answer -> POST requests the first run's probe makes before it falls back
PROBE_COST = {
    "405": 1,  # the route does not exist: no other field can help
    "404": 1,
    "403": 1,
    "empty": 1,
    "non_json": MAX_ATTEMPTS,
    "400": CANDIDATES,  # about the field: every candidate is tried
    "422": CANDIDATES,
    "ignore_filter": CANDIDATES,
}


@pytest.fixture
def h(highlevel_sandbox_factory: Any, tmp_path: Path) -> Harness:
    sb = highlevel_sandbox_factory(contacts_per_location=(60,), opportunities_per_location=(OPPORTUNITIES,),
                                   conversations_per_location=(1,), calendars_per_location=1, index_lag_s=0.2)
    return Harness(sb, tmp_path)


def sync(h: Harness) -> tuple[str, int, int]:
    """One opportunities run from a clean request log: (summary note, POST requests, GET requests)."""
    h.sb.clear_requests()
    result = h.run(resources=["opportunities"], client_options={"max_attempts": MAX_ATTEMPTS})
    assert result.ok, [(r.location_id, r.error, r.resource_errors) for r in result.locations]
    searches = h.sb.requests("/opportunities/search")
    posts = sum(1 for r in searches if r["method"] == "POST")
    gets = sum(1 for r in searches if r["method"] == "GET")
    return result.locations[0].notes["opportunities"], posts, gets


def assert_table_is_truth(h: Harness) -> None:
    loaded = h.query("select id, pipeline_stage_id, status, epoch_ms(updated_at) from highlevel.opportunities "
                     "order by id")
    truth = [(o["id"], o["pipelineStageId"], o["status"], ms_of(o["updatedAt"]))
             for o in h.sb.truth(h.big, "opportunities")]
    assert loaded == truth


def change_some(h: Harness) -> None:
    h.sb.move_opportunities(h.big, 7)
    h.sb.wait_for_index()


WIRE = {  # answer -> (status, content type, body) as the sandbox sends it
    "405": (405, "application/json", b'{"statusCode":405,"message":"Cannot POST /opportunities/search",'
                                     b'"error":"Method Not Allowed"}'),
    "404": (404, "application/json", b'{"statusCode":404,"message":"Cannot POST /opportunities/search",'
                                     b'"error":"Not Found"}'),
    "403": (403, "application/json", b'{"statusCode":403,"message":"Forbidden resource","error":"Forbidden"}'),
    "422": (422, "application/json", b'{"statusCode":422,"message":["property filters should not exist",'
                                     b'"property sort should not exist"],"error":"Unprocessable Entity"}'),
    "400": (400, "application/json", b'{"statusCode":400,"message":"Invalid filters: field date_updated is not '
                                     b'supported","error":"Bad Request"}'),
    "empty": (200, "application/json", b""),
    "non_json": (200, "text/html; charset=utf-8", None),
}


@pytest.mark.parametrize("answer", list(WIRE))
def test_the_switched_answers_on_the_wire(h: Harness, answer: str) -> None:
    """Switched over the control API, as a sandbox in another process would be."""
    status, content_type, content = WIRE[answer]
    body = {"locationId": h.big, "limit": 10, "sort": [{"field": "date_updated", "direction": "asc"}],
            "filters": [{"field": "date_updated", "operator": "range", "value": {"gte": "2020-01-01T00:00:00Z"}}]}
    headers = {"Authorization": f"Bearer {h.sb.token_for(h.big)}", "Version": "2021-07-28"}
    with httpx.Client(base_url=h.sb.base_url) as http:
        assert http.post("/__sandbox__/opportunity-search", json={"answer": answer}).status_code == 200
        response = http.post("/opportunities/search", json=body, headers=headers)
        assert (response.status_code, response.headers["content-type"]) == (status, content_type)
        assert response.content == content if content is not None else response.text.startswith("<!DOCTYPE html>")
        assert "x-ratelimit-remaining" in response.headers
        assert http.get("/opportunities/search", params={"location_id": h.big}, headers=headers).status_code == 200
        http.post("/__sandbox__/opportunity-search", json={"answer": "ignore_filter"})
        rows = http.post("/opportunities/search", json=body, headers=headers).json()["opportunities"]
        assert [r["sort"] for r in rows] == sorted((r["sort"] for r in rows), reverse=True)  # newest created first
        http.post("/__sandbox__/opportunity-search", json={"clear": True})
        assert http.post("/opportunities/search", json=body, headers=headers).status_code == 200


@pytest.mark.parametrize("answer", list(PROBE_COST))
def test_any_refusal_falls_back_to_the_get_scan_and_is_remembered(h: Harness, answer: str) -> None:
    h.sb.opportunity_search.set(answer)

    note, posts, gets = sync(h)
    assert_table_is_truth(h)
    assert (posts, gets) == (PROBE_COST[answer], GET_PAGES)
    assert note.startswith("full GET scan") and "probed now" in note, note
    memory = h.state("opportunities")["probe"][h.big]
    assert memory["path"] == "get" and memory["field"] is None

    change_some(h)
    note, posts, gets = sync(h)
    assert_table_is_truth(h)
    assert (posts, gets) == (0, GET_PAGES)  # no probe: the finding holds for a day
    assert note.startswith("full GET scan") and "remembered from the probe" in note, note


def test_a_working_field_is_remembered_and_a_quiet_run_costs_one_request(h: Harness) -> None:
    note, posts, gets = sync(h)  # the sandbox honours date_updated by default
    assert_table_is_truth(h)
    assert (posts, gets) == (1, 0) and note == "POST search sorted on date_updated (probed now)"
    assert h.state("opportunities")["probe"][h.big]["field"] == "date_updated"

    change_some(h)
    note, posts, gets = sync(h)
    assert_table_is_truth(h)
    assert (posts, gets) == (1, 0) and note.startswith("POST search filtered on date_updated (remembered")

    note, posts, gets = sync(h)  # nothing changed: one page (the overlap window), no probe
    assert (posts, gets) == (1, 0) and "date_updated (remembered from the probe" in note, note


def test_a_remembered_field_refused_later_falls_back_in_the_same_run(h: Harness) -> None:
    sync(h)
    change_some(h)
    h.sb.opportunity_search.set("405")  # the account lost the route since the last probe
    note, posts, gets = sync(h)
    assert_table_is_truth(h)
    assert (posts, gets) == (1, GET_PAGES) and note.startswith("full GET scan"), note
    assert h.state("opportunities")["probe"][h.big]["path"] == "get"


def test_a_refusal_for_one_location_does_not_change_another(highlevel_sandbox_factory: Any, tmp_path: Path) -> None:
    sb = highlevel_sandbox_factory(contacts_per_location=(60, 40), opportunities_per_location=(120, 30),
                                   conversations_per_location=(1, 1), calendars_per_location=1, index_lag_s=0.2)
    h = Harness(sb, tmp_path)
    refused, fine = sb.location_ids
    sb.opportunity_search.set("405", location_id=refused)
    result = h.run(locations=[refused, fine], resources=["opportunities"])
    assert result.ok
    notes = {loc.location_id: loc.notes["opportunities"] for loc in result.locations}
    assert notes[refused].startswith("full GET scan") and notes[fine].startswith("POST search")
    memory = h.state("opportunities")["probe"]
    assert (memory[refused]["path"], memory[fine]["path"]) == ("get", "post")


def test_a_finding_is_probed_again_after_a_day() -> None:
    now = datetime(2025, 6, 1, 12, tzinfo=UTC)
    state: dict[str, Any] = {"L1": {"path": "get", "field": None, "reason": "refused (405)",
                                    "at": "2025-06-01T00:00:00.000Z"}}
    probe = ProbeMemory(state, "L1")
    assert probe.recall(now) == state["L1"]
    assert probe.recall(now + timedelta(hours=11)) == state["L1"]  # 23 hours old
    assert probe.recall(now - timedelta(hours=12) + PROBE_TTL) is None
    assert ProbeMemory(state, "L2").recall(now) is None
    for broken in ({"path": "post", "field": "no_such_field", "at": "2025-06-01T00:00:00Z"},
                   {"path": "get", "at": "yesterday"}, {"path": "sideways", "at": "2025-06-01T00:00:00Z"}, "get"):
        assert ProbeMemory({"L1": broken}, "L1").recall(now) is None


@pytest.mark.parametrize(
    ("error", "whole_route", "lasting"),
    [
        (ApiError("HTTP 405", status=405), True, True),
        (ApiError("HTTP 404", status=404), True, True),
        (ApiError("HTTP 400", status=400), False, True),
        (ApiError("HTTP 422", status=422), False, True),
        (ApiError("HTTP 200 with a non-JSON body", status=200), True, True),
        (ApiError("HTTP 503", status=503), True, False),
        (LocationAccessError("403: Forbidden resource"), True, True),
        (AuthError("401: This route is not yet supported by the IAM Service."), True, True),
    ],
)
def test_refusals(error: HighLevelError, whole_route: bool, lasting: bool) -> None:
    refusal = refusal_of("date_updated", error)
    assert refusal is not None and (refusal.whole_route, refusal.lasting) == (whole_route, lasting)


@pytest.mark.parametrize(
    "error",
    [
        AuthError("HighLevel rejected the token (401: Invalid JWT)"),
        ScopeError("token lacks a required scope"),
        RateLimited("still rate limited (429)", status=429),
        QuotaExhausted("daily API quota used up"),
        LocationInactive("sub-account is not active"),
        ApiError("cannot reach http://127.0.0.1:1 (ConnectError)"),
    ],
)
def test_a_bad_token_the_budget_or_no_answer_is_not_a_refusal(error: HighLevelError) -> None:
    assert refusal_of("date_updated", error) is None
