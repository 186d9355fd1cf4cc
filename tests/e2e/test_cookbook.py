"""The README's query cookbook, read from README.md and run against a demo-like sync: every query
runs and answers what the sandbox's ground truth says."""

from __future__ import annotations

import re
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from highlevel_sync.sandbox import Sandbox
from sources.highlevel.normalize import to_utc

from .conftest import Harness

README = Path(__file__).resolve().parents[2] / "README.md"
RESOURCES = ["contacts", "opportunities", "pipelines", "conversations", "messages", "calendars", "appointments",
             "custom_fields", "users", "locations", "object_schemas", "object_records", "relations", "forms",
             "form_submissions", "invoices", "transactions"]


def cookbook() -> list[str]:
    section = README.read_text().split("## Query cookbook", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sql\n(.*?)```", section, re.S)


@pytest.fixture(scope="module")
def demo(highlevel_sandbox_factory_module: Any, tmp_path_factory: pytest.TempPathFactory) -> Harness:
    """The demo's three runs: a backfill, an incremental run after changes, a reconcile."""
    # the demo's shape, smaller; without the burst limit, which is not what this tests (18 s -> 8 s)
    sb = highlevel_sandbox_factory_module(contacts_per_location=(1_200, 300, 40), index_lag_s=1.0,
                                          rate_limit_max=None, object_records_per_location=((150, 80), (25,)))
    h = Harness(sb, tmp_path_factory.mktemp("cookbook"))
    locations = sb.location_ids
    assert h.run(locations=locations, resources=RESOURCES).ok
    sb.update_contacts(h.big, 25)
    sb.create_contacts(h.big, 10)
    sb.delete_contacts(h.big, 3)
    sb.move_opportunities(h.big, 20)
    sb.wait_for_index()
    assert h.run(locations=locations, resources=RESOURCES).ok
    assert h.run(locations=locations, resources=RESOURCES, reconcile=True).ok
    return h


@pytest.fixture(scope="module")
def highlevel_sandbox_factory_module() -> Any:
    started: list[Sandbox] = []

    def make(**overrides: Any) -> Sandbox:
        started.append(Sandbox(None, **overrides).start())
        return started[-1]

    yield make
    for sb in started:
        sb.stop()


def truth(sb: Sandbox, family: str) -> list[tuple[str, dict[str, Any]]]:
    return [(loc, r) for loc in sb.location_ids for r in sb.truth(loc, family)]


def field_values(sb: Sandbox, name: str) -> dict[str, Any]:
    """contact id -> its value of the contact field called `name`, every location."""
    found = {}
    for loc in sb.location_ids:
        ids = {f["id"] for f in sb.truth_custom_fields(loc) if f["name"] == name}
        for contact in sb.truth_contacts(loc):
            for item in contact.get("customFields") or []:
                if item["id"] in ids:
                    found[contact["id"]] = item["value"]
    return found


def stage_names(sb: Sandbox) -> dict[str, tuple[str, str, int]]:
    """stage id -> (pipeline name, stage name, position)."""
    return {s["id"]: (p["name"], s["name"], s["position"]) for _, p in truth(sb, "pipelines") for s in p["stages"]}


def test_the_cookbook_has_seven_queries() -> None:
    assert len(cookbook()) == 7


def test_contacts_by_a_custom_field(demo: Harness) -> None:
    rows = demo.query(cookbook()[0])
    budgets = field_values(demo.sb, "Annual Budget")
    quality = field_values(demo.sb, "Lead Quality")
    expected = sorted(((-float(v), i) for i, v in budgets.items() if float(v) >= 25_000))
    assert [(r[0], r[3]) for r in rows] == [(i, -b) for b, i in expected] and len(rows) > 10
    assert all(r[4] == quality.get(r[0]) for r in rows)


def test_pipeline_funnel(demo: Harness) -> None:
    rows = demo.query(cookbook()[1])
    stages = stage_names(demo.sb)
    current = Counter((loc, *stages[o["pipelineStageId"]][:2]) for loc, o in truth(demo.sb, "opportunities"))
    assert {(r[0], r[1], r[2]): r[4] for r in rows if r[4]} == dict(current)
    moved_on = sum(r[3] - r[4] for r in rows)
    assert moved_on > 5  # the demo's stage moves: old stays that ended, with a median duration
    assert all(r[5] is not None for r in rows if r[3] > r[4]) and all(r[5] is None for r in rows if r[3] == r[4])


def test_time_to_first_reply(demo: Harness) -> None:
    (answered, hours), = demo.query(cookbook()[2])
    by_conversation: dict[str, list[tuple[Any, str]]] = {}
    for _, m in truth(demo.sb, "messages"):
        if not m["messageType"].startswith("TYPE_ACTIVITY"):
            by_conversation.setdefault(m["conversationId"], []).append((to_utc(m["dateAdded"]), m["direction"]))
    waits = []
    for messages in by_conversation.values():
        asked = min((t for t, d in messages if d == "inbound"), default=None)
        replies = [t for t, d in messages if d == "outbound" and asked is not None and t > asked]
        if replies:
            waits.append((min(replies) - asked).total_seconds())
    assert answered == len(waits) > 20
    assert hours == pytest.approx(statistics.median(waits) / 3600, abs=0.051)


def test_appointment_show_rate(demo: Harness) -> None:
    rows = demo.query(cookbook()[3])
    calendars = {c["id"]: (loc, c["name"]) for loc, c in truth(demo.sb, "calendars")}
    outcomes = Counter((*calendars[e["calendarId"]], e["appointmentStatus"]) for _, e in truth(demo.sb, "events"))
    assert len(rows) == len(calendars)
    for loc, name, showed, no_shows, rate in rows:
        assert (showed, no_shows) == (outcomes[(loc, name, "showed")], outcomes[(loc, name, "noshow")])
        assert float(rate) == pytest.approx(showed / (showed + no_shows), abs=0.0006)


def test_open_pipeline_value_by_stage(demo: Harness) -> None:
    rows = demo.query(cookbook()[4])
    stages = stage_names(demo.sb)
    expected: dict[tuple[str, str, str], list[float]] = {}
    for loc, o in truth(demo.sb, "opportunities"):
        if o["status"] == "open":
            expected.setdefault((loc, *stages[o["pipelineStageId"]][:2]), []).append(o["monetaryValue"])
    assert {(r[0], r[1], r[2]): r[3] for r in rows} == {k: len(v) for k, v in expected.items()}
    for loc, pipeline, stage, _, value in rows:
        assert float(value) == pytest.approx(sum(expected[(loc, pipeline, stage)]), abs=0.006)


def test_custom_object_records_with_their_contacts(demo: Harness) -> None:
    rows = demo.query(cookbook()[5])
    contacts = {c["id"]: c for loc in demo.sb.location_ids for c in demo.sb.truth_contacts(loc)}
    pets = {r["id"]: r["properties"] for _, r in truth(demo.sb, "object_records")
            if r["objectKey"] == "custom_objects.pets"}
    expected = sorted((pets[r["firstRecordId"]].get("pet_name"), r["firstRecordId"], r["secondRecordId"])
                      for _, r in truth(demo.sb, "relations")
                      if r["firstRecordId"] in pets and r["secondObjectKey"] == "contact"
                      and r["secondRecordId"] in contacts)
    assert [(r[1], r[0], r[3]) for r in rows] == expected and len(rows) > 50
    for pet_id, _, species, contact_id, first_name, last_name in rows:
        assert species == pets[pet_id].get("species")
        assert (first_name, last_name) == (contacts[contact_id].get("firstName"), contacts[contact_id].get("lastName"))


def test_leads_by_form_and_how_many_paid(demo: Harness) -> None:
    rows = demo.query(cookbook()[6])
    sb = demo.sb
    contacts = {c["id"] for loc in sb.location_ids for c in sb.truth_contacts(loc)}
    paid_by: Counter[str] = Counter()
    for _, invoice in truth(sb, "invoices"):
        paid_by[invoice["contactDetails"]["id"]] += invoice["amountPaid"]
    for _, txn in truth(sb, "transactions"):
        if txn["status"] in ("succeeded", "refunded", "partially_refunded"):
            paid_by[txn["contactId"]] += txn["amount"] - (txn.get("amountRefunded") or 0)
    forms = {f["id"]: (loc, f["name"]) for loc, f in truth(sb, "forms")}
    leads: dict[tuple[str, str], set[str]] = {}
    for _, s in truth(sb, "form_submissions"):
        if s["contactId"] in contacts and s["formId"] in forms:
            leads.setdefault(forms[s["formId"]], set()).add(s["contactId"])
    expected = {key: (len(ids), sum(1 for i in ids if paid_by[i] > 0)) for key, ids in leads.items()}
    assert {(r[0], r[1]): (r[2], r[3]) for r in rows} == expected
    assert sum(r[2] for r in rows) > 10 and sum(r[3] for r in rows) > 0
