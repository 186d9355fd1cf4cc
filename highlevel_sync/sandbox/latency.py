"""How long a distant HighLevel takes to answer: a fixed delay per request plus one per record.

On loopback the sandbox answers in about a millisecond; HighLevel answers in hundreds, and a full
page takes longer still. A client tuned against the first spends most of its time waiting on the
second, which only shows if the sandbox waits too. The delay is an `asyncio.sleep` on the server's
event loop, so requests in flight together overlap as they do against a real server: twenty
concurrent requests take about one latency, not twenty. Nothing blocks the loop.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from .config import KEEP, Keep


def records_in(body: Any) -> int:
    """Records an answer carries: the length of its largest list (a page of 500 contacts: 500),
    looking one level into nested objects (`{"data": {"items": [...]}}`)."""
    if isinstance(body, list):
        return len(body)
    if not isinstance(body, dict):
        return 0
    largest = 0
    for value in body.values():
        if isinstance(value, list):
            largest = max(largest, len(value))
        elif isinstance(value, dict):
            largest = max(largest, max((len(v) for v in value.values() if isinstance(v, list)), default=0))
    return largest


class Latency:
    """The latency model; changed at run time through `Sandbox.set_latency` or the control API."""

    def __init__(self, fixed_ms: float = 0.0, per_record_ms: float = 0.0) -> None:
        self._lock = threading.Lock()
        self.fixed_ms = 0.0
        self.per_record_ms = 0.0
        self.set(fixed_ms, per_record_ms)

    def set(self, fixed_ms: float | Keep = KEEP, per_record_ms: float | Keep = KEEP) -> None:
        """Omitted settings stay; both must be finite and >= 0."""
        values = {name: value for name, value in (("fixed_ms", fixed_ms), ("per_record_ms", per_record_ms))
                  if value is not KEEP}
        for name, value in values.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value < float("inf"):
                raise ValueError(f"{name} must be a number of milliseconds >= 0, not {value!r}")
        with self._lock:
            for name, value in values.items():
                setattr(self, name, float(value))

    def delay_s(self, records: int) -> float:
        with self._lock:
            return (self.fixed_ms + self.per_record_ms * max(0, records)) / 1000.0

    async def wait(self, records: int) -> None:
        delay = self.delay_s(records)
        if delay > 0:
            await asyncio.sleep(delay)
