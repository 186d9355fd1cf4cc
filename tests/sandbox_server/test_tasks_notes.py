"""The tasks search and the notes list answer as the specs have them (locations.json, contacts.json)."""

from __future__ import annotations

from typing import Any

from highlevel_sync.sandbox import Sandbox, tasks_notes
from highlevel_sync.sandbox.tokens import READ_SCOPES, TokenInfo

from .conftest import RATE_HEADERS, Api


def tasks_path(sb: Sandbox, location_id: str | None = None) -> str:
    return f"/locations/{location_id or sb.location_ids[0]}/tasks/search"


def walk_tasks(api: Api, limit: int, **body: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    while True:
        response = api.http.post(tasks_path(api.sb, api.location_id), json={"skip": len(rows), "limit": limit, **body})
        assert response.status_code == 200, response.text
        page = response.json()["tasks"]
        rows.extend(page)
        if len(page) < limit:
            return rows


def test_tasks_page_by_skip_and_limit_through_every_task(small: Sandbox) -> None:
    api = Api(small)
    truth = small.truth(api.location_id, "tasks")
    rows = walk_tasks(api, 7)
    assert sorted(r["id"] for r in rows) == [t["id"] for t in truth] and len(rows) == len(truth) > 7
    assert set(rows[0]) == {"id", "title", "body", "assignedTo", "dueDate", "completed", "contactId", "dateAdded"}
    default = api.http.post(tasks_path(small), json={}).json()
    assert len(default["tasks"]) == 25 and "traceId" in default  # the spec's default limit


def test_tasks_filters(small: Sandbox) -> None:
    api = Api(small)
    truth = small.truth(api.location_id, "tasks")
    done = walk_tasks(api, 100, completed=True)
    assert sorted(r["id"] for r in done) == [t["id"] for t in truth if t["completed"]]
    contact = truth[0]["contactId"]
    mine = walk_tasks(api, 100, contactId=[contact])
    assert {r["contactId"] for r in mine} == {contact}


def test_tasks_validation_version_and_location(small: Sandbox) -> None:
    api = Api(small)
    for body in ({"limit": 101}, {"limit": "10"}, {"skip": -1}, {"completed": "yes"}, {"contactId": "x"}):
        response = api.http.post(tasks_path(small), json=body)
        assert response.status_code == 422 and isinstance(response.json()["message"], list), body
    other = api.http.post(tasks_path(small, small.location_ids[1]), json={})
    assert other.status_code == 403
    for version in (None, "2021-04-15"):
        response = Api(small, version=version).http.post(tasks_path(small), json={})
        assert response.status_code == 400
    assert all(header in api.http.post(tasks_path(small), json={}).headers for header in RATE_HEADERS)


def test_each_route_needs_its_scope(small: Sandbox) -> None:
    location_id = small.location_ids[0]
    contact_id = small.truth_contacts(location_id)[0]["id"]
    small.world.tokens.add("pit-no-tasks", TokenInfo("pit", "Location", small.company_id, location_id,
                                                     scopes=READ_SCOPES - {"locations/tasks.readonly"}))
    small.world.tokens.add("pit-no-contacts", TokenInfo("pit", "Location", small.company_id, location_id,
                                                        scopes=READ_SCOPES - {"contacts.readonly"}))
    no_tasks, no_contacts = Api(small, token="pit-no-tasks"), Api(small, token="pit-no-contacts")
    refused = no_tasks.http.post(tasks_path(small), json={})
    assert refused.status_code == 401 and "scope" in refused.json()["message"]
    assert no_tasks.get(f"/contacts/{contact_id}/notes").status_code == 200
    assert no_contacts.get(f"/contacts/{contact_id}/notes").status_code == 401
    assert no_contacts.http.post(tasks_path(small), json={}).status_code == 200
    task = small.truth(location_id, "tasks")[0]
    by_id = f"/contacts/{task['contactId']}/tasks/{task['id']}"  # contacts family: contacts.readonly
    assert no_contacts.get(by_id).status_code == 401 and no_tasks.get(by_id).status_code == 200


def test_notes_of_a_contact_are_all_there_unpaged(small: Sandbox) -> None:
    api = Api(small)
    truth = small.truth(api.location_id, "notes")
    by_contact: dict[str, list[str]] = {}
    for note in truth:
        by_contact.setdefault(note["contactId"], []).append(note["id"])
    contact_id = max(by_contact, key=lambda c: len(by_contact[c]))
    body = api.get(f"/contacts/{contact_id}/notes").json()
    assert sorted(n["id"] for n in body["notes"]) == sorted(by_contact[contact_id])
    assert set(body["notes"][0]) == {"id", "body", "userId", "dateAdded", "contactId", "title", "color", "pinned"}
    dates = [n["dateAdded"] for n in body["notes"]]
    assert dates == sorted(dates, reverse=True)
    without = next(c["id"] for c in small.truth_contacts(api.location_id) if c["id"] not in by_contact)
    assert api.get(f"/contacts/{without}/notes").json()["notes"] == []
    assert api.get("/contacts/nosuchcontact0000000/notes").status_code == 404
    other = small.truth_contacts(small.location_ids[1])[0]["id"]
    assert api.get(f"/contacts/{other}/notes").status_code == 404  # another location's contact
    assert Api(small, version="2021-04-15").get(f"/contacts/{contact_id}/notes").status_code == 400


def test_notes_and_tasks_requests_are_counted_and_logged(highlevel_sandbox_factory: Any) -> None:
    sb: Sandbox = highlevel_sandbox_factory(contacts_per_location=(30,), rate_limit_max=3, index_lag_s=0.1)
    api = Api(sb)
    contact_id = sb.truth_contacts(api.location_id)[0]["id"]
    statuses = [api.get(f"/contacts/{contact_id}/notes").status_code for _ in range(2)]
    statuses.append(api.http.post(tasks_path(sb), json={}).status_code)
    statuses.append(api.http.post(tasks_path(sb), json={}).status_code)
    assert statuses == [200, 200, 200, 429]
    logged = [(r["method"], r["path"], r["location_id"]) for r in sb.requests()]
    assert logged == [("GET", f"/contacts/{contact_id}/notes", api.location_id)] * 2 + [
        ("POST", tasks_path(sb), api.location_id)] * 2


def test_same_seed_same_tasks_and_notes(highlevel_sandbox_factory: Any) -> None:
    sb: Sandbox = highlevel_sandbox_factory(contacts_per_location=(40,))
    again: Sandbox = highlevel_sandbox_factory(contacts_per_location=(40,))
    location_id = sb.location_ids[0]
    assert sb.truth(location_id, "notes") == again.truth(location_id, "notes")
    assert sb.truth(location_id, "tasks") == again.truth(location_id, "tasks")


def test_one_task_by_id_through_its_contact(small: Sandbox) -> None:
    api = Api(small)
    loc = api.location_id
    task = next(t for t in small.truth(loc, "tasks") if t["completed"])
    found = api.get(f"/contacts/{task['contactId']}/tasks/{task['id']}")
    assert found.status_code == 200 and found.json()["task"] == task and "traceId" in found.json()
    other = next(c["id"] for c in small.truth_contacts(loc) if c["id"] != task["contactId"])
    assert api.get(f"/contacts/{other}/tasks/{task['id']}").status_code == 404  # not that contact's task
    tasks_notes.delete_task(small.world, loc, task["id"])
    gone = api.get(f"/contacts/{task['contactId']}/tasks/{task['id']}")
    assert gone.status_code == 404 and gone.json()["message"] == "Task not found"
    assert Api(small, loc, version=None).get(f"/contacts/{other}/tasks/x").status_code == 400  # Version header
    # another location's token cannot read it
    theirs = Api(small, small.location_ids[1])
    alive = next(t for t in small.truth(loc, "tasks"))
    assert theirs.get(f"/contacts/{alive['contactId']}/tasks/{alive['id']}").status_code == 404
