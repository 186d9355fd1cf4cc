"""A location's records of one kind with a search view that trails writes, like HighLevel's index.

Ground truth changes at once; search sees a write only `lag` seconds after it happened (lag drawn
per write, so a later change can surface before an earlier one). Sorted views are cached per
field and rebuilt after the visible set changes.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Any

Record = dict[str, Any]


class IndexedRecords:
    def __init__(self, sort_fields: dict[str, Callable[[Record], int]]) -> None:
        self.truth: dict[str, Record] = {}
        self.visible: dict[str, Record] = {}
        self._keys = sort_fields  # field name -> record -> epoch ms
        self._pending: list[tuple[float, int, str, Record | None]] = []
        self._seq = itertools.count()
        self._sorted: dict[str, list[tuple[int, str]]] = {}
        self._applied: dict[str, int] = {}  # newest write applied per record (versioned, like a real index)

    def seed(self, records: list[Record]) -> None:
        for record in records:
            self.truth[record["id"]] = record
            self.visible[record["id"]] = record
        self._sorted.clear()

    def write(self, record_id: str, record: Record | None, lag_s: float) -> None:
        """Create/update (record) or delete (None); search sees it after `lag_s`."""
        if record is None:
            self.truth.pop(record_id, None)
        else:
            self.truth[record_id] = record
        heapq.heappush(self._pending, (time.monotonic() + lag_s, next(self._seq), record_id, record))

    def catch_up(self) -> None:
        now = time.monotonic()
        changed = False
        while self._pending and self._pending[0][0] <= now:
            _, seq, record_id, record = heapq.heappop(self._pending)
            if self._applied.get(record_id, -1) > seq:
                continue  # an older write surfacing late never overwrites a newer one
            self._applied[record_id] = seq
            if record is None:
                self.visible.pop(record_id, None)
            else:
                self.visible[record_id] = record
            changed = True
        if changed:
            self._sorted.clear()

    def pending_until(self) -> float:
        return max((item[0] for item in self._pending), default=0.0)

    def sorted_keys(self, field: str) -> list[tuple[int, str]]:
        keys = self._sorted.get(field)
        if keys is None:
            key_of = self._keys[field]
            keys = sorted((key_of(r), r["id"]) for r in self.visible.values())
            self._sorted[field] = keys
        return keys

    def window(
        self, field: str, descending: bool, gte: int | None, lte: int | None, after: tuple[int, str] | None,
        limit: int, skip: int = 0,
    ) -> tuple[list[tuple[int, str]], int]:
        """Up to `limit` keys in [gte, lte] in sort order after the `after` cursor (or `skip` rows); and the total."""
        keys = self.sorted_keys(field)
        lo = bisect.bisect_left(keys, (gte, "")) if gte is not None else 0
        hi = bisect.bisect_right(keys, (lte, "\U0010ffff")) if lte is not None else len(keys)
        total = max(0, hi - lo)
        if not descending:
            start = bisect.bisect_right(keys, after, lo, hi) if after is not None else lo + skip
            return keys[start:min(hi, start + limit)], total
        end = bisect.bisect_left(keys, after, lo, hi) if after is not None else hi - skip
        return keys[max(lo, end - limit):max(lo, end)][::-1], total
