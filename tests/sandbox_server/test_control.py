"""The control API: ground truth, mutations, request log, faults and limits, in Python and over HTTP."""

from __future__ import annotations

import time
from typing import Any

import httpx

from highlevel_sync.sandbox import Sandbox

from .conftest import Api


def control(sb: Sandbox, method: str, path: str, **kwargs: Any) -> Any:
    response = httpx.request(method, f"{sb.base_url}/__sandbox__/{path}", timeout=30, **kwargs)
    assert response.status_code == 200, response.text
    return response.json()


def test_request_log_records_api_requests_only(small: Sandbox) -> None:
    api = Api(small)
    small.clear_requests()
    api.search(pageLimit=7)
    api.get("/contacts/", locationId=api.location_id, limit=3)
    api.search(pageLimit=501)
    control(small, "GET", "info")
    log = small.requests()
    assert [(e["method"], e["path"], e["status"]) for e in log] == [
        ("POST", "/contacts/search", 200), ("GET", "/contacts/", 200), ("POST", "/contacts/search", 422)]
    first = log[0]
    assert first["body"] == {"locationId": api.location_id, "pageLimit": 7}
    assert first["location_id"] == api.location_id and first["query"] == {}
    assert log[1]["query"] == {"locationId": api.location_id, "limit": "3"} and log[1]["body"] is None
    assert first["ts"] <= log[1]["ts"] <= time.time()
    assert [e["path"] for e in small.requests("/contacts/search")] == ["/contacts/search"] * 2
    small.clear_requests()
    assert small.requests() == []


def test_update_replaces_custom_fields_and_tags_sometimes_removing_all(small: Sandbox) -> None:
    loc = small.location_ids[0]
    before = {c["id"]: c for c in small.truth_contacts(loc)}
    ids = small.update_contacts(loc, 120)
    after = {c["id"]: c for c in small.truth_contacts(loc)}
    assert len(ids) == len(set(ids)) == 120 and set(after) == set(before)
    for contact_id in ids:
        old, new = before[contact_id], after[contact_id]
        assert new["dateUpdated"] > old["dateUpdated"] and new["dateAdded"] == old["dateAdded"]
        assert new["contactName"] == f"{new['firstName']} {new['lastName']}".lower()
    assert any(after[i]["customFields"] == [] and before[i]["customFields"] for i in ids)
    assert any(after[i]["tags"] == [] and before[i]["tags"] for i in ids)
    assert any(after[i]["customFields"] and after[i]["customFields"] != before[i]["customFields"] for i in ids)
    untouched = set(before) - set(ids)
    assert all(after[i] == before[i] for i in untouched)


def test_create_and_delete(small: Sandbox) -> None:
    loc = small.location_ids[1]
    created = small.create_contacts(loc, 3)
    deleted = small.delete_contacts(loc, 2)
    truth = {c["id"]: c for c in small.truth_contacts(loc)}
    assert len(truth) == 41 and set(created) <= set(truth) and not set(deleted) & set(truth)
    for contact_id in created:
        assert truth[contact_id]["dateAdded"] == truth[contact_id]["dateUpdated"]
        assert truth[contact_id]["locationId"] == loc
    assert [c["id"] for c in small.truth_contacts(loc)] == sorted(truth)


def test_wait_for_index_makes_every_write_searchable(small: Sandbox) -> None:
    loc = small.location_ids[0]
    ids = small.update_contacts(loc, 5)
    small.wait_for_index()
    rows = Api(small).walk(sort=[{"field": "dateUpdated", "direction": "desc"}])
    assert {r["id"] for r in rows[:5]} == set(ids)
    assert {r["id"]: r for r in rows}.keys() == {c["id"] for c in small.truth_contacts(loc)}


def test_http_info_and_truth(small: Sandbox) -> None:
    info = control(small, "GET", "info")
    assert info["location_ids"] == small.location_ids and info["company_id"] == small.company_id
    assert info["tokens"] == {loc: small.token_for(loc) for loc in small.location_ids}
    assert info["base_url"] == small.base_url and "client_secret" not in info["config"]
    loc = small.location_ids[1]
    assert control(small, "GET", "truth/contacts", params={"locationId": loc})["contacts"] == small.truth_contacts(loc)
    assert control(small, "GET", "truth/users", params={"locationId": loc})["users"] == small.truth_users(loc)
    fields = control(small, "GET", "truth/customFields", params={"locationId": loc, "model": "all"})
    assert fields["customFields"] == small.truth_custom_fields(loc, "all")
    assert control(small, "GET", "truth/location", params={"locationId": loc})["location"] == small.truth_location(loc)
    assert httpx.get(f"{small.base_url}/__sandbox__/truth/contacts", params={"locationId": "nope"}).status_code == 400


def test_http_mutate_and_wait_for_index(small: Sandbox) -> None:
    loc = small.location_ids[1]
    ids = control(small, "POST", "mutate", json={"locationId": loc, "action": "create", "n": 2})["ids"]
    assert len(ids) == 2 and set(ids) <= {c["id"] for c in small.truth_contacts(loc)}
    gone = control(small, "POST", "mutate", json={"locationId": loc, "action": "delete", "n": 1})["ids"]
    changed = control(small, "POST", "mutate", json={"locationId": loc, "action": "update", "n": 1})["ids"]
    assert len(gone) == len(changed) == 1
    control(small, "POST", "wait-for-index")
    visible = {r["id"] for r in Api(small, loc).walk()}
    assert visible == {c["id"] for c in small.truth_contacts(loc)}
    bad = httpx.post(f"{small.base_url}/__sandbox__/mutate", json={"locationId": loc, "action": "explode"})
    assert bad.status_code == 400


def test_http_requests_faults_and_ratelimits(small: Sandbox) -> None:
    api = Api(small)
    control(small, "DELETE", "requests")
    control(small, "POST", "faults", json={"fail_next": {"n": 1, "status": 502}})
    assert api.search().status_code == 502
    control(small, "POST", "faults", json={"garbage_rate": 1.0, "path_prefix": "/users/"})
    assert api.search().status_code == 200
    control(small, "POST", "faults", json={"clear": True})
    control(small, "POST", "ratelimits", json={"max": 1})
    assert [api.search().status_code for _ in range(2)] == [200, 429]
    control(small, "POST", "ratelimits", json={"reset": True})
    assert api.search().status_code == 200
    log = control(small, "GET", "requests", params={"pathPrefix": "/contacts/"})["requests"]
    assert [e["status"] for e in log] == [502, 200, 200, 429, 200]
    assert httpx.post(f"{small.base_url}/__sandbox__/faults", json={"error_rate": 3}).status_code == 400
    assert httpx.post(f"{small.base_url}/__sandbox__/ratelimits", json={"max": -1}).status_code == 400
