"""A search sorted ascending by a time field, read as time slices side by side and yielded in order.

HighLevel answers a 500-contact page in about half a second, so one `searchAfter` walk uses a
third of a location's budget (100 requests / 10 s). Positions of a `searchAfter` walk are not known
in advance, but times are: after the first page, the rest of the range is cut into slices by time
(as many as the answer's `total` calls for), each walked by its own prefetching thread. A slice
that is done hands its place back, and a slice with more than a page left cuts its rest while
places are free (its own answers count its range), so a read whose records bunch in time does not
end on one long slice walked a page at a time. Free places go to the earliest slice that wants
them: the consumer reads in time order, so the first slice walked a page at a time would stall it
while later slices' pages pile up. The consumer reads the slices in time
order, so it sees exactly the stream a single walk would give (same order, same rows): cursors,
chunk positions (`searchAfter` markers) and merges work unchanged, and a chunk cut or a failure
stops every slice (pages fetched ahead are dropped, as with any prefetch).

Slices are contiguous and disjoint at millisecond granularity: [lo, b1 - 1 ms], [b1, b2 - 1 ms], ...,
[bk, hi]; the last one keeps the walk's own upper bound (none for an open walk), so records
changed during the read land where a single walk would find them. The first slice continues the
first page's walk from its marker, so rows sharing the boundary millisecond are neither lost nor
read twice. (A walk without markers, paged by an opaque cursor, starts the first slice at that
millisecond instead, and its rows there come twice; see `sliced_walk`.)

The time filter is not in the official spec (CONTRACT §9): a slice whose answer holds rows outside
its range (and its margin) means the API ignored the filter, and the read falls back to one walk
from the last row the consumer took.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from . import settings
from .normalize import to_utc
from .paginators import Page, Prefetcher
from .ratelimit import set_request_priority

logger = logging.getLogger(__name__)

# rows per slice before it is worth cutting: a slice is a thread walking its pages one at a time
SLICE_ROWS = 5_000
# slices in flight per walk (settings.DEFAULT_SEARCH_SLICES); with the governor pacing each
# location, more only costs threads
MAX_SLICES = settings.DEFAULT_SEARCH_SLICES
# Slices hide latency; when the first page came back faster than this (a local API), one walk with
# its prefetch already outpaces processing, and slices would only add pages spilled to disk and back
SLICE_WHEN_PAGE_TAKES_S = 0.15

Walk = Callable[[int | None, int | None, list[Any] | None], Iterator[tuple[Page, dict[str, Any]]]]


class FilterIgnored(Exception):
    """A slice's answer left its time range: the API does not honour the filter."""


class _Walks:
    """What the slices of one read share: places (slices fetching at once, beyond the walk's own;
    a slice hands its place back when its last page is fetched, so a slice still far from its end
    can cut its rest while others idle) and every slice started, so closing the read stops them all.

    A slice that cuts its rest ends with a `_Cut` naming the slices that take its place; the
    consumer reads those next, so each page passes through one queue only, however often the
    rest of a range was cut."""

    def __init__(self, walk: Walk, time_field: str, page_size: int, places: int, slice_rows: int,
                 markers: bool, margin: int) -> None:
        self.walk, self.time_field, self.page_size, self.slice_rows = walk, time_field, page_size, slice_rows
        self.markers, self.margin = markers, margin
        self._left = places
        self._lock = threading.Lock()
        # slices that would cut their rest, by key: their lower bound. Freed places go to the
        # earliest, whose pages the consumer needs first; a later slice waits even when places
        # are free, or it would take them while the consumer starves on a slice walked page by page
        self._wanting: dict[int, int] = {}
        self._cuts: dict[int, list[Prefetcher[Any]]] = {}
        self._keys = itertools.count()
        self._started: list[Prefetcher[Any]] = []
        self._closed = False

    def key(self) -> int:
        return next(self._keys)

    def take(self, key: int, lo: int, wanted: int) -> int:
        """Places for the slice `key` (from `lo` on) to cut its rest into: none while an earlier
        slice wants some too."""
        with self._lock:
            if wanted <= 0:
                self._wanting.pop(key, None)
                return 0
            self._wanting[key] = lo
            if lo > min(self._wanting.values()):
                return 0
            granted = min(wanted, self._left)
            self._left -= granted
            if granted:
                del self._wanting[key]  # it cuts now and ends
            return granted

    def leave(self, key: int, give_back: bool) -> None:
        """The slice `key` is done fetching (or failed): it wants no places; `give_back`: its own
        place is free for a slice elsewhere to cut its rest."""
        with self._lock:
            self._wanting.pop(key, None)
            self._left += 1 if give_back else 0

    def cut(self, slices: list[Prefetcher[Any]]) -> _Cut:
        with self._lock:
            self._started.extend(slices)
            closed = self._closed
            key = next(self._keys)
            self._cuts[key] = slices
        if closed:  # the read stopped while this slice was cutting
            for part in slices:
                part.close()
        return _Cut(key)

    def slices_of(self, cut: _Cut) -> list[Prefetcher[Any]]:
        with self._lock:
            return self._cuts.pop(cut.key)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            started, self._started = self._started, []
        for part in started:
            part.close()


