"""Note and task events: a note change queues its contact for a notes read; deletes leave tombstones."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sources.highlevel.webhooks.events import parse_event
from sources.highlevel.webhooks.inbox import Inbox
from sources.highlevel.webhooks.processor import FIRST_SYNC_RESOURCES, Processor

from .conftest import EXAMPLES

LOCATION = "ve9EPM428h8vShlRW1KT"


@pytest.fixture
def inbox(tmp_path: Path) -> Iterator[Inbox]:
    box = Inbox(tmp_path / "inbox.sqlite")
    yield box
    box.close()


def example(name: str, **extra: Any) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((EXAMPLES / name).read_text())
    return {**payload, **extra}


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
