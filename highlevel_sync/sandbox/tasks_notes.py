"""Tasks and notes of the sandbox world: seed and mutate.

Shapes follow the specs: a task as `TaskSchema` (contacts.json; the location-wide search's own
response schema types its items as arrays, a doc bug) plus the `dateAdded` the Task* webhooks
carry; a note as `GetNoteSchema`. Neither has a `dateUpdated`, which is why the source reads open
tasks every run (the search's `completed` filter) and notes per changed contact. Seeded from their
own random stream, so adding them changed none of the other seeded data.
"""

from __future__ import annotations

import random

from . import data
from .index import Record
from .world import Location, World

TASK_TITLES = ("Call back", "Send quote", "Follow up", "Confirm appointment", "Collect documents")
NOTE_COLORS = ("#FFAA00", "#00AAFF", "#AAFF00", "")


def seed_tasks_notes(world: World, loc: Location, index: int) -> None:
    """About one task per four contacts, and 0-3 notes per contact (a third have none)."""
    rng = random.Random(f"{world.config.seed}/tasks-notes/{index}")
    contact_ids = sorted(loc.contacts.truth)
    user_ids = [u["id"] for u in loc.users]
    tasks: dict[str, Record] = {}
    for _ in range(max(1, len(contact_ids) // 4)):
        task = make_task(rng, data.pick(rng, contact_ids) if contact_ids else data.make_id(rng), user_ids)
        tasks[task["id"]] = task
    notes: dict[str, Record] = {}
    by_contact: dict[str, set[str]] = {}  # contact id -> its note ids: a notes read is one lookup
    for contact_id in contact_ids:
        for _ in range(data.below(rng, 4)):
            note = make_note(rng, contact_id, user_ids)
            notes[note["id"]] = note
            by_contact.setdefault(contact_id, set()).add(note["id"])
    loc.extra.update(tasks=tasks, notes=notes, notes_by_contact=by_contact)


def make_task(rng: random.Random, contact_id: str, user_ids: list[str], added_ms: int | None = None) -> Record:
    added = added_ms if added_ms is not None else data.ANCHOR_MS - data.below(rng, data.HISTORY_MS)
    return {"id": data.make_id(rng), "title": data.pick(rng, TASK_TITLES),
            "body": f"Task details {1 + data.below(rng, 10**6)}",
            "assignedTo": data.pick(rng, user_ids) if user_ids else None,
            "dueDate": data.iso_ms(added + (1 + data.below(rng, 30)) * data.DAY_MS),
            "completed": rng.random() < 0.4, "contactId": contact_id, "dateAdded": data.iso_ms(added)}


def make_note(rng: random.Random, contact_id: str, user_ids: list[str], added_ms: int | None = None) -> Record:
    added = added_ms if added_ms is not None else data.ANCHOR_MS - data.below(rng, data.HISTORY_MS)
    return {"id": data.make_id(rng), "body": f"Spoke with the patient, ref {1 + data.below(rng, 10**6)}",
            "userId": data.pick(rng, user_ids) if user_ids else None, "dateAdded": data.iso_ms(added),
            "contactId": contact_id, "title": data.pick(rng, ("Call summary", "Visit", "Billing", "")),
            "color": data.pick(rng, NOTE_COLORS), "pinned": rng.random() < 0.1}


def notes_of(loc: Location, contact_id: str) -> list[Record]:
    """A contact's notes, newest first (the order the UI shows them)."""
    notes = loc.extra["notes"]
    found = [notes[note_id] for note_id in loc.extra["notes_by_contact"].get(contact_id, ())]
    return sorted(found, key=lambda n: (n["dateAdded"], n["id"]), reverse=True)


# -- mutations (stamped now; tasks and notes are read directly, with no index lag) ------------

def add_note(world: World, location_id: str, contact_id: str) -> Record:
    with world.lock:
        loc = world.locations[location_id]
        note = make_note(world.rng, contact_id, [u["id"] for u in loc.users], data.now_ms())
        loc.extra["notes"][note["id"]] = note
        loc.extra["notes_by_contact"].setdefault(contact_id, set()).add(note["id"])
        return dict(note)


def edit_note(world: World, location_id: str, note_id: str, body: str) -> Record:
    with world.lock:
        notes = world.locations[location_id].extra["notes"]
        notes[note_id] = {**notes[note_id], "body": body}
        return dict(notes[note_id])


def delete_note(world: World, location_id: str, note_id: str) -> Record:
    """Remove a note; returns it as it was (a NoteDelete webhook carries it)."""
    with world.lock:
        loc = world.locations[location_id]
        note = loc.extra["notes"].pop(note_id)
        loc.extra["notes_by_contact"][note["contactId"]].discard(note_id)
        return dict(note)


def add_task(world: World, location_id: str, contact_id: str) -> Record:
    with world.lock:
        loc = world.locations[location_id]
        task = make_task(world.rng, contact_id, [u["id"] for u in loc.users], data.now_ms())
        loc.extra["tasks"][task["id"]] = task
        return dict(task)


def complete_task(world: World, location_id: str, task_id: str) -> Record:
    with world.lock:
        tasks = world.locations[location_id].extra["tasks"]
        tasks[task_id] = {**tasks[task_id], "completed": True}
        return dict(tasks[task_id])


def delete_task(world: World, location_id: str, task_id: str) -> Record:
    with world.lock:
        return dict(world.locations[location_id].extra["tasks"].pop(task_id))
