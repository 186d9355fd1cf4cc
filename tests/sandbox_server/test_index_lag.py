"""Search trails writes by a per-write lag; ground truth does not (CONTRACT §3.1, §8.17)."""

from __future__ import annotations

import time
from typing import Any

from highlevel_sync.sandbox import Sandbox
from highlevel_sync.sandbox.index import IndexedRecords

from .conftest import Api

BY_UPDATED = {"sort": [{"field": "dateUpdated", "direction": "desc"}]}


def search_by_id(api: Api, contact_id: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = api.search_ok(filters=[{"field": "id", "operator": "eq", "value": contact_id}],
                                               **BY_UPDATED)["contacts"]
    return rows


def test_an_update_reaches_search_only_after_its_lag(small: Sandbox) -> None:
    api = Api(small)
    loc = api.location_id
    before = {c["id"]: c for c in small.truth_contacts(loc)}
    changed = small.update_contacts(loc, 1)[0]
    truth = next(c for c in small.truth_contacts(loc) if c["id"] == changed)
    assert truth["dateUpdated"] > before[changed]["dateUpdated"]  # ground truth: at once
    assert search_by_id(api, changed)[0]["dateUpdated"] == before[changed]["dateUpdated"]  # search: the old version
    newest = api.search_ok(pageLimit=1, **BY_UPDATED)["contacts"][0]
    assert newest["id"] != changed or newest["dateUpdated"] != truth["dateUpdated"]
    time.sleep(0.45)  # index_lag_s = 0.4
    row = search_by_id(api, changed)[0]
    assert row["dateUpdated"] == truth["dateUpdated"] and row["email"] == truth["email"]
    assert api.search_ok(pageLimit=1, **BY_UPDATED)["contacts"][0]["id"] == changed


def test_a_new_contact_is_invisible_and_a_deleted_one_visible_until_the_lag_passes(small: Sandbox) -> None:
    api = Api(small)
    loc = api.location_id
    created = small.create_contacts(loc, 1)[0]
    deleted = small.delete_contacts(loc, 1)[0]
    truth_ids = {c["id"] for c in small.truth_contacts(loc)}
    assert created in truth_ids and deleted not in truth_ids
    assert search_by_id(api, created) == [] and len(search_by_id(api, deleted)) == 1
    assert api.search_ok()["total"] == 300
    small.wait_for_index()
    assert len(search_by_id(api, created)) == 1 and search_by_id(api, deleted) == []
    assert api.search_ok()["total"] == 300
    created_row = search_by_id(api, created)[0]
    assert created_row["dateAdded"] == created_row["dateUpdated"]


def test_the_deprecated_list_has_the_same_lag(small: Sandbox) -> None:
    api = Api(small)
    created = small.create_contacts(api.location_id, 1)[0]
    listed = api.get("/contacts/", locationId=api.location_id, limit=100,
                     startAfter=int(time.time() * 1000) - 60_000).json()
    assert created not in {c["id"] for c in listed["contacts"]}
    small.wait_for_index()
    listed = api.get("/contacts/", locationId=api.location_id, limit=100,
                     startAfter=int(time.time() * 1000) - 60_000).json()
    assert [c["id"] for c in listed["contacts"]] == [created]


def test_lag_is_drawn_per_write_between_half_and_all_of_index_lag(highlevel_sandbox_factory: Any) -> None:
    sb: Sandbox = highlevel_sandbox_factory(contacts_per_location=(5,), index_lag_s=2.0)
    lags = [sb.world.lag() for _ in range(200)]
    assert all(1.0 <= lag <= 2.0 for lag in lags) and max(lags) - min(lags) > 0.5


def test_a_later_write_can_surface_first_and_an_older_one_never_overwrites_it() -> None:
    index = IndexedRecords({"dateUpdated": lambda r: r["v"]})
    index.seed([{"id": "a", "v": 1}, {"id": "b", "v": 1}])
    index.write("a", {"id": "a", "v": 2}, lag_s=0.30)  # earlier write, longer lag
    index.write("b", {"id": "b", "v": 3}, lag_s=0.05)  # later write, shorter lag: visible first
    index.write("b", {"id": "b", "v": 4}, lag_s=0.01)  # and a newer version of b, visible before v3
    time.sleep(0.1)
    index.catch_up()
    assert index.visible["a"]["v"] == 1 and index.visible["b"]["v"] == 4
    assert index.sorted_keys("dateUpdated") == [(1, "a"), (4, "b")]
    time.sleep(0.25)
    index.catch_up()
    assert index.visible["a"]["v"] == 2
    assert index.sorted_keys("dateUpdated") == [(2, "a"), (4, "b")]
    assert index.truth["b"]["v"] == 4
