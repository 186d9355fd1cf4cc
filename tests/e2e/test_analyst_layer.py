"""The analyst layer on DuckDB: typed wide views, opportunity history and the stage views."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from highlevel_sync.sandbox import Sandbox
from sources.highlevel.normalize import to_utc
from sources.highlevel.webhooks import Inbox
from tests.analyst_expect import assert_wide_views_match

from .conftest import Harness
from .test_webhook_deletes import Hooked

ANALYST_RESOURCES = ["contacts", "opportunities", "pipelines", "custom_fields", "users", "locations"]
TRACKED = ("pipelineId", "pipelineStageId", "status", "monetaryValue", "assignedTo")


@pytest.fixture
def h(highlevel_sandbox_factory: Any, tmp_path: Path) -> Harness:
    return Harness(highlevel_sandbox_factory(contacts_per_location=(400, 120, 30), index_lag_s=0.5), tmp_path)


def sync(h: Harness, **kw: Any) -> Any:
    kw.setdefault("resources", ANALYST_RESOURCES)
    result = h.run(locations=h.sb.location_ids, **kw)
    assert result.ok, [(r.location_id, r.error) for r in result.locations]
    return result


def versions(h: Harness) -> dict[str, list[tuple[Any, ...]]]:
    """id -> its versions (stage, status, valid_from, valid_to), oldest first."""
    found: dict[str, list[tuple[Any, ...]]] = {}
    for row in h.query("select id, pipeline_stage_id, status, valid_from, valid_to from highlevel.opportunity_history "
                       "order by id, valid_from"):
        found.setdefault(row[0], []).append(row[1:])
    return found


def opportunities(sb: Sandbox) -> dict[str, dict[str, Any]]:
    return {o["id"]: o for loc in sb.location_ids for o in sb.truth(loc, "opportunities")}


def column_type(h: Harness, view: str, column: str) -> str:
    return str(h.query("select data_type from information_schema.columns where table_schema = 'highlevel' "
                       "and table_name = ? and column_name = ?", view, column)[0][0])


def test_wide_views_hold_every_custom_value_typed_as_the_api(h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    sb = h.sb
    sync(h)
    assert assert_wide_views_match(sb, sb.location_ids, h.query, "highlevel") > 1_000
    # one column per key, however many locations define it; typed by dataType
    assert [column_type(h, "contacts_wide", c) for c in ("cf_annual_budget", "cf_number_of_employees",
            "cf_last_visit", "cf_interests", "cf_services_wanted", "cf_lead_quality", "cf_referral_details")] == [
        "DOUBLE", "DOUBLE", "TIMESTAMP WITH TIME ZONE", "JSON", "JSON", "VARCHAR", "VARCHAR"]
    assert column_type(h, "opportunities_wide", "cf_budget") == "DOUBLE"
    base = [r[0] for r in h.query("select column_name from information_schema.columns where table_schema = "
                                  "'highlevel' and table_name = 'contacts' order by ordinal_position")]
    wide = [r[0] for r in h.query("select column_name from information_schema.columns where table_schema = "
                                  "'highlevel' and table_name = 'contacts_wide' order by ordinal_position")]
    assert wide[:len(base)] == base and all(c.startswith("cf_") for c in wide[len(base):])

    # a field added in HighLevel (one location only) appears after the next run, with its values
    field = sb.add_custom_field(h.big, "Lead Score", "NUMERICAL")
    scored = sb.truth_contacts(h.big)[0]
    sb.edit_contact(h.big, scored["id"], customFields=[*scored["customFields"], {"id": field["id"], "value": 87}])
    sb.update_contacts(h.big, 20)
    sb.wait_for_index()
    sync(h)
    assert h.query("select cf_lead_score from highlevel.contacts_wide where id = ?", scored["id"]) == [(87.0,)]
    assert_wide_views_match(sb, sb.location_ids, h.query, "highlevel")

    # definitions unchanged: no view is rebuilt
    with caplog.at_level(logging.INFO, logger="highlevel.analyst"):
        sync(h)
    assert not [r for r in caplog.records if "rebuilt" in r.getMessage()]


def test_history_keeps_one_version_per_observed_change(h: Harness, tmp_path: Path) -> None:
    sb = h.sb
    sync(h)
    before = opportunities(sb)
    first = versions(h)
    assert sorted(first) == sorted(before) and all(len(v) == 1 and v[0][3] is None for v in first.values())
    # the first version starts when the opportunity entered its stage
    some = sorted(before)[0]
    assert first[some][0][2] == to_utc(before[some]["lastStageChangeAt"])

    moved = sb.move_opportunities(h.big, 25)
    sb.wait_for_index()
    sync(h)
    after = opportunities(sb)
    changed = {i for i in after if any(before[i][k] != after[i][k] for k in TRACKED)}
    stage_moves = {i for i in changed if before[i]["pipelineStageId"] != after[i]["pipelineStageId"]}
    assert changed <= set(moved) and len(stage_moves) >= 10
    history = versions(h)
    for opp_id, rows in history.items():
        if opp_id not in changed:
            assert len(rows) == 1 and rows[0][3] is None, opp_id
            continue
        (old_stage, old_status, _, closed_at), (new_stage, new_status, opened_at, still) = rows
        assert (old_stage, old_status) == (before[opp_id]["pipelineStageId"], before[opp_id]["status"])
        assert (new_stage, new_status) == (after[opp_id]["pipelineStageId"], after[opp_id]["status"])
        assert closed_at == opened_at and still is None  # exactly one current version
        stamp = "lastStageChangeAt" if opp_id in stage_moves else "lastStatusChangeAt"
        assert opened_at == to_utc(after[opp_id][stamp])  # the change's time, not the load's

    # re-reading everything (full refresh through the GET scan fallback) adds no version
    sb.opportunity_search.set("405")
    sync(h, full_refresh=True)
    assert versions(h) == history

    # a deleted opportunity's last version is closed at its deletion
    inbox_path = tmp_path / "inbox.sqlite"
    victim = sorted(stage_moves)[0]
    deleted_at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)  # after its last change
    with_inbox = Inbox(inbox_path)
    with_inbox.record_deletion("opportunities", victim, h.big, deleted_at, "webhook")
    with_inbox.close()
    sync(h, inbox_path=str(inbox_path))
    final = versions(h)
    assert final[victim][-1][3] == deleted_at and final[victim][:-1] == history[victim][:-1]
    assert {i: v for i, v in final.items() if i != victim} == {i: v for i, v in history.items() if i != victim}

    # the stage views read the history: every move is a stay that ended
    stays = h.query("select opportunity_id, pipeline_stage_id, left_at, days_in_stage "
                    "from highlevel.opportunity_stage_durations")
    ended = {(r[0], r[1]) for r in stays if r[2] is not None}
    assert {(i, before[i]["pipelineStageId"]) for i in stage_moves} <= ended
    assert all(r[3] is not None and r[3] >= 0 for r in stays if r[2] is not None)
    funnel = h.query("select sum(entered), sum(still_there) from highlevel.pipeline_funnel")
    assert funnel == [(len(stays), len(after) - 1)]


def test_stage_webhooks_add_versions_at_the_events_time(h: Harness, tmp_path: Path) -> None:
    hooked = Hooked(h, tmp_path)
    try:
        sb = h.sb
        assert hooked.sync(resources=ANALYST_RESOURCES, locations=[h.big]).ok
        before = {o["id"]: o for o in sb.truth(h.big, "opportunities")}
        moved = sb.move_opportunities(h.big, 6)
        events = []
        for record in sb.truth(h.big, "opportunities"):
            if record["id"] in moved:
                kind = "OpportunityStatusUpdate" if len(events) % 2 else "OpportunityStageUpdate"
                events.append(sb.webhooks.event(kind, h.big, record))
                sb.webhooks.deliver(hooked.url, events[-1])
        hooked.wait_runs(1)
        assert hooked.runs[0] == (h.big, {"opportunities"})
        history = versions(h)
        for event in events:
            if before[event["id"]]["pipelineStageId"] == event["pipelineStageId"] and \
                    before[event["id"]]["status"] == event["status"]:
                assert len(history[event["id"]]) == 1
                continue
            current = history[event["id"]][-1]
            assert current[:2] == (event["pipelineStageId"], event["status"]) and current[3] is None
            sent = to_utc(event["timestamp"])
            assert sent is not None and timedelta(0) <= sent - current[2] < timedelta(seconds=5)
    finally:
        hooked.close()
