"""Every table of a seeded location equals the sandbox's ground truth; changes arrive exactly once."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from sources.highlevel.endpoints import LISTS
from sources.highlevel.settings import DEFAULT_RESOURCES

from .conftest import Harness


def ms(value: Any) -> int:
    if isinstance(value, int | float):
        return int(value)
    return int(datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp() * 1000)


@pytest.fixture
def crm(highlevel_sandbox_factory: Any, tmp_path: Path) -> Harness:
    sb = highlevel_sandbox_factory(contacts_per_location=(1_000, 60), opportunities_per_location=(10_300, 20),
                                   conversations_per_location=(300, 10), index_lag_s=1.0)
    return Harness(sb, tmp_path)


def ids(h: Harness, table: str, location_id: str) -> list[str]:
    return [r[0] for r in h.query(f"select id from highlevel.{table} where location_id = ? order by id", location_id)]


def run_all(h: Harness, **kw: Any) -> Any:
    result = h.run(resources=list(DEFAULT_RESOURCES), **kw)
    assert result.ok, [(r.location_id, r.error) for r in result.locations]
    return result


def test_full_load_of_every_table_equals_ground_truth(crm: Harness) -> None:
    h, loc = crm, crm.big
    result = run_all(h)
    truth = {family: h.sb.truth(loc, family) for family in
             ("opportunities", "pipelines", "conversations", "messages", "calendars", "events")}
    assert len(truth["opportunities"]) > 10_000
    assert ids(h, "opportunities", loc) == [o["id"] for o in truth["opportunities"]]
    loaded = {r[0]: r[1:] for r in h.query(
        "select id, pipeline_stage_id, status, epoch_ms(updated_at), epoch_ms(created_at), monetary_value "
        "from highlevel.opportunities where location_id = ?", loc)}
    for o in truth["opportunities"]:
        assert loaded[o["id"]] == (o["pipelineStageId"], o["status"], ms(o["updatedAt"]), ms(o["createdAt"]),
                                   o["monetaryValue"])
    values = h.query("select count(*) from highlevel.opportunity_custom_field_values where location_id = ?", loc)
    assert values == [(sum(len(o["customFields"]) for o in truth["opportunities"]),)]

    assert ids(h, "pipelines", loc) == [p["id"] for p in truth["pipelines"]]
    stages = h.query("select count(*) from highlevel.pipelines__stages where location_id = ?", loc)
    assert stages == [(sum(len(p["stages"]) for p in truth["pipelines"]),)]

    assert ids(h, "conversations", loc) == [c["id"] for c in truth["conversations"]]
    conv = dict(h.query("select id, epoch_ms(last_message_date) from highlevel.conversations where location_id = ?",
                        loc))
    assert all(conv[c["id"]] == c["lastMessageDate"] for c in truth["conversations"])  # epoch ms in the API

    assert ids(h, "messages", loc) == [m["id"] for m in truth["messages"]]
    channels = {r[0] for r in h.query("select distinct message_type from highlevel.messages where location_id = ?",
                                      loc)}
    assert {"TYPE_SMS", "TYPE_EMAIL", "TYPE_CALL", "TYPE_WHATSAPP", "TYPE_FACEBOOK", "TYPE_INSTAGRAM",
            "TYPE_ACTIVITY_OPPORTUNITY"} <= channels

    assert ids(h, "calendars", loc) == [c["id"] for c in truth["calendars"]]
    assert ids(h, "appointments", loc) == [e["id"] for e in truth["events"]]
    starts = dict(h.query("select id, epoch_ms(start_time) from highlevel.appointments where location_id = ?", loc))
    assert all(starts[e["id"]] == ms(e["startTime"]) for e in truth["events"])  # offset-local → UTC instant
    now = datetime.now().timestamp() * 1000
    assert any(ms(e["startTime"]) < now for e in truth["events"]) and any(ms(e["startTime"]) > now
                                                                          for e in truth["events"])

    assert h.query("select timezone from highlevel.locations where id = ?", loc) == [
        (h.sb.truth_location(loc)["timezone"],)]
    models = {r[0] for r in h.query("select distinct model from highlevel.custom_fields where location_id = ?", loc)}
    objects = {s["key"] for s in h.sb.truth(loc, "object_schemas") if not s["standard"]}
    assert models == {"contact", "opportunity", *objects} and objects  # custom objects' fields too
    assert "POST search" in result.locations[0].notes["opportunities"] or "GET" in \
        result.locations[0].notes["opportunities"]


def test_changes_arrive_exactly_once_and_a_quiet_run_is_cheap(crm: Harness) -> None:
    h, loc = crm, crm.big
    run_all(h)
    moved = h.sb.move_opportunities(loc, 20)
    new_messages = h.sb.add_messages(loc, ["SMS", "Email", "Call", "WhatsApp"])
    changed_events = h.sb.reschedule_appointments(loc, 3, cancel=2)
    calendar_id, new_events = h.sb.add_calendar(loc, 4)
    h.sb.wait_for_index()
    run_all(h)
    for table in ("opportunities", "messages", "appointments", "conversations"):
        assert h.query(f"select count(*) - count(distinct id) from highlevel.{table}") == [(0,)], table
    truth_opps = {o["id"]: o for o in h.sb.truth(loc, "opportunities")}
    for opp_id in moved:
        assert h.query("select pipeline_stage_id, status from highlevel.opportunities where id = ?", opp_id) == [
            (truth_opps[opp_id]["pipelineStageId"], truth_opps[opp_id]["status"])]
    assert set(new_messages) <= set(ids(h, "messages", loc))
    events = {e["id"]: e for e in h.sb.truth(loc, "events")}
    for event_id in changed_events + new_events:
        assert h.query("select epoch_ms(start_time), appointment_status from highlevel.appointments where id = ?",
                       event_id) == [(ms(events[event_id]["startTime"]), events[event_id]["appointmentStatus"])]
    assert calendar_id in ids(h, "calendars", loc)
    assert h.query("select count(*) from highlevel.appointments where appointment_status = 'cancelled' and "
                   "location_id = ?", loc)[0][0] >= 2

    # a run with no upstream change: a fixed number of requests, whatever the data volume
    h.sb.clear_requests()
    run_all(h)
    requests = [r for r in h.sb.requests() if r["location_id"] == loc]
    by_path: dict[str, int] = {}
    for r in requests:
        by_path[f"{r['method']} {r['path']}"] = by_path.get(f"{r['method']} {r['path']}", 0) + 1
    calendars = len(h.sb.truth(loc, "calendars"))
    # contacts 1, opportunities 1, conversations 1, messages 2 passes, pipelines 1, calendars 1,
    # appointments ceil(395 days / 90) = 5 windows per calendar, custom fields 1, users 1, location 1,
    # tasks: the whole list, 100 a page
    task_pages = len(h.sb.truth(loc, "tasks")) // 100 + 1
    # the account's lists (endpoints.LISTS): at most two each; custom objects have no change filter:
    # each object's records are searched again (100 a page), its fields read once
    objects = [s["key"] for s in h.sb.truth(loc, "object_schemas") if not s["standard"]]
    records = Counter(r["objectKey"] for r in h.sb.truth(loc, "object_records"))
    searches = sum(records[key] // 100 + 1 for key in objects)
    assert len(requests) <= 11 + 5 * calendars + task_pages + 2 * len(LISTS) + searches + len(objects), by_path


def test_garbage_in_one_resource_fails_only_that_resource(crm: Harness) -> None:
    h, loc = crm, crm.big
    h.sb.faults.set(garbage_rate=1.0, path_prefix="/conversations/messages/export")
    result = h.run(resources=list(DEFAULT_RESOURCES), client_options={"max_attempts": 2})
    assert not result.ok
    failure = result.locations[0]
    assert set(failure.resource_errors) == {"messages"}
    assert "non-JSON" in failure.resource_errors["messages"]
    assert len(ids(h, "opportunities", loc)) > 10_000 and ids(h, "conversations", loc)
    assert h.query("select count(*) from information_schema.tables where table_name = 'messages'") == [(0,)]
    h.sb.faults.clear()
    run_all(h)
    assert ids(h, "messages", loc) == [m["id"] for m in h.sb.truth(loc, "messages")]


@pytest.mark.parametrize("honoured", [None, "updatedAt"])
def test_opportunities_fall_back_when_the_update_filter_is_refused(
    highlevel_sandbox_factory: Any, tmp_path: Path, honoured: str | None
) -> None:
    sb = highlevel_sandbox_factory(contacts_per_location=(300,), opportunities_per_location=(450,),
                                   index_lag_s=0.5, opportunity_update_field=honoured)
    h = Harness(sb, tmp_path)
    assert h.run(resources=["opportunities"]).ok
    sb.move_opportunities(h.big, 7)
    sb.wait_for_index()
    sb.clear_requests()
    result = h.run(resources=["opportunities"])
    assert result.ok
    assert ids(h, "opportunities", h.big) == [o["id"] for o in sb.truth(h.big, "opportunities")]
    truth = {o["id"]: o["pipelineStageId"] for o in sb.truth(h.big, "opportunities")}
    assert dict(h.query("select id, pipeline_stage_id from highlevel.opportunities")) == truth
    note = result.locations[0].notes["opportunities"]
    gets = [r for r in sb.requests() if r["method"] == "GET" and r["path"] == "/opportunities/search"]
    if honoured is None:
        assert "full GET scan" in note and len(gets) == 5  # 450 rows / 100 per page
    else:
        assert "updatedAt" in note and gets == []
