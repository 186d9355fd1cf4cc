"""A location's records of one kind with a search view that trails writes, like HighLevel's index.

Ground truth (`truth`) changes at once; the search view (`visible`) sees a write only `lag` seconds
after it happened. The lag is drawn per write, so a later change can surface before an earlier
one; like a versioned index, an older write surfacing late never overwrites a newer one.

Search reads sorted `(epoch ms, id)` keys per sort field. They are built once and then kept sorted
with bisect as writes surface, so a page costs O(log n + page), never a sort per request.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any

Record = dict[str, Any]
Key = tuple[int, str]  # (sort value in epoch ms, id): the id breaks ties, as the API's searchAfter does
_MAX_ID = "\U0010ffff"


class IndexedRecords:
    def __init__(self, sort_fields: dict[str, Callable[[Record], int]]) -> None:
        self.truth: dict[str, Record] = {}
        self.visible: dict[str, Record] = {}
        self._keys = sort_fields  # field name -> record -> epoch ms
        self._pending: list[tuple[float, int, str, Record | None]] = []  # (visible at, seq, id, record)
        self._seq = itertools.count()
        self._sorted: dict[str, list[Key]] = {}
        self._applied: dict[str, int] = {}  # newest write applied per record

    def seed(self, records: list[Record]) -> None:
        """Initial data: visible at once (it was written long ago). The sorted views are built
        now, so the first search does not pay for them."""
        for record in records:
            self.truth[record["id"]] = record
            self.visible[record["id"]] = record
        self._sorted.clear()
        for name in self._keys:
            self.sorted_keys(name)

    def write(self, record_id: str, record: Record | None, lag_s: float) -> None:
        """Create/update (record) or delete (None); search sees it after `lag_s`."""
        if record is None:
            self.truth.pop(record_id, None)
        else:
            self.truth[record_id] = record
        heapq.heappush(self._pending, (time.monotonic() + lag_s, next(self._seq), record_id, record))

    def catch_up(self) -> None:
        """Apply every write whose lag has passed to the search view."""
        now = time.monotonic()
        while self._pending and self._pending[0][0] <= now:
            _, seq, record_id, record = heapq.heappop(self._pending)
            if self._applied.get(record_id, -1) > seq:
                continue
            self._applied[record_id] = seq
            old = self.visible.pop(record_id, None)
            if record is not None:
                self.visible[record_id] = record
            self._reindex(record_id, old, record)

    def _reindex(self, record_id: str, old: Record | None, new: Record | None) -> None:
        for field, keys in self._sorted.items():
            key_of = self._keys[field]
            if old is not None:
                key = (key_of(old), record_id)
                at = bisect.bisect_left(keys, key)
                if at < len(keys) and keys[at] == key:
                    del keys[at]
            if new is not None:
                bisect.insort(keys, (key_of(new), record_id))

    def pending_until(self) -> float:
        """Monotonic time at which the last pending write becomes visible (0 when none)."""
        return max((item[0] for item in self._pending), default=0.0)

    def sorted_keys(self, field: str) -> list[Key]:
        keys = self._sorted.get(field)
        if keys is None:
            key_of = self._keys[field]
            keys = sorted((key_of(r), r["id"]) for r in self.visible.values())
            self._sorted[field] = keys
        return keys

    def bounds(self, field: str, gte: int | None, lte: int | None) -> tuple[int, int]:
        """Index range [lo, hi) of the keys whose sort value lies in [gte, lte]."""
        keys = self.sorted_keys(field)
        lo = bisect.bisect_left(keys, (gte, "")) if gte is not None else 0
        hi = bisect.bisect_right(keys, (lte, _MAX_ID)) if lte is not None else len(keys)
        return lo, max(lo, hi)

    def window(
        self, field: str, descending: bool, gte: int | None, lte: int | None, after: Key | None,
        limit: int, skip: int = 0,
    ) -> tuple[list[Key], int]:
        """Up to `limit` keys in [gte, lte] in sort order after the `after` cursor (or `skip` rows),
        and the number of keys in [gte, lte] (the query's total, whatever the cursor)."""
        keys = self.sorted_keys(field)
        lo, hi = self.bounds(field, gte, lte)
        total = hi - lo
        if not descending:
            start = bisect.bisect_right(keys, after, lo, hi) if after is not None else lo + skip
            return keys[start:min(hi, start + limit)], total
        end = bisect.bisect_left(keys, after, lo, hi) if after is not None else hi - skip
        return keys[max(lo, end - limit):max(lo, end)][::-1], total

    def scan(self, field: str, descending: bool, gte: int | None, lte: int | None) -> Iterator[Key]:
        """Every key in [gte, lte] in sort order: the slow path for filters the window cannot express."""
        keys = self.sorted_keys(field)
        lo, hi = self.bounds(field, gte, lte)
        return (keys[i] for i in (range(hi - 1, lo - 1, -1) if descending else range(lo, hi)))
