"""A bounded page buffer between reading and loading that spills to disk instead of growing memory.

Readers run at the API's pace and the loader at the CPU's; neither may wait for the other, and a
slow load must not let fetched pages pile up in memory. Items are serialized as they arrive (so
their size is known exactly), kept in memory while the run's shared budget allows, and appended
to a temporary file once it does not. Reading back yields them in order, as often as needed (an
extract that fails is retried location by location).
"""

from __future__ import annotations

import marshal
import os
import pickle
import queue
import tempfile
import threading
from collections import deque
from collections.abc import Iterator
from typing import Any

DEFAULT_MEMORY_BYTES = 16 * 1024 * 1024


def dumps(item: Any) -> bytes:
    """Serialize `item` for a spill: parsed API pages (dicts, lists, strings, numbers) with marshal,
    which round-trips a page of contacts a third faster than pickle; anything else with pickle."""
    try:
        return b"m" + marshal.dumps(item)
    except ValueError:  # not marshallable (Arrow tables, hinted items, exceptions)
        return b"p" + pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)


def loads(blob: bytes) -> Any:
    body = memoryview(blob)[1:]
    return marshal.loads(body) if blob[:1] == b"m" else pickle.loads(body)


class MemoryBudget:
    """Bytes of serialized items all buffers of a run may hold in memory together."""

    def __init__(self, limit: int = DEFAULT_MEMORY_BYTES, spill_dir: str | None = None) -> None:
        self.limit = limit
        self.spill_dir = spill_dir
        self.used = 0
        self.spilled_bytes = 0
        self._lock = threading.Lock()

    def take(self, size: int) -> bool:
        with self._lock:
            if self.used + size > self.limit:
                return False
            self.used += size
            return True

    def give_back(self, size: int) -> None:
        with self._lock:
            self.used -= size

    def spilled(self, size: int) -> None:
        with self._lock:
            self.spilled_bytes += size


class SpillBuffer:
    """Items of one read, in order: in memory within the budget, the rest in a temporary file."""

    def __init__(self, budget: MemoryBudget) -> None:
        self._budget = budget
        self._memory: list[bytes] = []
        self._memory_bytes = 0
        self._file: Any = None
        self._spilled = 0  # items in the file (they follow the in-memory ones)
        self.items = 0

    def append(self, item: Any) -> None:
        blob = dumps(item)
        self.items += 1
        if not self._spilled and self._budget.take(len(blob)):
            self._memory.append(blob)
            self._memory_bytes += len(blob)
            return
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="highlevel-spill-", dir=self._budget.spill_dir)  # noqa: SIM115
        self._file.write(len(blob).to_bytes(8, "little"))
        self._file.write(blob)
        self._spilled += 1
        self._budget.spilled(len(blob))

    def __iter__(self) -> Iterator[Any]:
        for blob in self._memory:
            yield loads(blob)
        if self._file is not None:
            self._file.flush()
            self._file.seek(0)
            for _ in range(self._spilled):
                size = int.from_bytes(self._file.read(8), "little")
                yield loads(self._file.read(size))
            self._file.seek(0, os.SEEK_END)

    def close(self) -> None:
        """Free memory and disk; the buffer is empty afterwards."""
        self._budget.give_back(self._memory_bytes)
        self._memory, self._memory_bytes = [], 0
        if self._file is not None:
            self._file.close()
            self._file = None
        self._spilled = self.items = 0


class SpillQueue:
    """A first-in first-out queue between one producer thread and one consumer that never blocks
    the producer: the first `memory_items` waiting items stay in memory, later ones go to a
    temporary file until the consumer catches up (the file is reset whenever the queue empties)."""

    def __init__(self, memory_items: int) -> None:
        self._memory_items = max(1, memory_items)
        self._waiting: deque[tuple[bool, Any]] = deque()  # (on disk?, item or (offset, size))
        self._in_memory = 0
        self._on_disk = 0
        self._file: Any = None
        self._end = 0
        self._ready = threading.Condition()

    def put(self, item: Any) -> None:
        with self._ready:
            if self._in_memory < self._memory_items and not self._on_disk:
                self._waiting.append((False, item))
                self._in_memory += 1
            else:
                blob = dumps(item)
                if self._file is None:
                    self._file = tempfile.TemporaryFile(prefix="highlevel-pages-")  # noqa: SIM115
                self._file.seek(self._end)
                self._file.write(blob)
                self._waiting.append((True, (self._end, len(blob))))
                self._end += len(blob)
                self._on_disk += 1
            self._ready.notify()

    def get(self, timeout: float | None = None) -> Any:
        """The oldest item; raises queue.Empty after `timeout` seconds without one."""
        with self._ready:
            if not self._waiting and not self._ready.wait_for(lambda: bool(self._waiting), timeout):
                raise queue.Empty
            on_disk, entry = self._waiting.popleft()
            if not on_disk:
                self._in_memory -= 1
                return entry
            offset, size = entry
            self._file.seek(offset)
            item = loads(self._file.read(size))
            self._on_disk -= 1
            if not self._on_disk:
                self._file.truncate(0)
                self._end = 0
            return item

    def close(self) -> None:
        with self._ready:
            self._waiting.clear()
            self._in_memory = self._on_disk = 0
            if self._file is not None:
                self._file.close()
                self._file = None
