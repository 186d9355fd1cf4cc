"""The debouncer: quiet period, max delay, one run per location at a time, re-run after marks during a run.
(The Airflow trigger: test_airflow_trigger.py.)"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sources.highlevel.webhooks.debounce import Debouncer, InProcessTrigger
from sources.highlevel.webhooks.inbox import Inbox


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    """A trigger that records calls; optionally blocks until released, or fails."""

    def __init__(self, block: bool = False, fail: int = 0) -> None:
        self.calls: list[tuple[str, set[str]]] = []
        self.release = threading.Event()
        self.entered = threading.Event()
        if not block:
            self.release.set()
        self.fail = fail

    def __call__(self, location_id: str, resources: set[str]) -> None:
        self.calls.append((location_id, resources))
        self.entered.set()
        assert self.release.wait(10)
        if self.fail:
            self.fail -= 1
            raise RuntimeError("sync failed")


@pytest.fixture
def inbox(tmp_path: Path) -> Iterator[Inbox]:
    box = Inbox(tmp_path / "inbox.sqlite")
    yield box
    box.close()


def poll(debouncer: Debouncer) -> dict[str, set[str]]:
    started = debouncer.poll_once()
    assert debouncer.wait_idle(5)
    return started


def test_fires_after_the_quiet_period(inbox: Inbox) -> None:
    clock, trigger = FakeClock(), Recorder()
    debouncer = Debouncer(inbox, trigger, quiet_s=30, max_delay_s=300, clock=clock)
    inbox.mark_dirty("L1", "contacts", clock.now)
    clock.now += 20
    inbox.mark_dirty("L1", "opportunities", clock.now)
    clock.now += 29
    assert poll(debouncer) == {}
    clock.now += 1
    assert poll(debouncer) == {"L1": {"contacts", "opportunities"}}
    assert trigger.calls == [("L1", {"contacts", "opportunities"})]
    clock.now += 1000
    assert poll(debouncer) == {}  # marks dropped after the successful run
    assert debouncer.runs == 1


def test_fires_at_max_delay_during_an_endless_burst(inbox: Inbox) -> None:
    clock, trigger = FakeClock(), Recorder()
    debouncer = Debouncer(inbox, trigger, quiet_s=30, max_delay_s=300, clock=clock)
    start = clock.now
    fired_at: list[float] = []
    while clock.now < start + 700:
        inbox.mark_dirty("L1", "contacts", clock.now)
        if poll(debouncer):
            fired_at.append(clock.now - start)
        clock.now += 10
    assert fired_at == [300, 610]  # the second window starts with the first mark after the claim (310)


def test_locations_are_independent(inbox: Inbox) -> None:
    clock, trigger = FakeClock(), Recorder()
    debouncer = Debouncer(inbox, trigger, quiet_s=30, max_delay_s=300, clock=clock, max_concurrent=4)
    inbox.mark_dirty("L1", "contacts", clock.now)
    clock.now += 20
    inbox.mark_dirty("L2", "users", clock.now)
    clock.now += 10
    assert poll(debouncer) == {"L1": {"contacts"}}
    clock.now += 20
    assert poll(debouncer) == {"L2": {"users"}}


def test_no_concurrent_runs_per_location_and_a_rerun_for_marks_made_meanwhile(inbox: Inbox) -> None:
    clock, trigger = FakeClock(), Recorder(block=True)
    debouncer = Debouncer(inbox, trigger, quiet_s=1, max_delay_s=10, clock=clock, max_concurrent=4)
    inbox.mark_dirty("L1", "contacts", clock.now)
    clock.now += 2
    assert debouncer.poll_once() == {"L1": {"contacts"}}
    assert trigger.entered.wait(5)
    inbox.mark_dirty("L1", "users", clock.now)  # while L1's run is in flight
    clock.now += 100
    assert debouncer.poll_once() == {}
    assert debouncer.running == {"L1"}
    trigger.release.set()
    assert debouncer.wait_idle(5)
    assert poll(debouncer) == {"L1": {"users"}}
    assert trigger.calls == [("L1", {"contacts"}), ("L1", {"users"})]


def test_max_concurrent_bounds_runs_across_locations(inbox: Inbox) -> None:
    clock, trigger = FakeClock(), Recorder(block=True)
    debouncer = Debouncer(inbox, trigger, quiet_s=0, max_delay_s=10, clock=clock, max_concurrent=1)
    for loc in ("L1", "L2"):
        inbox.mark_dirty(loc, "contacts", clock.now)
    clock.now += 1
    assert debouncer.poll_once() == {"L1": {"contacts"}}
    assert debouncer.poll_once() == {}  # no free slot; L2 stays unclaimed (not queued with a stale claim)
    trigger.release.set()
    assert debouncer.wait_idle(5)
    assert poll(debouncer) == {"L2": {"contacts"}}


def test_a_failed_run_is_retried_after_the_quiet_period(inbox: Inbox) -> None:
    clock, trigger = FakeClock(), Recorder(fail=1)
    debouncer = Debouncer(inbox, trigger, quiet_s=5, max_delay_s=60, clock=clock)
    inbox.mark_dirty("L1", "contacts", clock.now)
    clock.now += 5
    assert poll(debouncer) == {"L1": {"contacts"}}
    assert debouncer.failures == 1 and "sync failed" in (debouncer.last_error or "")
    clock.now += 4
    assert poll(debouncer) == {}
    clock.now += 1
    assert poll(debouncer) == {"L1": {"contacts"}}
    assert debouncer.failures == 1 and debouncer.runs == 2


def test_background_loop_start_stop_and_crash_recovery(inbox: Inbox) -> None:
    inbox.mark_dirty("L1", "contacts", time.monotonic())
    assert inbox.take_dirty(0, 0, time.monotonic()) == {"L1": {"contacts"}}  # a claim a crashed run left behind
    calls: list[tuple[str, set[str]]] = []
    debouncer = Debouncer(inbox, InProcessTrigger(lambda loc, res: calls.append((loc, res))), quiet_s=0.05,
                          max_delay_s=1.0).start()
    try:
        deadline = time.monotonic() + 5
        while not calls and time.monotonic() < deadline:
            time.sleep(0.01)
        assert calls == [("L1", {"contacts"})]
    finally:
        started = time.monotonic()
        debouncer.stop(timeout=5)
        assert time.monotonic() - started < 2
    assert debouncer._thread is None
