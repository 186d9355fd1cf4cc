"""Switchable failures, to prove a client survives what real APIs do on bad days."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass


@dataclass
class Fault:
    kind: str  # "status" | "garbage" | "slow" | "none"
    status: int = 200
    delay_s: float = 0.0


class Faults:
    def __init__(self, seed: int) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self.clear()

    def clear(self) -> None:
        with self._lock:
            self.error_rate = 0.0
            self.error_statuses: tuple[int, ...] = (429, 500, 502, 503)
            self.slow_rate = 0.0
            self.slow_ms = 0
            self.garbage_rate = 0.0
            self.path_prefix: str | None = None
            self._queue: list[tuple[str, int, str | None]] = []  # (kind, status, path prefix)

    def set(self, error_rate: float | None = None, error_statuses: tuple[int, ...] | list[int] | None = None,
            slow_rate: float | None = None, slow_ms: int | None = None, garbage_rate: float | None = None,
            path_prefix: str | None = None) -> None:
        with self._lock:
            if error_rate is not None:
                self.error_rate = error_rate
            if error_statuses is not None:
                self.error_statuses = tuple(error_statuses)
            if slow_rate is not None:
                self.slow_rate = slow_rate
            if slow_ms is not None:
                self.slow_ms = slow_ms
            if garbage_rate is not None:
                self.garbage_rate = garbage_rate
            self.path_prefix = path_prefix

    def fail_next(self, n: int, status: int, path_prefix: str | None = None) -> None:
        with self._lock:
            self._queue.extend(("status", status, path_prefix) for _ in range(n))

    def garbage_next(self, n: int, path_prefix: str | None = None) -> None:
        with self._lock:
            self._queue.extend(("garbage", 200, path_prefix) for _ in range(n))

    def draw(self, path: str) -> Fault:
        with self._lock:
            for i, (kind, status, prefix) in enumerate(self._queue):
                if prefix is None or path.startswith(prefix):
                    del self._queue[i]
                    return Fault(kind, status)
            if self.path_prefix and not path.startswith(self.path_prefix):
                return Fault("none")
            if self.error_rate and self._rng.random() < self.error_rate:
                return Fault("status", self._rng.choice(self.error_statuses))
            if self.garbage_rate and self._rng.random() < self.garbage_rate:
                return Fault("garbage")
            if self.slow_rate and self._rng.random() < self.slow_rate:
                return Fault("slow", delay_s=self.slow_ms / 1000.0)
            return Fault("none")
