"""The API's paging styles as small iterators that yield pages and know when they are done.

Each takes a `fetch` callable (one HTTP round trip, provided by the client) so paging logic is
testable without a network. Every paginator refuses to loop: a cursor seen twice is an error.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from .errors import ApiError
from .spill import SpillQueue

T = TypeVar("T")
Page = list[dict[str, Any]]
JsonFetch = Callable[[dict[str, Any]], dict[str, Any]]


def _rows(response: dict[str, Any], items_key: str) -> Page:
    rows = response.get(items_key)
    if not isinstance(rows, list):
        raise ApiError(f"response has no '{items_key}' list (got keys {sorted(response)[:8]})")
    return rows


def search_after_pages(
    fetch: JsonFetch,
    body: dict[str, Any],
    items_key: str,
    page_size: int,
    size_field: str = "pageLimit",
    after: list[Any] | None = None,
    keep_page: bool = False,
) -> Iterator[tuple[Page, dict[str, Any]]]:
    """Page a search endpoint with `searchAfter` (contacts, opportunity and custom-object search).

    Page numbers stop at 10,000 hits; `searchAfter` (the last row's sort values) does not. A page
    shorter than `page_size` is the last one, which saves the empty trailing request. Yields
    `(rows, response)` so callers can read `total`. `after` resumes a walk an earlier request
    stopped: it is a sort-value marker, not a server-side scroll, so it stays valid. `keep_page`:
    the body's `page` stays (the objects search requires it in every body, and ignores it once
    `searchAfter` is set).
    """
    request = dict(body)
    request[size_field] = page_size
    if not keep_page:
        request.pop("page", None)
    if after:
        request["searchAfter"] = after
    seen: set[str] = set()
    while True:
        response = fetch(request)
        rows = _rows(response, items_key)
        if rows:
            yield rows, response
        if len(rows) < page_size:
            return
        # contacts put the cursor in `searchAfter`; other search indexes return it as `sort`
        marker = rows[-1].get("searchAfter") or rows[-1].get("sort")
        if not isinstance(marker, list) or not marker:
            raise ApiError(f"'{items_key}' rows carry no searchAfter cursor; cannot page past the first page")
        key = repr(marker)
        if key in seen:
            raise ApiError(f"searchAfter cursor {marker!r} repeated: the API is looping, stopping")
        seen.add(key)
        request = dict(request)
        request["searchAfter"] = marker


def skip_limit_pages(
    fetch: JsonFetch,
    params: dict[str, Any],
    items_key: str,
    limit: int,
    max_pages: int = 100_000,
) -> Iterator[Page]:
    """Page `skip`/`limit` endpoints (users, installed locations); `skip`/`limit` go as strings.

    `count`/`total` fields are not trusted (their meaning varies); a short page ends the walk.
    """
    skip = 0
    for _ in range(max_pages):
        response = fetch({**params, "skip": str(skip), "limit": str(limit)})
        rows = _rows(response, items_key)
        if rows:
            yield rows
        if len(rows) < limit:
            return
        skip += len(rows)
    raise ApiError(f"'{items_key}' paging did not end after {max_pages} pages")


Parallel = Callable[[JsonFetch, list[dict[str, Any]]], Iterable[dict[str, Any]]]


def numbered_pages(
    fetch: JsonFetch,
    params: dict[str, Any],
    items_key: str,
    limit: int,
    style: str = "offset",
    parallel: Parallel | None = None,
    max_pages: int = 100_000,
) -> Iterator[Page]:
    """Page by position: `skip`/`limit`, `offset`/`limit` or `page`/`limit` (`style`).

    Positions are known in advance, so once the first answer tells the total (`total`,
    `totalCount`, `meta.total`) the other pages go out together through `parallel` (the client's
    `map_pages`), in order. A total is a hint, never trusted to end the walk: a full last page
    means the total was stale and the walk goes on one page at a time; a short page ends it.
    """

    def query(index: int) -> dict[str, Any]:
        if style == "page":
            return {**params, "page": index + 1, "limit": limit}
        return {**params, "skip" if style == "skip" else "offset": index * limit, "limit": limit}

    def page(response: dict[str, Any], index: int, previous: set[str]) -> tuple[Page, set[str]]:
        rows = _rows(response, items_key)
        ids = {repr(row.get("_id") or row.get("id") or row) for row in rows}
        if rows and ids == previous:
            raise ApiError(f"'{items_key}' repeated a page at position {index}: the API ignores {style}; stopping")
        return rows, ids

    first = fetch(query(0))
    rows, ids = page(first, 0, set())
    if rows:
        yield rows
    index = 1
    total = response_total(first)
    if len(rows) >= limit and total is not None and parallel is not None and total > limit:
        pages = min(-(-total // limit), max_pages)
        for response in parallel(fetch, [query(i) for i in range(1, pages)]):
            rows, ids = page(response, index, ids)
            index += 1
            if rows:
                yield rows
            if len(rows) < limit:
                return
    while len(rows) >= limit:
        if index >= max_pages:
            raise ApiError(f"'{items_key}' paging did not end after {max_pages} pages")
        rows, ids = page(fetch(query(index)), index, ids)
        index += 1
        if rows:
            yield rows


def pages_ahead(fetch: JsonFetch, query: Callable[[int], dict[str, Any]], size: Callable[[dict[str, Any]], int],
                limit: int, parallel: Parallel, expected_rows: int | None = None, widest: int = 8
                ) -> Iterator[dict[str, Any]]:
    """The answers of an offset walk that tells no total (`query(i)`: page i), in order, up to the
    first short page.

    Without a total, the next page is known to exist only once this one came back full, and one
    page at a time leaves a distant API's budget idle. So pages go in waves sent at once: first
    the pages `expected_rows` (what the listing held last time) calls for, then waves that double
    from one page (at most `widest`). A listing as long as expected costs no request more than
    one walk; a longer or first-time one wastes fewer requests than it has pages (those asked
    beyond its end, dropped unread). Pages not yet sent when the walk ends are not sent.
    """
    index = 0
    expected = -(-(expected_rows + 1) // limit) if expected_rows is not None else 0
    wave = 1
    while True:
        if index < expected:
            count = min(expected - index, widest)
        else:
            count, wave = wave, min(wave * 2, widest)
        answers = parallel(fetch, [query(i) for i in range(index, index + count)])
        for response in answers:
            index += 1
            yield response
            if size(response) < limit:
                close = getattr(answers, "close", None)
                if close is not None:
                    close()  # the rest of the wave is beyond the end
                return


def response_total(response: dict[str, Any]) -> int | None:
    """How many rows the query matches, where the answer says it: `total`, `totalCount`,
    `meta.total`, or (products) `total: [{total}]`."""
    meta = response.get("meta")
    for value in (response.get("total"), response.get("totalCount"),
                  meta.get("total") if isinstance(meta, dict) else None):
        if isinstance(value, list) and value and isinstance(value[0], dict):
            value = value[0].get("total")
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
            return int(value)
    return None


def start_after_pages(fetch: JsonFetch, params: dict[str, Any], items_key: str, limit: int) -> Iterator[Page]:
    """Page `GET /opportunities/search` (and the deprecated contacts list) by `startAfter`/`startAfterId`.

    The next cursor comes from `meta`; a page without one, or a short page, is the last.
    """
    query = {**params, "limit": limit}
    seen: set[tuple[Any, Any]] = set()
    while True:
        response = fetch(query)
        rows = _rows(response, items_key)
        if rows:
            yield rows
        meta = response.get("meta") or {}
        marker = (meta.get("startAfter"), meta.get("startAfterId"))
        if len(rows) < limit or not marker[1]:
            return
        if marker in seen:
            raise ApiError(f"startAfter cursor {marker!r} repeated: the API is looping, stopping")
        seen.add(marker)
        query = {**query, "startAfter": marker[0], "startAfterId": marker[1]}


def export_cursor_pages(fetch: JsonFetch, params: dict[str, Any], items_key: str) -> Iterator[Page]:
    """Page the message export by its opaque `nextCursor` (null when done)."""
    return (rows for rows, _ in export_cursor_answers(fetch, params, items_key))


def export_cursor_answers(fetch: JsonFetch, params: dict[str, Any], items_key: str
                          ) -> Iterator[tuple[Page, dict[str, Any]]]:
    """The export's pages with the answers that carried them (their `total`)."""
    query = dict(params)
    seen: set[str] = set()
    while True:
        response = fetch(query)
        rows = _rows(response, items_key)
        if rows:
            yield rows, response
        cursor = response.get("nextCursor")
        if not cursor or not rows:
            return
        if cursor in seen:
            raise ApiError("export cursor repeated: the API is looping, stopping")
        seen.add(cursor)
        query = {**query, "cursor": cursor}


