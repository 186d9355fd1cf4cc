"""The inbox: durable (WAL + fsync), deduplicated, and the dirty-mark claims the debouncer relies on."""

from __future__ import annotations

import sqlite3
import stat
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sources.highlevel.webhooks.events import WebhookEvent, parse_event
from sources.highlevel.webhooks.inbox import Inbox


@pytest.fixture
def inbox(tmp_path: Path) -> Iterator[Inbox]:
    box = Inbox(tmp_path / "sub" / "inbox.sqlite")  # a missing parent directory is created
    yield box
    box.close()


def event(webhook_id: str | None = "w1", type_: str = "ContactUpdate", location: str = "L1",
          record: str = "c1") -> WebhookEvent:
    payload = {"type": type_, "locationId": location, "id": record}
    if webhook_id is not None:
        payload["webhookId"] = webhook_id
    return parse_event(payload)


def test_file_is_private_wal_and_fully_synchronous(inbox: Inbox) -> None:
    assert stat.S_IMODE(inbox.path.stat().st_mode) == 0o600
    assert inbox._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert inbox._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_accept_commits_and_dedupes_on_webhook_id(inbox: Inbox) -> None:
    assert inbox.accept(event("w1")) is True
    assert inbox.accept(event("w1", record="other")) is False  # same webhookId: acknowledged, not stored
    assert inbox.accept(event("w2")) is True
    # Visible to another connection at once: committed, not buffered.
    other = sqlite3.connect(inbox.path)
    assert other.execute("SELECT webhook_id FROM events ORDER BY id").fetchall() == [("w1",), ("w2",)]
    other.close()


def test_without_webhook_id_dedupes_on_the_raw_body_hash(inbox: Inbox) -> None:
    body = b'{"type":"ContactUpdate","locationId":"L1","id":"c1"}'
    assert inbox.accept(event(None), body) is True
    assert inbox.accept(event(None), body) is False
    assert inbox.accept(event(None), body + b" ") is True  # different bytes, different delivery
    (key,) = inbox._conn.execute("SELECT webhook_id FROM events LIMIT 1").fetchone()
    assert key.startswith("sha256:")


def test_pending_and_mark_processed(inbox: Inbox) -> None:
    for i in range(5):
        inbox.accept(event(f"w{i}"))
    pending = inbox.pending_events()
    assert [e.webhook_id for e in pending] == [f"w{i}" for i in range(5)]
    assert pending[0].payload == {"type": "ContactUpdate", "locationId": "L1", "id": "c1", "webhookId": "w0"}
    assert (pending[0].resource, pending[0].action, pending[0].location_id) == ("contacts", "update", "L1")
    assert inbox.mark_processed([pending[0].id, pending[1].id]) == 2
    assert inbox.mark_processed([pending[0].id]) == 0  # idempotent
    assert [e.webhook_id for e in inbox.pending_events(limit=2)] == ["w2", "w3"]
    assert inbox.counts()["events_pending"] == 3


def test_concurrent_accepts_from_many_threads(inbox: Inbox) -> None:
    results: list[bool] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        for i in range(50):
            ok = inbox.accept(event(f"w{i % 120}-{n % 2}"))
            with lock:
                results.append(ok)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert inbox.counts()["events"] == sum(results) == 100  # 50 ids x 2 suffixes, each stored once


def test_deletions_first_detection_wins_and_apply(inbox: Inbox) -> None:
    at = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert inbox.record_deletion("contacts", "c1", "L1", at, "webhook") is True
    assert inbox.record_deletion("contacts", "c1", "L1", at + timedelta(hours=1), "sweep") is False
    assert inbox.record_deletion("contacts", "c1", "L2", at, "sweep") is True
    assert inbox.record_deletion("opportunities", "o1", "L1", "2025-01-01T00:00:00.000000Z", "webhook") is True
    with pytest.raises(ValueError):
        inbox.record_deletion("contacts", "c9", "L1", at, "guess")
    assert [d.key for d in inbox.pending_deletions()] == [
        ("opportunities", "o1", "L1"), ("contacts", "c1", "L1"), ("contacts", "c1", "L2")]
    only = inbox.pending_deletions(location_id="L1", resource="contacts")
    assert [(d.key, d.detected_by, d.deleted_at) for d in only] == [
        (("contacts", "c1", "L1"), "webhook", "2025-01-02T03:04:05.000000Z")]
    assert inbox.mark_deletions_applied([("contacts", "c1", "L1")]) == 1
    assert inbox.mark_deletions_applied([("contacts", "c1", "L1")]) == 0
    assert inbox.counts()["deletions_pending"] == 2


