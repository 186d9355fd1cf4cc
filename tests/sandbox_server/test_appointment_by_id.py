"""`GET /calendars/events/appointments/{eventId}` and the control switches added with it: edits and
deletes of single appointments, conversations tied on one millisecond, actions before a request."""

from __future__ import annotations

from typing import Any

from .conftest import Api

V0415 = "2021-04-15"


def test_an_appointment_by_id_whatever_its_date(highlevel_sandbox: Any) -> None:
    sb = highlevel_sandbox
    loc, other = sb.location_ids[0], sb.location_ids[1]
    event = sb.truth(loc, "events")[0]
    api = Api(sb, loc, version=V0415)
    response = api.get(f"/calendars/events/appointments/{event['id']}")
    assert response.status_code == 200, response.text
    assert response.json()["event"] == event
    assert "traceId" in response.json()
    assert Api(sb, loc).get(f"/calendars/events/appointments/{event['id']}").status_code == 400  # wrong Version
    assert Api(sb, other, version=V0415).get(f"/calendars/events/appointments/{event['id']}").status_code == 404
    sb.edit_appointment(loc, event["id"], title="Fixed")
    assert api.get(f"/calendars/events/appointments/{event['id']}").json()["event"]["title"] == "Fixed"
    sb.delete_appointment(loc, event["id"])
    gone = api.get(f"/calendars/events/appointments/{event['id']}")
    assert gone.status_code == 404 and gone.json()["statusCode"] == 404
    assert event["id"] not in {e["id"] for e in sb.truth(loc, "events")}


def test_tied_conversations_and_a_strict_start_after_date(highlevel_sandbox: Any) -> None:
    sb = highlevel_sandbox
    loc = sb.location_ids[0]
    tied = sb.tie_conversations(loc, 2, 5)
    api = Api(sb, loc, version=V0415)
    rows = api.get("/conversations/search", locationId=loc, limit=4).json()["conversations"]
    stamp = rows[-1]["lastMessageDate"]
    assert {c["lastMessageDate"] for c in sb.truth(loc, "conversations") if c["id"] in tied} == {stamp}
    after = api.get("/conversations/search", locationId=loc, limit=100, startAfterDate=stamp).json()["conversations"]
    assert all(c["lastMessageDate"] < stamp for c in after)  # strict: the other ties are skipped


def test_an_action_runs_once_before_the_chosen_request(highlevel_sandbox: Any) -> None:
    sb = highlevel_sandbox
    seen: list[int] = []
    sb.before_request("/contacts/search", lambda: seen.append(len(sb.requests("/contacts/search"))), after=1)
    api = Api(sb)
    for _ in range(3):
        api.search()
    assert seen == [1]  # before the second search, and only once