def sort_value_pages(
    fetch: JsonFetch,
    params: dict[str, Any],
    items_key: str,
    limit: int,
    sort_field: str,
    warn: Callable[[str], None] | None = None,
) -> Iterator[Page]:
    """Page `GET /conversations/search` with `startAfterDate`, a sort value in epoch ms.

    Several rows can share the boundary millisecond (a bulk send), and whether the API compares
    `startAfterDate` strictly or inclusively is unconfirmed (CONTRACT §9). So each next request
    starts one millisecond *inside* the boundary (descending: boundary + 1): under either reading
    it returns every row at the boundary again, and rows already yielded there are skipped by id.
    No tie is lost and no tiebreak is assumed; the price is re-reading the boundary's rows
    (usually one) per page. Only `sort` (ascending or descending) is read from `params`.

    More rows in one millisecond than a page holds cannot be paged with a date cursor at all: the
    walk then steps past that millisecond (first as if the API were strict, then as if inclusive)
    and says so through `warn`, with how many rows it read there.
    """
    step = -1 if str(params.get("sort", "desc")).lower() == "asc" else 1  # toward rows already read
    query = {**params, "limit": limit}
    boundary: int | None = None
    near: dict[str, int] = {}  # ids yielded at the boundary or one step inside it
    nudge = 0  # 0: re-read the boundary; 1, 2: step past it (strict, then inclusive reading)
    while True:
        response = fetch(query)
        rows = _rows(response, items_key)
        values = [_sort_value(row, sort_field, items_key) for row in rows]
        sent = query.get("startAfterDate")
        if sent is not None and any((value - sent) * step > 0 for value in values):
            raise ApiError(f"rows before startAfterDate {sent} came back: the API ignores the cursor, stopping")
        fresh = [row for row in rows if str(row.get("id")) not in near]
        if fresh:
            yield fresh
        if len(rows) < limit:
            return
        last = values[-1]
        if fresh:
            if last != boundary:
                near = {key: value for key, value in near.items() if value in (last, last + step)}
            near.update({str(row.get("id")): value for row, value in zip(rows, values, strict=True)
                         if value in (last, last + step)})
            boundary, nudge = last, 0
        else:  # a full page of rows already read: the boundary millisecond holds more than a page
            assert boundary is not None  # the first page is all fresh
            nudge += 1
            if nudge > 2:
                raise ApiError(f"startAfterDate {boundary} repeated: the API is looping, stopping")
            if nudge == 1 and warn is not None:
                warn(f"{items_key}: more than {limit} rows share the sort value {boundary}; read "
                     f"{sum(1 for v in near.values() if v == boundary)} of them, others at that "
                     "millisecond may be missing (the API pages by date only)")
        query = {**query, "startAfterDate": boundary + step * (1 - nudge)}


