"""`POST /contacts/search` as HighLevel serves it: limits, the 10k window, searchAfter, filters, sort."""

from __future__ import annotations

import statistics
import time
from datetime import datetime
from typing import Any

import pytest

from highlevel_sync.sandbox import Sandbox

from .conftest import Api


def ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp() * 1000)


def test_location_id_and_page_limit_are_required_with_an_array_message(big: Sandbox) -> None:
    api = Api(big)
    response = api.http.post("/contacts/search", json={})
    assert response.status_code == 422
    body = response.json()
    assert body["statusCode"] == 422 and body["error"] == "Unprocessable Entity"
    assert isinstance(body["message"], list) and len(body["message"]) == 2
    assert api.http.post("/contacts/search", json={"locationId": api.location_id}).status_code == 422


@pytest.mark.parametrize("page_limit", [0, 501, 1000, "20", 2.5])
def test_page_limit_outside_1_to_500_is_refused(big: Sandbox, page_limit: object) -> None:
    response = Api(big).search(pageLimit=page_limit)
    assert response.status_code == 422
    assert isinstance(response.json()["message"], list)


def test_page_limit_500_is_the_maximum(big: Sandbox) -> None:
    assert len(Api(big).search_ok(pageLimit=500)["contacts"]) == 500


def test_page_numbers_stop_at_the_10000_result_window(big: Sandbox) -> None:
    api = Api(big)
    last_allowed = api.search_ok(page=20, pageLimit=500)  # hits 9,501-10,000
    assert len(last_allowed["contacts"]) == 500 and last_allowed["total"] == 12_500
    beyond = api.search(page=21, pageLimit=500)
    assert beyond.status_code in (400, 422)
    assert "10000" in str(beyond.json()["message"])
    assert api.search(page=101, pageLimit=100).status_code in (400, 422)


def test_page_and_search_after_together_are_refused(big: Sandbox) -> None:
    api = Api(big)
    cursor = api.search_ok()["contacts"][-1]["searchAfter"]
    response = api.search(page=2, searchAfter=cursor)
    assert response.status_code == 422 and isinstance(response.json()["message"], list)


def test_unknown_body_properties_are_refused(big: Sandbox) -> None:
    response = Api(big).search(startAfterId="x")
    assert response.status_code == 422
    assert response.json()["message"] == ["property startAfterId should not exist"]


@pytest.mark.parametrize("direction", ["asc", "desc"])
def test_search_after_walks_all_12500_in_order_without_gaps_or_duplicates(big: Sandbox, direction: str) -> None:
    loc = big.location_ids[0]
    rows = Api(big).walk(sort=[{"field": "dateUpdated", "direction": direction}])
    keys = [tuple(r["searchAfter"]) for r in rows]
    assert len(rows) == 12_500 == len({r["id"] for r in rows})
    assert keys == sorted(keys, reverse=direction == "desc")
    assert {r["id"] for r in rows} == {c["id"] for c in big.truth_contacts(loc)}
    assert all(r["searchAfter"] == [ms(r["dateUpdated"]), r["id"]] for r in rows)


def test_ties_on_date_updated_are_broken_by_id(big: Sandbox) -> None:
    rows = Api(big).walk(sort=[{"field": "dateUpdated", "direction": "asc"}])
    stamps = [r["dateUpdated"] for r in rows]
    tied = _tied(stamps)
    assert tied, "the seeded data must contain contacts sharing one dateUpdated millisecond"
    for stamp in tied:
        ids = [r["id"] for r in rows if r["dateUpdated"] == stamp]
        assert ids == sorted(ids)


def _tied(stamps: list[str]) -> set[str]:
    seen: set[str] = set()
    tied: set[str] = set()
    for stamp in stamps:
        (tied if stamp in seen else seen).add(stamp)
    return tied


def test_default_sort_is_date_added_newest_first(big: Sandbox) -> None:
    rows = Api(big).search_ok(pageLimit=200)["contacts"]
    keys = [(ms(r["dateAdded"]), r["id"]) for r in rows]
    assert keys == sorted(keys, reverse=True)
    assert all(r["searchAfter"] == [ms(r["dateAdded"]), r["id"]] for r in rows)
    newest = max(big.truth_contacts(big.location_ids[0]), key=lambda c: (c["dateAdded"], c["id"]))
    assert rows[0]["id"] == newest["id"]


def test_date_updated_range_filter_with_sort_matches_ground_truth(big: Sandbox) -> None:
    since, until = "2025-06-01T00:00:00.000Z", "2025-09-01T00:00:00.000Z"
    api = Api(big)
    body: dict[str, Any] = {
        "filters": [{"field": "dateUpdated", "operator": "range", "value": {"gte": since, "lt": until}}],
        "sort": [{"field": "dateUpdated", "direction": "asc"}]}
    rows = api.walk(**body)
    expected = sorted((c["dateUpdated"], c["id"]) for c in big.truth_contacts(api.location_id)
                      if since <= c["dateUpdated"] < until)
    assert [(r["dateUpdated"], r["id"]) for r in rows] == expected
    assert 0 < len(rows) < 12_500
    assert api.search_ok(**body)["total"] == len(expected)


def test_total_counts_all_matches_whatever_the_cursor(big: Sandbox) -> None:
    api = Api(big)
    first = api.search_ok(pageLimit=10, sort=[{"field": "dateUpdated", "direction": "asc"}])
    second = api.search_ok(pageLimit=10, sort=[{"field": "dateUpdated", "direction": "asc"}],
                           searchAfter=first["contacts"][-1]["searchAfter"])
    assert first["total"] == second["total"] == 12_500
    assert "meta" not in first and first["traceId"]