class _Cut:
    """The end of a slice whose rest was cut: the slices registered under `key` take its place.
    (A plain key: it may wait in a queue that spills to disk.)"""

    def __init__(self, key: int) -> None:
        self.key = key


def marker_of(row: dict[str, Any]) -> list[Any] | None:
    marker = row.get("searchAfter") or row.get("sort")
    return marker if isinstance(marker, list) and marker else None


def sliced_walk(walk: Walk, time_field: str, page_size: int, lo: int | None, hi: int | None,
                after: list[Any] | None = None, max_slices: int = MAX_SLICES,
                slice_rows: int = SLICE_ROWS, markers: bool = True, margin: int = 0
                ) -> Iterator[tuple[Page, dict[str, Any]]]:
    """Every page of the walk over [lo, hi] (epoch ms, None: unbounded), in order, fetched ahead of
    the caller (by slices, or by one prefetching thread): no need to prefetch it again.

    `walk(lo, hi, after)` is one plain walk over a range, sorted ascending by `time_field`. The
    first answer's `total` is what every page reports as `total` (slices answer their own counts).
    `markers`: a row's `searchAfter` says where a walk goes on after it, so the first slice goes on
    from the first page's last row and a fallback from the last row taken. Without (a walk paged
    by an opaque cursor that belongs to its own query), the first slice starts at the millisecond
    of that last row, whose rows there come twice (a merge on the key keeps one), and a fallback
    reads the whole range again. `margin` (ms): how far beyond its range a slice's rows may lie
    (a walk that asks beyond its range, its filter's bounds being unknown); only rows beyond it
    mean the filter is ignored.
    """
    walks = _Walks(walk, time_field, page_size, max_slices - 1, slice_rows, markers, margin)
    total: int | None = None
    taken = after
    try:
        for page, response in _in_order(_slice(walks, lo, hi, after, True), walks):
            if total is None and isinstance(response.get("total"), int):
                total = response["total"]
            taken = (marker_of(page[-1]) or taken) if markers else after
            yield page, response if total is None else {**response, "total": total}
    except FilterIgnored as exc:
        # every slice before the failing one was consumed whole: go on as one walk from there
        logger.info("the API did not honour a slice's time filter (%s): reading on as one walk", exc)
        for page, response in walk(lo, hi, taken):
            yield page, response if total is None else {**response, "total": total}


def _in_order(first: Iterator[Any], walks: _Walks) -> Iterator[tuple[Page, dict[str, Any]]]:
    """The pages of the walk and of the slices that took over its rest, in time order."""
    order: deque[Iterator[Any]] = deque([first])
    try:
        while order:
            part = order.popleft()
            for item in part:
                if isinstance(item, _Cut):
                    order.extendleft(reversed(walks.slices_of(item)))
                    break  # the slice ended there
                yield item
    finally:
        close = getattr(first, "close", None)
        if close is not None:
            close()
        walks.close()