def test_take_dirty_quiet_period_and_max_delay(inbox: Inbox) -> None:
    inbox.mark_dirty("L1", "contacts", at=100.0)
    inbox.mark_dirty("L1", "contacts", at=120.0)
    inbox.mark_dirty("L1", "opportunities", at=125.0)
    assert inbox.take_dirty(quiet_s=30, max_delay_s=300, now=150.0) == {}  # last mark 25 s ago
    assert inbox.take_dirty(quiet_s=30, max_delay_s=300, now=155.0) == {"L1": {"contacts", "opportunities"}}
    # A location marked continuously fires at max_delay after its first mark.
    for t in range(200, 520, 10):
        inbox.mark_dirty("L2", "users", at=float(t))
        due = inbox.take_dirty(quiet_s=30, max_delay_s=300, now=float(t))
        if due:
            assert t == 500 and due == {"L2": {"users"}}
    assert inbox.counts()["dirty_locations"] == 2  # both claimed, not yet finished


def test_claims_block_a_second_run_and_marks_during_a_run_wait(inbox: Inbox) -> None:
    inbox.mark_dirty("L1", "contacts", at=0.0)
    assert inbox.take_dirty(1, 10, now=5.0) == {"L1": {"contacts"}}
    inbox.mark_dirty("L1", "contacts", at=6.0)  # arrives while L1 runs
    inbox.mark_dirty("L1", "users", at=6.0)
    assert inbox.take_dirty(1, 10, now=100.0) == {}  # L1 still claimed
    inbox.finish_dirty("L1", ok=True, now=101.0)
    assert inbox.take_dirty(1, 10, now=101.0) == {"L1": {"contacts", "users"}}  # the re-run
    inbox.finish_dirty("L1", ok=True, now=102.0)
    assert inbox.take_dirty(0, 0, now=1e9) == {}


def test_failed_run_puts_marks_back_for_after_the_quiet_period(inbox: Inbox) -> None:
    inbox.mark_dirty("L1", "contacts", at=0.0)
    assert inbox.take_dirty(1, 10, now=5.0) == {"L1": {"contacts"}}
    inbox.finish_dirty("L1", ok=False, now=50.0)
    assert inbox.take_dirty(1, 10, now=50.5) == {}
    assert inbox.take_dirty(1, 10, now=51.0) == {"L1": {"contacts"}}


def test_claims_left_by_a_crash_are_released(tmp_path: Path) -> None:
    first = Inbox(tmp_path / "inbox.sqlite")
    first.mark_dirty("L1", "contacts", at=0.0)
    assert first.take_dirty(1, 10, now=5.0) == {"L1": {"contacts"}}
    first.close()  # "crash" mid-run: the claim is still in the file
    second = Inbox(tmp_path / "inbox.sqlite")
    assert second.take_dirty(1, 10, now=100.0) == {}
    assert second.release_claims(now=100.0) == 1
    assert second.take_dirty(1, 10, now=101.0) == {"L1": {"contacts"}}
    second.close()


def test_marks_from_a_reset_clock_are_restamped_at_start(inbox: Inbox) -> None:
    inbox.mark_dirty("L1", "contacts", at=1_000_000.0)  # monotonic time of the last boot
    inbox.mark_dirty("L2", "contacts", at=1.0)
    assert inbox.take_dirty(30, 300, now=5.0) == {}
    inbox.release_claims(now=5.0)
    assert inbox.take_dirty(30, 300, now=34.0) == {"L2": {"contacts"}}  # old marks keep their age
    assert inbox.take_dirty(30, 300, now=35.0) == {"L1": {"contacts"}}  # future marks now count from 5.0


def test_a_mark_stamped_just_after_now_is_not_due_yet(inbox: Inbox) -> None:
    """The processor may stamp a mark a moment after the debouncer read its clock: that is not a reset."""
    inbox.mark_dirty("L1", "contacts", at=100.001)
    assert inbox.take_dirty(0.5, 2, now=100.0) == {}


def test_take_dirty_limit_takes_oldest_first(inbox: Inbox) -> None:
    inbox.mark_dirty("L2", "contacts", at=2.0)
    inbox.mark_dirty("L1", "contacts", at=1.0)
    inbox.mark_dirty("L3", "contacts", at=3.0)
    assert inbox.take_dirty(0, 10, now=10.0, limit=2) == {"L1": {"contacts"}, "L2": {"contacts"}}


def test_prune_keeps_pending_events(inbox: Inbox) -> None:
    inbox.accept(event("old"), received_at=datetime(2020, 1, 1, tzinfo=UTC))
    inbox.accept(event("old-pending"), received_at=datetime(2020, 1, 1, tzinfo=UTC))
    inbox.accept(event("new"))
    inbox.mark_processed([e.id for e in inbox.pending_events() if e.webhook_id != "old-pending"])
    assert inbox.prune(before=datetime(2021, 1, 1, tzinfo=UTC)) == 1
    assert inbox.counts()["events"] == 2
