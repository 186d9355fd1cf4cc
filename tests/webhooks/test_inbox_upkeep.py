"""Inbox upkeep: scheduled pruning (webhook_retention_days), exponential back-off of a failing
trigger, and the changes a sync must read by id (appointments)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sources.highlevel.errors import ConfigError
from sources.highlevel.webhooks import Receiver, WebhookConfig
from sources.highlevel.webhooks.debounce import Debouncer
from sources.highlevel.webhooks.events import parse_event
from sources.highlevel.webhooks.inbox import Change, Inbox
from sources.highlevel.webhooks.processor import Processor

from .test_debounce import FakeClock, Recorder, poll

T0 = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture
def inbox(tmp_path: Path) -> Iterator[Inbox]:
    box = Inbox(tmp_path / "inbox.sqlite")
    yield box
    box.close()


def delivery(webhook_id: str, event_type: str = "ContactUpdate", **fields: Any) -> Any:
    return parse_event({"type": event_type, "webhookId": webhook_id, "locationId": "L1", "id": f"r-{webhook_id}",
                        **fields})


def table_size(inbox: Inbox, table: str) -> int:
    return int(inbox._conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


# -- retention ------------------------------------------------------------------------------------

def fill(inbox: Inbox) -> None:
    """Old and new rows, done and pending, in all three tables."""
    for webhook_id, received in (("old-done", T0 - timedelta(days=40)), ("old-pending", T0 - timedelta(days=40)),
                                 ("new-done", T0 - timedelta(days=1))):
        inbox.accept(delivery(webhook_id), received_at=received)
    done = [e.id for e in inbox.pending_events() if e.webhook_id != "old-pending"]
    inbox.mark_processed(done, at=T0 - timedelta(days=1))
    inbox.record_deletion("contacts", "gone-old", "L1", T0 - timedelta(days=40), "webhook")
    inbox.record_deletion("contacts", "gone-new", "L1", T0 - timedelta(days=2), "webhook")
    inbox.record_deletion("contacts", "gone-pending", "L1", T0 - timedelta(days=40), "webhook")
    inbox.mark_deletions_applied([("contacts", "gone-old", "L1")], at=T0 - timedelta(days=39))
    inbox.mark_deletions_applied([("contacts", "gone-new", "L1")], at=T0 - timedelta(days=1))
    inbox.record_change("appointments", "a-old", "L1", T0 - timedelta(days=40))
    inbox.record_change("appointments", "a-pending", "L1", T0 - timedelta(days=40))
    inbox.mark_changes_applied([c for c in inbox.pending_changes() if c.id == "a-old"], at=T0 - timedelta(days=39))


def test_prune_deletes_only_done_rows_older_than_the_cutoff(inbox: Inbox) -> None:
    fill(inbox)
    assert inbox.prune(before=T0 - timedelta(days=30)) == 3  # old-done event, gone-old, a-old
    assert {e.webhook_id for e in inbox.pending_events()} == {"old-pending"}
    assert table_size(inbox, "events") == 2  # old-pending + new-done
    assert [d.id for d in inbox.pending_deletions()] == ["gone-pending"]
    assert table_size(inbox, "deletions") == 2  # gone-new (applied recently) stays too
    assert [c.id for c in inbox.pending_changes()] == ["a-pending"]
    assert table_size(inbox, "changes") == 1


def test_the_processor_prunes_on_a_schedule(inbox: Inbox) -> None:
    fill(inbox)
    clock = FakeClock()
    processor = Processor(inbox, clock=clock, retention=timedelta(days=30), prune_every_s=3600,
                          wall_clock=lambda: T0)
    assert processor.prune_if_due() == 3  # at once on the first check
    inbox.accept(delivery("later"), received_at=T0 - timedelta(days=50))
    inbox.mark_processed([e.id for e in inbox.pending_events() if e.webhook_id == "later"])
    clock.now += 3599
    assert processor.prune_if_due() == 0  # not due yet
    clock.now += 1
    assert processor.prune_if_due() == 1
    assert processor.pruned == 4


def test_no_retention_keeps_everything(inbox: Inbox) -> None:
    fill(inbox)
    assert Processor(inbox, retention=None).prune_if_due() == 0
    assert table_size(inbox, "events") == 3


def test_a_running_receiver_prunes_its_inbox(make_config: Callable[..., WebhookConfig]) -> None:
    config = make_config(retention_days=30)
    old = Inbox(config.inbox_path)
    old.accept(delivery("ancient"), received_at=datetime.now(UTC) - timedelta(days=45))
    old.close()
    receiver = Receiver(config).start()  # its processor applies the event, then prunes it
    try:
        deadline = time.monotonic() + 10
        while table_size(receiver.inbox, "events") and time.monotonic() < deadline:
            time.sleep(0.05)
        # processed just now, but received 45 days ago: older than the retention
        assert table_size(receiver.inbox, "events") == 0
    finally:
        receiver.stop(timeout=5)


def test_retention_settings_are_checked() -> None:
    assert WebhookConfig().retention == timedelta(days=30)
    assert WebhookConfig(retention_days=0).retention is None
    with pytest.raises(ConfigError, match="timestamp_tolerance"):
        WebhookConfig(retention_days=0.001, timestamp_tolerance_s=300)
    with pytest.raises(ConfigError, match="retention_days"):
        WebhookConfig(retention_days=-1)


def test_retention_and_backoff_come_from_dlt_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCES__HIGHLEVEL__WEBHOOK_RETENTION_DAYS", "7")
    monkeypatch.setenv("SOURCES__HIGHLEVEL__WEBHOOK_MAX_BACKOFF_S", "600")
    config = WebhookConfig.from_dlt()
    assert config.retention == timedelta(days=7) and config.max_backoff_s == 600


# -- back-off -------------------------------------------------------------------------------------

def test_a_failing_trigger_backs_off_exponentially_and_resets_on_success(inbox: Inbox) -> None:
    clock, trigger = FakeClock(), Recorder(fail=4)
    debouncer = Debouncer(inbox, trigger, quiet_s=5, max_delay_s=60, clock=clock, max_backoff_s=30)
    inbox.mark_dirty("L1", "contacts", clock.now)
    clock.now += 5
    attempts = [clock.now] if poll(debouncer) else []
    waited = []
    for _ in range(80):  # step the clock a second at a time, as the background loop would poll
        clock.now += 1
        if poll(debouncer):
            waited.append(clock.now - attempts[-1])
            attempts.append(clock.now)
    # failures 1..4 wait 5, 10, 20, then the cap (30); the fifth run succeeds and nothing is left
    assert waited == [5, 10, 20, 30]
    assert debouncer.failures == 4 and debouncer.runs == 5
    assert "L1" not in debouncer._retry_at and "L1" not in debouncer._failed
    inbox.mark_dirty("L1", "contacts", clock.now)  # after a success: the normal quiet period again
    clock.now += 5
    assert poll(debouncer) == {"L1": {"contacts"}}


def test_back_off_of_one_location_does_not_hold_up_another(inbox: Inbox) -> None:
    clock = FakeClock()

    def trigger(location_id: str, resources: set[str]) -> None:
        if location_id == "BAD":
            raise RuntimeError("token revoked")

    debouncer = Debouncer(inbox, trigger, quiet_s=5, max_delay_s=60, clock=clock)
    inbox.mark_dirty("BAD", "contacts", clock.now)
    clock.now += 5
    assert poll(debouncer) == {"BAD": {"contacts"}}
    clock.now += 5
    assert poll(debouncer) == {"BAD": {"contacts"}}  # first retry after quiet_s
    inbox.mark_dirty("GOOD", "users", clock.now)
    clock.now += 5  # BAD now waits 10 s, GOOD is due
    assert poll(debouncer) == {"GOOD": {"users"}}
    assert debouncer.backoff_s(1) == 5 and debouncer.backoff_s(3) == 20 and debouncer.backoff_s(40) == 3600


# -- changes read by id ---------------------------------------------------------------------------

def test_a_change_noted_again_during_a_run_stays_pending(inbox: Inbox) -> None:
    inbox.record_change("appointments", "a1", "L1", T0)
    read_by_run = inbox.pending_changes("L1", "appointments")
    inbox.record_change("appointments", "a1", "L1", T0 + timedelta(seconds=5))  # changed again meanwhile
    assert inbox.mark_changes_applied(read_by_run) == 0
    assert [c.changed_at for c in inbox.pending_changes()] == ["2026-03-01T00:00:05.000000Z"]
    assert inbox.mark_changes_applied(inbox.pending_changes()) == 1
    assert inbox.pending_changes() == []
    inbox.record_change("appointments", "a1", "L1", T0 + timedelta(seconds=9))  # and once more later
    assert [c.id for c in inbox.pending_changes("L1")] == ["a1"]
    assert inbox.pending_changes("L2") == []
    assert isinstance(inbox.pending_changes()[0], Change)