def _slice(walks: _Walks, lo: int | None, hi: int | None, after: list[Any] | None, outer: bool) -> Iterator[Any]:
    """The walk over [lo, hi]. The outer walk cuts its rest into slices after its first page (as
    many as `total` calls for, one per `slice_rows`); a slice cuts its own rest into pieces of two
    pages or more after any page while places are free (and no earlier slice wants them), so the
    read never ends on one long slice walked a page at a time while the budget sits unused.
    (Pieces of one page would each end on a part-filled page: more requests for the same rows.)"""
    if not outer:  # this slice's thread: earlier slices are needed sooner, so they go first when short
        set_request_priority(float(lo or 0))
    time_field, page_size = walks.time_field, walks.page_size
    pages = walks.walk(lo, hi, after)
    asked = time.monotonic()
    cut = 0
    key = walks.key()
    try:
        first = next(pages, None)
        fast = time.monotonic() - asked < SLICE_WHEN_PAGE_TAKES_S
        if first is None:
            return
        rows, response = first
        if not outer:
            check_range(_ends(rows), time_field, lo, hi, walks.margin)
        yield first
        total = response.get("total")
        left = total - len(rows) if isinstance(total, int) else 0
        end = hi if hi is not None else int(time.time() * 1000)
        while True:
            last = stamp_ms(rows[-1].get(time_field))
            wanted = 0
            if len(rows) >= page_size and last is not None and end > last and not fast and left > page_size:
                wanted = min(-(-left // walks.slice_rows) - 1 if outer else -(-left // (2 * page_size)) - 1, end - last)
            cut = walks.take(key, lo or 0, wanted)
            if cut > 0:
                break
            if outer:  # one walk: its pages are fetched ahead of the consumer, in a thread of their own
                rest = Prefetcher(pages)
                try:
                    yield from rest
                finally:
                    rest.close()
                return
            page = next(pages, None)
            if page is None:
                return
            rows, response = page
            check_range(_ends(rows), time_field, lo, hi, walks.margin)
            yield page
            left -= len(rows)
    finally:
        close = getattr(pages, "close", None)
        if close is not None:
            close()  # the walk is abandoned (slices go on from here) or done
        walks.leave(key, give_back=not outer and cut <= 0)
    assert last is not None
    bounds = [last + (end - last) * i // (cut + 1) for i in range(cut + 1)]
    ranges: list[tuple[int, int | None]] = [(start, stop - 1) for start, stop in itertools.pairwise(bounds)]
    ranges.append((bounds[-1], hi))
    # one page waits in memory per slice (the rest on disk): many slices must not hold many pages.
    # The first continues this walk from its last row, in this walk's place (so `cut` new places).
    first_after = marker_of(rows[-1]) if walks.markers else None
    yield walks.cut([Prefetcher(_slice(walks, start, stop, first_after if i == 0 else None, False), depth=1, start=True)
                     for i, (start, stop) in enumerate(ranges)])


def check_range(rows: Iterable[dict[str, Any]], time_field: str, lo: int | None, hi: int | None,
                margin: int = 0) -> None:
    """FilterIgnored if one of `rows` lies beyond [lo - margin, hi + margin]. A slice checks its pages'
    first and last rows (the answer is sorted by `time_field`)."""
    for row in rows:
        stamp = stamp_ms(row.get(time_field))
        if stamp is not None and ((lo is not None and stamp < lo - margin) or (hi is not None and stamp > hi + margin)):
            raise FilterIgnored(f"a row at {stamp} outside the slice [{lo}, {hi}]")


def _ends(rows: Page) -> tuple[dict[str, Any], ...]:
    return (rows[0], rows[-1]) if rows else ()


def stamp_ms(value: Any) -> int | None:
    try:
        instant = to_utc(value)
    except ValueError:
        return None
    return None if instant is None else int(instant.timestamp() * 1000)