def _sort_value(row: dict[str, Any], sort_field: str, items_key: str) -> int:
    """A row's sort value in epoch ms: the first element of its `sort` array, else the sort field."""
    marker = row.get("sort")
    value = marker[0] if isinstance(marker, list) and marker else row.get(sort_field)
    try:
        return int(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ApiError(f"'{items_key}' row carries no usable '{sort_field}' to page by (got {value!r})") from None


class RowLimit:
    """Ends a page stream once `max_rows` rows went by, so one extract stays a bounded chunk.

    Wrap the pages *before* `prefetch`, so the fetching thread stops too and no request is
    wasted. `cut` says the stream was cut short (the last page was full, more would follow).
    A response's `total` (rows matching the query, `already` of them read by earlier chunks)
    avoids a cut at the very end, which would cost a whole extract for one empty page. It only
    decides where chunks end, never what is read, so a wrong `total` costs at most a chunk.
    """

    def __init__(self, max_rows: int | None, page_size: int, already: int = 0) -> None:
        self.max_rows = max_rows
        self.page_size = page_size
        self.already = already
        self.rows = 0
        self.cut = False

    def __call__(self, pages: Iterable[tuple[Page, Any]]) -> Iterator[tuple[Page, Any]]:
        for page, extra in pages:
            yield page, extra
            self.rows += len(page)
            if self.max_rows and self.rows >= self.max_rows and len(page) >= self.page_size:
                total = extra.get("total") if isinstance(extra, dict) else None
                # equal, not >=: a total capped by the search engine (say at 10,000) must not
                # stop chunking; a stale one at worst costs a chunk with one empty page
                if isinstance(total, int) and self.already + self.rows == total:
                    continue  # that was the last row: the walk ends on its own
                self.cut = True
                return


_DONE = object()


class Prefetcher(Iterator[T]):
    """Fetches pages in a background thread, as fast as the rate budget allows, however slow the
    consumer: the first `depth` waiting pages stay in memory, later ones spill to disk.

    Paging cursors come from the page just fetched, so the thread runs ahead on its own. Built
    with `start=True` it begins at once, else on the first read. Errors surface in the consumer
    at the point they happened; `close()` (or finishing) stops the thread.
    """

    def __init__(self, pages: Iterable[T], depth: int = 2, start: bool = False) -> None:
        self._pages = pages
        self._buffer = SpillQueue(depth)
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._produce, name="highlevel-prefetch", daemon=True)
        self._done = False
        if start:
            self._worker.start()

    def _produce(self) -> None:
        try:
            for page in self._pages:
                if self._stop.is_set():
                    return
                self._buffer.put(("page", page))
            self._buffer.put(("done", _DONE))
        except BaseException as exc:  # handed to the consumer, raised there
            self._buffer.put(("error", exc))

    def __next__(self) -> T:
        if self._done:
            raise StopIteration
        if self._worker.ident is None:  # not started yet: a lazy prefetcher starts on first read
            self._worker.start()
        kind, item = self._buffer.get()
        if kind == "page":
            return item  # type: ignore[no-any-return]
        self.close()
        if kind == "error":
            raise item
        raise StopIteration

    def close(self) -> None:
        """Stop fetching (after the request in flight); pages already fetched are dropped."""
        self._done = True
        self._stop.set()
        if self._worker.ident is not None:
            self._worker.join()
        self._buffer.close()

    def __del__(self) -> None:
        self._stop.set()


def prefetch(pages: Iterable[T], depth: int = 2) -> Iterator[T]:
    """Fetch pages in a background thread while the caller processes earlier ones; `depth` pages
    wait in memory, more on disk (memory stays flat). Closing the generator stops the thread."""
    fetcher = Prefetcher(pages, depth)
    try:
        yield from fetcher
    finally:
        fetcher.close()
