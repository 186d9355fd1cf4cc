"""Turn bursts of dirty marks into few sync runs: per location, wait for quiet, but not forever.

One HighLevel UI action emits several webhooks (an opportunity create sends Create + Update, issue
#27) and bulk edits send hundreds, so syncing per event would burn the API quota. A location runs
once its marks have been quiet for `quiet_s`, or `max_delay_s` after its first mark even if the
burst goes on. A location never has two runs at once: marks arriving during a run wait for it and
then cause one more run. The claims live in the inbox, so a crash mid-run re-runs the location after
restart.

A location whose runs keep failing (token revoked, destination down) backs off exponentially:
retried after `quiet_s`, then twice that, four times... up to `max_backoff_s`, so a persistent
failure costs a few runs an hour instead of one per quiet period. One success resets it. The
back-off is in memory: a restart retries at once, which is what an operator who fixed the cause wants.

What a run *does* is a pluggable trigger: `InProcessTrigger` calls a function in this process (the
project's `run_sync`), `AirflowTrigger` (`airflow.py`) asks Airflow's REST API for a DAG run.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from ..errors import HighLevelError
from .inbox import Inbox

logger = logging.getLogger("highlevel.webhooks.debounce")


class Trigger(Protocol):
    def __call__(self, location_id: str, resources: set[str]) -> Any: ...


class TriggerError(HighLevelError):
    """A trigger could not start its run; the location's marks are kept and retried after `quiet_s`."""


class InProcessTrigger:
    """Runs `run(location_id, resources)` here, e.g. a function calling `run_sync` for that location."""

    def __init__(self, run: Callable[[str, set[str]], Any]) -> None:
        self.run = run

    def __call__(self, location_id: str, resources: set[str]) -> Any:
        return self.run(location_id, set(resources))


class Debouncer:
    """Background loop firing `trigger(location_id, resources)` per the rules in the module docstring.

    `clock` must be the one the processor stamps marks with. `max_concurrent` bounds runs across
    locations; keep 1 for in-process syncs (they share one dlt pipeline), raise it for Airflow.
    """

    def __init__(
        self,
        inbox: Inbox,
        trigger: Trigger,
        quiet_s: float = 30.0,
        max_delay_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        *,
        poll_s: float | None = None,
        max_concurrent: int = 1,
        max_backoff_s: float = 3600.0,
    ) -> None:
        if quiet_s < 0 or max_delay_s < quiet_s:
            raise ValueError("need 0 <= quiet_s <= max_delay_s")
        self.inbox = inbox
        self.trigger = trigger
        self.quiet_s = quiet_s
        self.max_delay_s = max_delay_s
        self.clock = clock
        self.poll_s = poll_s if poll_s is not None else max(0.01, min(1.0, quiet_s / 5))
        self.max_concurrent = max(1, max_concurrent)
        self.max_backoff_s = max_backoff_s
        self._failed: dict[str, int] = {}  # location -> failed runs in a row
        self._retry_at: dict[str, float] = {}  # location -> not before this (self.clock)
        self.runs = 0
        self.failures = 0
        self.last_error: str | None = None
        self._running: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> set[str]:
        with self._lock:
            return set(self._running)

    def start(self) -> Debouncer:
        released = self.inbox.release_claims(self.clock())
        if released:
            logger.warning("re-queued %d dirty mark(s) whose runs were cut short by a previous stop or crash", released)
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="highlevel-webhook-debouncer", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop polling and wait up to `timeout` for runs in flight (unfinished ones re-run after restart)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.wait_idle(timeout)

    def wait_idle(self, timeout: float) -> bool:
        """Block until no run is in flight; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._running, timeout)

    def poll_once(self) -> dict[str, set[str]]:
        """Claim due locations (as many as free run slots) and start their runs; return what was started."""
        now = self.clock()
        with self._lock:
            free = self.max_concurrent - len(self._running)
            waiting = {location for location, at in self._retry_at.items() if at > now}
        if free <= 0:
            return {}
        due = self.inbox.take_dirty(self.quiet_s, self.max_delay_s, now, limit=free, exclude=waiting)
        for location_id, resources in due.items():
            thread = threading.Thread(target=self._run, args=(location_id, resources),
                                      name=f"highlevel-webhook-run-{location_id}", daemon=True)
            with self._lock:
                self._running[location_id] = thread
            thread.start()
        return due

    def _run(self, location_id: str, resources: set[str]) -> None:
        ok = False
        try:
            logger.info("webhook-triggered run for location %s: %s", location_id, ", ".join(sorted(resources)))
            self.trigger(location_id, resources)
            ok = True
            with self._lock:
                self._failed.pop(location_id, None)
                self._retry_at.pop(location_id, None)
        except Exception as exc:
            with self._lock:
                self.failures += 1
                self.last_error = f"trigger failed for location {location_id}: {exc}"
                failed = self._failed[location_id] = self._failed.get(location_id, 0) + 1
                delay = self.backoff_s(failed)
                self._retry_at[location_id] = self.clock() + delay
            logger.exception("trigger failed for location %s (%d in a row); its marks are kept and retried in %.0f s",
                             location_id, failed, delay)
        finally:
            try:
                self.inbox.finish_dirty(location_id, ok, self.clock())
            except Exception:
                logger.exception("could not release the dirty marks of location %s", location_id)
            with self._idle:
                self.runs += 1
                self._running.pop(location_id, None)
                self._idle.notify_all()
            self._wake.set()  # a slot is free: look for the next due location now

    def backoff_s(self, failed: int) -> float:
        """The wait before retrying a location after `failed` failed runs in a row."""
        return float(min(max(self.quiet_s, 1.0) * 2 ** min(failed - 1, 30), self.max_backoff_s))

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.poll_s)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self.poll_once()
            except Exception as exc:  # the inbox is unavailable: keep polling, it may come back
                self.last_error = f"debounce poll failed: {type(exc).__name__}: {exc}"
                logger.exception("debounce poll failed")
                self._stop.wait(max(self.poll_s, 1.0))
