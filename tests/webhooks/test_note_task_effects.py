"""Note and task events: a note change queues its contact for a notes read; deletes leave tombstones."""

from __future__ import annotations

from pathlib import Path

import pytest

from sources.highlevel.webhooks.events import parse_event
from sources.highlevel.webhooks.inbox import Inbox
from sources.highlevel.webhooks.processor import FIRST_SYNC_RESOURCES, Processor

from .conftest import example

LOCATION = "ve9EPM428h8vShlRW1KT"




def test_note_and_task_events(inbox: Inbox) -> None:
    for webhook_id, name in enumerate(("NoteCreate.json", "NoteUpdate.json", "NoteDelete.json", "TaskCreate.json",
                                       "TaskComplete.json", "TaskDelete.json")):
        assert inbox.accept(parse_event(example(name, webhookId=str(webhook_id))))
    assert Processor(inbox, clock=lambda: 1.0).process_pending() == 6
    # create/update: the note's contact is read again (once, however many events named it)
    assert [(c.resource, c.id) for c in inbox.pending_changes(LOCATION)] == [("notes", "CWBf1PR9LvvBkcYqiXlc")]
    assert {d.key for d in inbox.pending_deletions(LOCATION)} == {
        ("notes", "otg8dTQqGLh3Q6iQI55w", LOCATION), ("tasks", "UlRWGLSXh0ji5qbiGu4i", LOCATION)}
    marks = {(row[0], row[1]) for row in inbox._conn.execute("SELECT location_id, resource FROM dirty")}
    assert marks == {(LOCATION, "notes"), (LOCATION, "tasks")}


def test_a_new_location_first_sync_leaves_opt_in_notes_out() -> None:
    assert "tasks" in FIRST_SYNC_RESOURCES and "notes" not in FIRST_SYNC_RESOURCES


def test_note_changes_leave_the_inbox_when_notes_are_off(inbox: Inbox, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from highlevel_sync.sync import SyncRequest
    from highlevel_sync.webhook_runs import sync_location

    for webhook_id, name in enumerate(("NoteCreate.json", "NoteUpdate.json", "TaskCreate.json")):
        assert inbox.accept(parse_event(example(name, webhookId=str(webhook_id))))
    Processor(inbox, clock=lambda: 1.0).process_pending()
    assert [c.resource for c in inbox.pending_changes(LOCATION)] == ["notes"]
    monkeypatch.setenv("SOURCES__HIGHLEVEL__SYNC_NOTES", "false")
    # only notes were dirty: no run starts (no credentials are configured, a run would fail), and
    # the change is no longer owed, so it does not wait in the inbox forever
    assert sync_location(LOCATION, {"notes"}, SyncRequest(inbox_path=str(tmp_path / "inbox.sqlite"))) is None
    assert inbox.pending_changes(LOCATION) == []
