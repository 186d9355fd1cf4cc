"""Tasks: open ones every run, completed ones in the sweep, equal to the sandbox's; notes follow changed
contacts, under a request cap."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from highlevel_sync.report import format_summary, summary_json
from highlevel_sync.sandbox import tasks_notes
from sources.highlevel.webhooks import Inbox
from sources.highlevel.webhooks.events import parse_event
from sources.highlevel.webhooks.processor import Processor

from .conftest import Harness

NOTES = ["contacts", "notes"]


@pytest.fixture
def h(highlevel_sandbox_factory: Any, tmp_path: Path) -> Harness:
    return Harness(highlevel_sandbox_factory(contacts_per_location=(60, 40), index_lag_s=0.3), tmp_path)


def ms(value: Any) -> int:
    return int(datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp() * 1000)


def loaded_tasks(h: Harness, location_id: str) -> list[tuple[Any, ...]]:
    return h.query("select id, contact_id, title, completed, epoch_ms(due_date), epoch_ms(date_added) "
                   "from highlevel.tasks where location_id = ? order by id", location_id)


def truth_tasks(h: Harness, location_id: str) -> list[tuple[Any, ...]]:
    return [(t["id"], t["contactId"], t["title"], t["completed"], ms(t["dueDate"]), ms(t["dateAdded"]))
            for t in h.sb.truth(location_id, "tasks")]


def loaded_notes(h: Harness, location_id: str) -> list[tuple[Any, ...]]:
    return h.query("select id, contact_id, body, epoch_ms(date_added) from highlevel.notes "
                   "where location_id = ? order by id", location_id)


def truth_notes(h: Harness, location_id: str, contacts: set[str] | None = None) -> list[tuple[Any, ...]]:
    alive = {c["id"] for c in h.sb.truth_contacts(location_id)}
    return [(n["id"], n["contactId"], n["body"], ms(n["dateAdded"])) for n in h.sb.truth(location_id, "notes")
            if n["contactId"] in alive and (contacts is None or n["contactId"] in contacts)]


def notes_requests(h: Harness, location_id: str) -> Counter[str]:
    """Notes requests per contact id since the log was last cleared."""
    return Counter(r["path"].split("/")[2] for r in h.sb.requests("/contacts/")
                   if r["path"].endswith("/notes") and r["location_id"] == location_id)


def task_requests(h: Harness, location_id: str) -> Counter[str]:
    """Task requests of one location since the log was last cleared: searches by `completed`
    filter ("all" without one), and reads by id."""
    found: Counter[str] = Counter()
    for r in h.sb.requests():
        if r["location_id"] != location_id:
            continue
        if r["path"] == f"/locations/{location_id}/tasks/search":
            found[{None: "all", False: "open", True: "completed"}[r["body"].get("completed")]] += 1
        elif "/tasks/" in r["path"] and r["path"].startswith("/contacts/"):
            found["by id"] += 1
    return found


def test_open_tasks_every_run_completed_ones_in_the_sweep(h: Harness) -> None:
    locations = h.sb.location_ids
    first = h.run(locations=locations, resources=["tasks"])  # first run: every task
    assert first.ok, [r.error for r in first.locations]
    for loc in locations:
        assert loaded_tasks(h, loc) == truth_tasks(h, loc)
        assert {r["path"] for r in h.sb.requests("/locations/") if r["location_id"] == loc} == {
            f"/locations/{loc}/tasks/search"}
        assert task_requests(h, loc) == Counter(all=1)
    open_ = {loc: [t for t in h.sb.truth(loc, "tasks") if not t["completed"]] for loc in locations}
    assert all(open_.values()) and all(len(open_[loc]) < len(h.sb.truth(loc, "tasks")) for loc in locations)

    h.sb.clear_requests()
    quiet = h.run(locations=locations, resources=["tasks"])  # nothing changed: only the open ones are read
    assert quiet.ok
    for result in quiet.locations:  # a new listing (open only): its rows merge once, unchanged
        assert result.rows == {"tasks": len(open_[result.location_id])}
        assert task_requests(h, result.location_id) == Counter(open=1)
    quieter = h.run(locations=locations, resources=["tasks"])  # the same listing again: read, not loaded
    assert quieter.ok and all(not r.rows for r in quieter.locations), [r.rows for r in quieter.locations]

    loc = h.big
    contact = h.sb.truth_contacts(loc)[0]["id"]
    added = tasks_notes.add_task(h.sb.world, loc, contact)
    victim, done = (t["id"] for t in open_[loc][:2])
    finished = next(t["id"] for t in h.sb.truth(loc, "tasks") if t["completed"])
    tasks_notes.complete_task(h.sb.world, loc, done)
    tasks_notes.delete_task(h.sb.world, loc, victim)
    tasks_notes.delete_task(h.sb.world, loc, finished)
    h.sb.clear_requests()
    changed = h.run(locations=locations, resources=["tasks"])
    assert changed.ok
    # the completed and the deleted open task were read by id: one is merged, the other deleted
    assert task_requests(h, loc) == Counter({"open": 1, "by id": 2})
    completed_row = next(t for t in loaded_tasks(h, loc) if t[0] == done)
    assert completed_row[3] is True and any(t[0] == added["id"] for t in loaded_tasks(h, loc))
    # a deleted completed task is invisible to the open listing: still loaded until the sweep
    assert [t[0] for t in loaded_tasks(h, loc)] == sorted([t[0] for t in truth_tasks(h, loc)] + [finished])
    assert h.query("select id, resource, detected_by from highlevel.deletions") == [(victim, "tasks", "sweep")]
    assert loaded_tasks(h, locations[1]) == truth_tasks(h, locations[1])

    h.sb.clear_requests()
    swept = h.run(locations=locations, resources=["tasks"], reconcile=True)
    assert swept.ok and task_requests(h, loc) == Counter(all=1)
    assert loaded_tasks(h, loc) == truth_tasks(h, loc)
    assert sorted(h.query("select id, resource, detected_by from highlevel.deletions")) == sorted(
        [(victim, "tasks", "sweep"), (finished, "tasks", "sweep")])


def test_a_no_change_run_on_a_big_location_reads_only_the_open_tasks(highlevel_sandbox_factory: Any,
                                                                     tmp_path: Path) -> None:
    h = Harness(highlevel_sandbox_factory(index_lag_s=0.2), tmp_path)  # the demo's data: 12,500 contacts
    loc = h.big
    every, open_ = len(h.sb.truth(loc, "tasks")), sum(not t["completed"] for t in h.sb.truth(loc, "tasks"))
    assert every > 3_000
    assert h.run(resources=["tasks"]).ok
    # the first run reads every task, 32 pages; nothing was loaded, so how many there are is not known
    # and pages go in waves (1, 2, 4, 8, 8...) that ask up to 7 beyond the end
    assert -(-every // 100) <= task_requests(h, loc)["all"] < -(-every // 100) + 8
    assert set(task_requests(h, loc)) == {"all"}
    h.sb.clear_requests()
    assert h.run(resources=["tasks"]).ok
    assert task_requests(h, loc) == Counter(open=-(-open_ // 100))  # 20 (1,911 open), not 32
    assert loaded_tasks(h, loc) == truth_tasks(h, loc)


def test_notes_are_read_only_for_changed_contacts(h: Harness) -> None:
    loc = h.big
    assert h.run(resources=NOTES).ok  # first run: every contact is new, so every contact's notes
    assert loaded_notes(h, loc) == truth_notes(h, loc)
    assert notes_requests(h, loc) == Counter({c["id"]: 1 for c in h.sb.truth_contacts(loc)})

    h.sb.clear_requests()
    quiet = h.run(resources=NOTES)  # the contacts overlap re-read is not a change: no notes request
    assert quiet.ok and notes_requests(h, loc) == Counter()

    changed = h.sb.update_contacts(loc, 5)
    unchanged = next(c["id"] for c in h.sb.truth_contacts(loc) if c["id"] not in changed)
    tasks_notes.add_note(h.sb.world, loc, changed[0])
    silent = tasks_notes.add_note(h.sb.world, loc, unchanged)  # no webhook, no contact change: not seen
    gone = next(n for n in h.sb.truth(loc, "notes") if n["contactId"] in changed[1:])
    tasks_notes.delete_note(h.sb.world, loc, gone["id"])
    h.sb.wait_for_index()
    h.sb.clear_requests()
    result = h.run(resources=NOTES)
    assert result.ok
    assert notes_requests(h, loc) == Counter(dict.fromkeys(changed, 1))
    assert loaded_notes(h, loc) == [n for n in truth_notes(h, loc) if n[0] != silent["id"]]
    assert h.query("select id, resource, detected_by from highlevel.deletions") == [(gone["id"], "notes", "sweep")]
    assert h.query("select count(*), count(distinct id) from highlevel.notes")[0] == (len(loaded_notes(h, loc)),) * 2


def test_the_notes_cap_holds_and_the_next_runs_catch_up(h: Harness) -> None:
    cap = 25
    locations = h.sb.location_ids  # 60 and 40 contacts
    contacts = {loc: {c["id"] for c in h.sb.truth_contacts(loc)} for loc in locations}
    requested: dict[str, Counter[str]] = {loc: Counter() for loc in locations}
    runs = 0
    while True:
        h.sb.clear_requests()
        result = h.run(locations=locations, resources=NOTES, config={"notes_max_requests": cap})
        runs += 1
        assert result.ok, [r.error for r in result.locations]
        summary = format_summary(result)
        for report in result.locations:
            loc = report.location_id
            made = notes_requests(h, loc)
            left = len(contacts[loc]) - sum(requested[loc].values())
            assert sum(made.values()) == min(cap, left), (runs, loc)  # the cap holds, per location
            requested[loc].update(made)
            note = report.notes.get("notes", "")
            if left > cap:
                assert f"{left - cap} contact(s) deferred to the next run" in note
                assert note in summary and "deferred" in str(summary_json(result)["locations"])
            else:
                assert "deferred" not in note
        if all(sum(requested[loc].values()) == len(contacts[loc]) for loc in locations):
            break
        assert runs < 5
    assert runs == 3  # 60 contacts at 25 a run
    for loc in locations:
        assert requested[loc] == Counter(dict.fromkeys(contacts[loc], 1))  # each contact exactly once
        assert loaded_notes(h, loc) == truth_notes(h, loc)
    assert h.query("select count(*) = count(distinct id) from highlevel.notes") == [(True,)]
    h.sb.clear_requests()
    assert h.run(locations=locations, resources=NOTES, config={"notes_max_requests": cap}).ok
    assert all(not notes_requests(h, loc) for loc in locations)  # nothing left over


def test_note_webhooks_queue_their_contact_and_delete_the_note(h: Harness, tmp_path: Path) -> None:
    loc = h.big
    inbox_path = tmp_path / "inbox.sqlite"
    inbox = Inbox(inbox_path)
    assert h.run(resources=NOTES, inbox_path=str(inbox_path)).ok
    contact = h.sb.truth_contacts(loc)[5]["id"]
    created = tasks_notes.add_note(h.sb.world, loc, contact)
    victim = next(n for n in h.sb.truth(loc, "notes") if n["id"] != created["id"])
    tasks_notes.delete_note(h.sb.world, loc, victim["id"])
    for event_type, record in (("NoteCreate", created), ("NoteDelete", victim)):
        assert inbox.accept(parse_event(h.sb.webhooks.event(event_type, loc, record)))
    Processor(inbox).process_pending()
    h.sb.clear_requests()

    result = h.run(resources=NOTES, inbox_path=str(inbox_path))
    assert result.ok
    assert notes_requests(h, loc) == Counter({contact: 1})
    assert loaded_notes(h, loc) == truth_notes(h, loc)
    assert h.query("select id, resource, detected_by from highlevel.deletions") == [
        (victim["id"], "notes", "webhook")]
    assert inbox.pending_changes(loc) == [] and inbox.pending_deletions(loc) == []


def test_sync_notes_adds_notes_to_a_default_run(h: Harness) -> None:
    plain = h.run(resources=None)
    assert plain.ok and "tasks" in plain.rows_by_table() and not notes_requests(h, h.big)
    result = h.run(resources=None, config={"sync_notes": True, "notes_max_requests": 10})
    assert result.ok
    assert sum(notes_requests(h, h.big).values()) == 10  # every contact is new to the notes read
    assert "50 contact(s) deferred to the next run" in result.locations[0].notes["notes"]


def test_a_failing_notes_request_defers_the_rest_instead_of_losing_it(h: Harness) -> None:
    loc = h.big
    h.sb.faults.fail_next(40, 503, path_prefix="/contacts/", after=11)  # after the search: 10 notes reads ok
    failed = h.run(resources=NOTES, client_options={"max_attempts": 2})
    assert not failed.ok  # reported as the failure it is, but what was read and the queue are kept
    assert set(failed.locations[0].resource_errors) == {"notes"}
    assert "503" in failed.locations[0].resource_errors["notes"]
    assert "deferred to the next run" in failed.locations[0].notes["notes"]
    assert 0 < len(loaded_notes(h, loc)) < len(truth_notes(h, loc))
    h.sb.faults.clear()
    assert h.run(resources=NOTES).ok
    assert loaded_notes(h, loc) == truth_notes(h, loc)


def test_a_task_deleted_mid_read_hides_no_other_from_the_sweep(highlevel_sandbox_factory: Any,
                                                               tmp_path: Path) -> None:
    h = Harness(highlevel_sandbox_factory(contacts_per_location=(600,), index_lag_s=0.2), tmp_path)
    loc = h.big
    assert len(h.sb.truth(loc, "tasks")) > 100  # two pages
    assert h.run(resources=["tasks"]).ok
    first = min(h.sb.truth(loc, "tasks"), key=lambda t: (t["dateAdded"], t["id"]))  # on page one
    # deleted between the first and the second page: the second page starts one task later
    h.sb.before_request(f"/locations/{loc}/tasks/search", lambda: tasks_notes.delete_task(h.sb.world, loc,
                                                                                          first["id"]), after=1)
    h.sb.clear_requests()
    assert h.run(resources=["tasks"], reconcile=True).ok  # the sweep lists every task
    assert len(h.sb.requests("/locations/")) == 4  # two pages, and two again: a listed task went missing
    # the hidden task was not called deleted; the deleted one was listed on page one, so it stays a run
    assert [t[0] for t in loaded_tasks(h, loc)] == sorted([t[0] for t in truth_tasks(h, loc)] + [first["id"]])
    assert h.query("select count(*) from information_schema.tables where table_name = 'deletions'") == [(0,)]
    assert h.run(resources=["tasks"], reconcile=True).ok
    assert loaded_tasks(h, loc) == truth_tasks(h, loc)
    assert h.query("select id, detected_by from highlevel.deletions") == [(first["id"], "sweep")]


def test_contacts_changed_by_runs_without_notes_still_get_their_notes_read(h: Harness) -> None:
    loc = h.big
    assert h.run(resources=NOTES).ok
    changed = h.sb.update_contacts(loc, 2)
    h.sb.wait_for_index()
    assert h.run(resources=["contacts"]).ok  # e.g. a run a ContactUpdate webhook triggered
    h.sb.clear_requests()
    assert h.run(resources=NOTES).ok
    assert notes_requests(h, loc) == Counter(dict.fromkeys(changed, 1))
    h.sb.clear_requests()
    assert h.run(resources=NOTES).ok
    assert notes_requests(h, loc) == Counter()
