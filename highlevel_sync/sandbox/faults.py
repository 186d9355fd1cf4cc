"""Switchable failures, to prove a client survives what real APIs do on bad days.

Random faults (`set`) are drawn from a seeded rng, so a run with the same requests meets the same
faults. One-shot faults (`fail_next`, `garbage_next`) hit the next n matching API requests
(optionally after letting `after` of them through) before any random fault is drawn. Control routes are never affected.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .config import KEEP, Keep


@dataclass(frozen=True)
class Fault:
    kind: str  # "status" | "garbage" | "slow" | "none"
    status: int = 200
    delay_s: float = 0.0


NO_FAULT = Fault("none")


class Faults:
    def __init__(self, seed: int) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(f"faults/{seed}")
        self.clear()

    def clear(self) -> None:
        """No faults at all: random rates to zero, one-shot queue emptied."""
        with self._lock:
            self.error_rate = 0.0
            self.error_statuses: tuple[int, ...] = (429, 500, 502, 503)
            self.slow_rate = 0.0
            self.slow_ms = 0
            self.garbage_rate = 0.0
            self.path_prefix: str | None = None  # random faults only for paths starting with this
            # (kind, status, path prefix, location)
            self._queue: list[tuple[str, int, str | None, str | None]] = []
            # (status, predicate(path, body)): failures that hold until cleared
            self._rules: list[tuple[int, Callable[[str, Any], bool]]] = []

    def set(self, error_rate: float | None = None, error_statuses: Iterable[int] | None = None,
            slow_rate: float | None = None, slow_ms: int | None = None, garbage_rate: float | None = None,
            path_prefix: str | Keep | None = KEEP) -> None:
        """Change the random faults; omitted settings stay. `path_prefix=None` applies them everywhere."""
        statuses = tuple(int(s) for s in error_statuses) if error_statuses is not None else None
        if statuses is not None and not all(400 <= s <= 599 for s in statuses):
            raise ValueError(f"error_statuses must be HTTP error statuses, not {statuses}")
        for name, rate in (("error_rate", error_rate), ("slow_rate", slow_rate), ("garbage_rate", garbage_rate)):
            if rate is not None and not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, not {rate}")
        with self._lock:
            if error_rate is not None:
                self.error_rate = float(error_rate)
            if statuses:
                self.error_statuses = statuses
            if slow_rate is not None:
                self.slow_rate = float(slow_rate)
            if slow_ms is not None:
                self.slow_ms = int(slow_ms)
            if garbage_rate is not None:
                self.garbage_rate = float(garbage_rate)
            if path_prefix is not KEEP:
                self.path_prefix = None if path_prefix is None else str(path_prefix)

    def fail_next(self, n: int, status: int, path_prefix: str | None = None, after: int = 0,
                  location_id: str | None = None) -> None:
        """The next n API requests (under `path_prefix`, for `location_id`, if given) answer `status`."""
        if not 400 <= status <= 599:
            raise ValueError(f"status must be an HTTP error status, not {status}")
        self._enqueue("status", status, path_prefix, n, after, location_id)

    def garbage_next(self, n: int, path_prefix: str | None = None, after: int = 0,
                     location_id: str | None = None) -> None:
        """The next n API requests (under `path_prefix`, for `location_id`, if given) get a 200 with HTML."""
        self._enqueue("garbage", 200, path_prefix, n, after, location_id)

    def fail_when(self, status: int, predicate: Callable[[str, Any], bool]) -> None:
        """Every API request for which `predicate(path, parsed body)` holds answers `status`, until
        `clear()`: a part of a read that keeps failing, whatever order concurrent requests come in."""
        if not 400 <= status <= 599:
            raise ValueError(f"status must be an HTTP error status, not {status}")
        with self._lock:
            self._rules.append((status, predicate))

    def _enqueue(self, kind: str, status: int, path_prefix: str | None, n: int, after: int,
                 location_id: str | None) -> None:
        """`after` matching requests pass untouched first (a failure in the middle of a long read)."""
        with self._lock:
            self._queue.extend(("none", 200, path_prefix, location_id) for _ in range(after))
            self._queue.extend((kind, status, path_prefix, location_id) for _ in range(n))

    def draw(self, path: str, location_id: str | None = None, body: Any = None) -> Fault:
        """The fault (possibly none) for one API request to `path` counted against `location_id`."""
        with self._lock:
            for status, predicate in self._rules:
                if predicate(path, body):
                    return Fault("status", status)
            for i, (kind, status, prefix, only) in enumerate(self._queue):
                if (prefix is None or path.startswith(prefix)) and (only is None or only == location_id):
                    del self._queue[i]
                    return NO_FAULT if kind == "none" else Fault(kind, status)
            if self.path_prefix and not path.startswith(self.path_prefix):
                return NO_FAULT
            if self.error_rate and self._rng.random() < self.error_rate:
                return Fault("status", self._rng.choice(self.error_statuses))
            if self.garbage_rate and self._rng.random() < self.garbage_rate:
                return Fault("garbage")
            if self.slow_rate and self._rng.random() < self.slow_rate:
                return Fault("slow", delay_s=self.slow_ms / 1000.0)
            return NO_FAULT
