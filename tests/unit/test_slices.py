"""A sliced walk yields exactly the stream one walk gives, and does not end on one long slice when
the records bunch in time (as real accounts' do: an import, a busy month)."""

import bisect
import threading
import time
from collections.abc import Iterator
from typing import Any

from sources.highlevel.slices import SLICE_WHEN_PAGE_TAKES_S, sliced_walk

PAGE = 100
DAY_MS = 86_400_000
START = 1_700_000_000_000


def bunched_rows() -> list[tuple[int, str]]:
    """2,000 rows over a year, then 18,000 in its last day."""
    spread = [(START + i * (365 * DAY_MS // 2_000), f"a{i:05d}") for i in range(2_000)]
    end = START + 365 * DAY_MS
    bunch = [(end + i * (DAY_MS // 18_000), f"b{i:05d}") for i in range(18_000)]
    return sorted(spread + bunch)


class FakeSearch:
    """`searchAfter` walks over sorted rows with the time filter honoured."""

    def __init__(self, rows: list[tuple[int, str]]) -> None:
        self.rows = rows
        self.walks: list[tuple[int | None, int | None]] = []
        self.pages: dict[tuple[int | None, int | None], int] = {}
        self.lock = threading.Lock()

    def walk(self, lo: int | None, hi: int | None, after: list[Any] | None
             ) -> Iterator[tuple[list[dict[str, Any]], dict[str, Any]]]:
        with self.lock:
            self.walks.append((lo, hi))
        start = bisect.bisect_left(self.rows, (lo, "")) if lo is not None else 0
        stop = bisect.bisect_right(self.rows, (hi, "\uffff")) if hi is not None else len(self.rows)
        total = stop - start
        if after is not None:
            start = bisect.bisect_right(self.rows, (after[0], after[1]))
        first = True
        while True:
            # a first page as slow as a distant API's (so slicing pays), later ones quicker but
            # not instant: a walk cannot race to its end before other slices hand their places back
            time.sleep(SLICE_WHEN_PAGE_TAKES_S + 0.02 if first else 0.01)
            first = False
            chunk = self.rows[start:min(start + PAGE, stop)]
            if not chunk:  # as the client's walks do: an empty answer ends the walk, unyielded
                return
            with self.lock:
                self.pages[(lo, hi)] = self.pages.get((lo, hi), 0) + 1
            page = [{"id": rid, "dateUpdated": ts, "searchAfter": [ts, rid]} for ts, rid in chunk]
            yield page, {"total": total}
            if len(chunk) < PAGE:
                return
            start += PAGE


def test_a_bunched_range_is_read_exactly_once_in_order_without_one_long_slice() -> None:
    rows = bunched_rows()
    search = FakeSearch(rows)
    read = [(row["dateUpdated"], row["id"])
            for page, _ in sliced_walk(search.walk, "dateUpdated", PAGE, None, rows[-1][0] + 1000,
                                       max_slices=16, slice_rows=1_000)
            for row in page]
    assert read == rows
    # cut uniformly in time, the last of the first 16 slices holds 18,000 rows (180 pages); slices
    # that finish hand their places to it, and it cuts its rest again and again
    assert len(search.walks) > 16
    assert max(search.pages.values()) <= 60  # cut once at the start: 182 (measured)


def test_free_places_go_to_the_earliest_slice_that_wants_them() -> None:
    from sources.highlevel.slices import _Walks

    walks = _Walks(FakeSearch([]).walk, "dateUpdated", PAGE, places=0, slice_rows=1_000, markers=True, margin=0)
    early, late, done, also_done = walks.key(), walks.key(), walks.key(), walks.key()
    assert walks.take(early, lo=1_000, wanted=3) == 0  # no place free yet: both wait
    assert walks.take(late, lo=2_000, wanted=3) == 0
    walks.leave(done, give_back=True)  # a slice is done: its place is free
    assert walks.take(late, lo=2_000, wanted=3) == 0  # free, but the consumer needs the earlier slice first
    assert walks.take(early, lo=1_000, wanted=3) == 1  # it cuts its rest and ends
    walks.leave(also_done, give_back=True)
    assert walks.take(late, lo=2_000, wanted=3) == 1  # nobody earlier wants places any more
    assert walks.take(late, lo=2_000, wanted=0) == 0  # wanting nothing is no claim on them
