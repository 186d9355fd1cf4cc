"""The processor: tombstones, dirty marks and lifecycle hooks; idempotent; hooks retried, then given up."""

from __future__ import annotations

import time
from typing import Any

from sources.highlevel.webhooks.events import parse_event
from sources.highlevel.webhooks.inbox import Inbox
from sources.highlevel.webhooks.processor import Processor

from .conftest import example


def accept(inbox: Inbox, payload: dict[str, Any]) -> None:
    assert inbox.accept(parse_event(payload))



def dirty(inbox: Inbox) -> set[tuple[str, str]]:
    return {(row[0], row[1]) for row in inbox._conn.execute("SELECT location_id, resource FROM dirty")}


def test_effects_of_each_kind(inbox: Inbox) -> None:
    installs: list[tuple[str | None, str | None]] = []
    uninstalls: list[tuple[str | None, str | None]] = []
    processor = Processor(inbox, on_install=lambda loc, co: installs.append((loc, co)),
                          on_uninstall=lambda loc, co: uninstalls.append((loc, co)), clock=lambda: 42.0)
    accept(inbox, example("ContactDelete.json", webhookId="1", timestamp="2025-03-01T10:00:00Z"))
    accept(inbox, example("OpportunityStageUpdate.json", webhookId="2"))
    accept(inbox, example("InboundMessage.json", webhookId="3"))
    accept(inbox, example("NoteDelete.json", webhookId="4"))
    accept(inbox, example("AppInstall.json", webhookId="5"))
    accept(inbox, example("AppUninstall.agency.json", webhookId="6"))
    accept(inbox, example("InvoiceCreate.json", webhookId="7"))
    accept(inbox, example("AppointmentCreate.json", webhookId="8", type="AppointmentDelete"))
    assert processor.process_pending() == 8
    assert inbox.pending_events() == []
    deletions = {d.key: d for d in inbox.pending_deletions()}
    assert set(deletions) == {("contacts", "nmFmQEsNgz6AVpgLVUJ0", "ve9EPM428h8vShlRW1KT"),
                              ("appointments", "0007BWpSzSwfiuSl0tR2", "0007BWpSzSwfiuSl0tR2"),
                              ("notes", "otg8dTQqGLh3Q6iQI55w", "ve9EPM428h8vShlRW1KT")}
    assert {d.detected_by for d in deletions.values()} == {"webhook"}
    # deleted_at: the delivery's timestamp when it has one, else when it was received
    contact_key = ("contacts", "nmFmQEsNgz6AVpgLVUJ0", "ve9EPM428h8vShlRW1KT")
    appointment_key = ("appointments", "0007BWpSzSwfiuSl0tR2", "0007BWpSzSwfiuSl0tR2")
    assert deletions[contact_key].deleted_at == "2025-03-01T10:00:00.000000Z"
    received = inbox._conn.execute("SELECT received_at FROM events WHERE webhook_id = '8'").fetchone()[0]
    assert deletions[appointment_key].deleted_at == received
    assert dirty(inbox) == {
        ("ve9EPM428h8vShlRW1KT", "contacts"), ("ve9EPM428h8vShlRW1KT", "opportunities"),
        ("ve9EPM428h8vShlRW1KT", "notes"), ("l1C08ntBrFjLS0elLIYU", "messages"),
        ("l1C08ntBrFjLS0elLIYU", "conversations"), ("0007BWpSzSwfiuSl0tR2", "appointments"),
        ("6578278e879ad2646715ba9c", "invoices"),  # the example's altId (altType "location")
    }
    assert installs == [("otg8dTQqGLh3Q6iQI55w", "otg8dTQqGLh3Q6iQI55w")]
    assert uninstalls == [(None, "otg8dTQqGLh3Q6iQI55w")]


def test_reprocessing_is_harmless(inbox: Inbox) -> None:
    accept(inbox, example("ContactDelete.json", webhookId="1"))
    processor = Processor(inbox, clock=lambda: 1.0)
    processor.process_pending()
    before = (inbox.pending_deletions(), dirty(inbox))
    # A crash after the effects but before mark_processed: the same event comes round again.
    inbox._conn.execute("UPDATE events SET processed_at = NULL")
    assert processor.process_pending() == 1
    assert (inbox.pending_deletions(), dirty(inbox)) == before


def test_envelope_events_are_processed_like_flat_ones(inbox: Inbox) -> None:
    accept(inbox, {"type": "OpportunityDelete", "webhookId": "e1", "timestamp": "2025-01-01T00:00:00Z",
                   "data": {"id": "o1", "locationId": "L1"}})
    Processor(inbox).process_pending()
    assert [d.key for d in inbox.pending_deletions()] == [("opportunities", "o1", "L1")]


def test_failing_hook_is_retried_then_given_up(inbox: Inbox) -> None:
    calls: list[str | None] = []

    def broken(location_id: str | None, company_id: str | None) -> None:
        calls.append(location_id)
        raise RuntimeError("token store unavailable")

    processor = Processor(inbox, on_install=broken, max_hook_attempts=3)
    accept(inbox, example("AppInstall.json", webhookId="i1"))
    accept(inbox, example("ContactUpdate.json", webhookId="c1"))
    assert processor.process_pending() == 1  # the contact; the install waits for the next pass
    assert [e.webhook_id for e in inbox.pending_events()] == ["i1"]
    assert "install hook failed" in (processor.last_error or "")
    processor.process_pending()
    processor.process_pending()
    assert len(calls) == 3
    processor.process_pending()  # attempts exhausted: logged and marked processed
    assert inbox.pending_events() == [] and len(calls) == 3


def test_background_thread_processes_on_wake(inbox: Inbox) -> None:
    processor = Processor(inbox, poll_s=30.0).start()
    try:
        accept(inbox, example("ContactUpdate.json", webhookId="c1"))
        processor.wake()
        deadline = time.monotonic() + 5
        while inbox.pending_events() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert inbox.pending_events() == []
    finally:
        processor.stop()
    assert processor._thread is None