def test_gt_and_lte_bounds_are_exclusive_and_inclusive(big: Sandbox) -> None:
    api = Api(big)
    pivot = api.search_ok(pageLimit=1, sort=[{"field": "dateUpdated", "direction": "asc"}])["contacts"][0]
    after = api.search_ok(pageLimit=5, filters=[
        {"field": "dateUpdated", "operator": "range", "value": {"gt": pivot["dateUpdated"]}}],
        sort=[{"field": "dateUpdated", "direction": "asc"}])["contacts"]
    assert all(r["dateUpdated"] > pivot["dateUpdated"] for r in after)
    upto = api.search_ok(pageLimit=5, filters=[
        {"field": "dateUpdated", "operator": "range", "value": {"lte": pivot["dateUpdated"]}}])["contacts"]
    assert pivot["id"] in {r["id"] for r in upto}


def test_filter_groups_other_date_field_and_id_eq(big: Sandbox) -> None:
    api = Api(big)
    truth = big.truth_contacts(api.location_id)
    one, two = truth[0]["id"], truth[1]["id"]
    either = api.walk(filters=[{"group": "OR", "filters": [{"field": "id", "operator": "eq", "value": one},
                                                            {"field": "id", "operator": "eq", "value": two}]}],
                      sort=[{"field": "dateUpdated", "direction": "asc"}])
    assert {r["id"] for r in either} == {one, two}
    window = {"gte": "2025-01-01T00:00:00.000Z", "lt": "2025-03-01T00:00:00.000Z"}
    rows = api.walk(filters=[{"group": "AND", "filters": [
        {"field": "dateAdded", "operator": "range", "value": window}]}],
        sort=[{"field": "dateUpdated", "direction": "desc"}])
    expected = {c["id"] for c in truth if window["gte"] <= c["dateAdded"] < window["lt"]}
    assert {r["id"] for r in rows} == expected and len(rows) == len(expected)
    keys = [tuple(r["searchAfter"]) for r in rows]
    assert keys == sorted(keys, reverse=True)


def test_search_after_pages_through_a_filtered_scan(big: Sandbox) -> None:
    api = Api(big)
    window = {"gte": "2024-06-01T00:00:00.000Z", "lt": "2025-06-01T00:00:00.000Z"}
    rows = api.walk(page_limit=250, filters=[{"field": "dateAdded", "operator": "range", "value": window}],
                    sort=[{"field": "dateUpdated", "direction": "desc"}])
    expected = {c["id"] for c in big.truth_contacts(api.location_id) if window["gte"] <= c["dateAdded"] < window["lt"]}
    assert len(rows) == len(expected) == len({r["id"] for r in rows}) and len(rows) > 500


def test_free_text_query(big: Sandbox) -> None:
    api = Api(big)
    target = next(c for c in big.truth_contacts(api.location_id) if c["email"])
    found = api.search_ok(query=target["email"].upper())
    assert [r["id"] for r in found["contacts"]] == [target["id"]] and found["total"] == 1
    assert api.search(query="x" * 76).status_code == 422


@pytest.mark.parametrize("filters", [
    [{"field": "email", "operator": "eq", "value": "a@b.c"}],
    [{"field": "dateUpdated", "operator": "contains", "value": "2025"}],
    [{"field": "dateUpdated", "operator": "range", "value": {"after": "2025-01-01"}}],
    [{"field": "dateUpdated", "operator": "range", "value": {"gte": "not a date"}}],
    [{"group": "XOR", "filters": []}],
    {"field": "dateUpdated"},
])
def test_unsupported_filters_are_refused_not_ignored(big: Sandbox, filters: object) -> None:
    response = Api(big).search(filters=filters)
    assert response.status_code == 422 and isinstance(response.json()["message"], list)


@pytest.mark.parametrize("sort", [[{"field": "firstName", "direction": "asc"}],
                                  [{"field": "dateUpdated", "direction": "up"}]])
def test_unsupported_sort_is_refused(big: Sandbox, sort: object) -> None:
    assert Api(big).search(sort=sort).status_code == 422


def test_malformed_search_after_is_refused(big: Sandbox) -> None:
    assert Api(big).search(searchAfter=["x"]).status_code == 422
    assert Api(big).search(searchAfter="abc").status_code == 422


def test_contacts_carry_the_documented_fields(big: Sandbox) -> None:
    row = Api(big).search_ok(pageLimit=1)["contacts"][0]
    for name in ("id", "locationId", "firstName", "lastName", "contactName", "email", "phone", "companyName",
                 "address", "city", "state", "postalCode", "country", "website", "timezone", "type", "source",
                 "tags", "dnd", "dndSettings", "assignedTo", "followers", "businessId", "customFields",
                 "attributionSource", "lastAttributionSource", "dateAdded", "dateUpdated", "dateOfBirth",
                 "validEmail", "searchAfter"):
        assert name in row, name
    assert set(row["dndSettings"]) == {"Call", "Email", "SMS", "WhatsApp", "GMB", "FB"}


def test_a_500_row_page_is_served_quickly(big: Sandbox) -> None:
    """The server must never be a sync benchmark's bottleneck (target: well under 15 ms a page)."""
    api = Api(big)
    body: dict[str, object] = {"pageLimit": 500, "sort": [{"field": "dateUpdated", "direction": "asc"}]}
    timings = []
    for _ in range(20):
        started = time.perf_counter()
        response = api.http.post("/contacts/search", json={"locationId": api.location_id, **body})
        timings.append(time.perf_counter() - started)
        body["searchAfter"] = response.json()["contacts"][-1]["searchAfter"]
    assert statistics.median(timings) < 0.06, f"median {statistics.median(timings) * 1000:.1f} ms per page"
