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
) -> Iterator[tuple[Page, dict[str, Any]]]:
    """Page a search endpoint with `searchAfter` (contacts and opportunity search).

    Page numbers stop at 10,000 hits; `searchAfter` (the last row's sort values) does not. A page
    shorter than `page_size` is the last one, which saves the empty trailing request. Yields
    `(rows, response)` so callers can read `total`. `after` resumes a walk an earlier request
    stopped: it is a sort-value marker, not a server-side scroll, so it stays valid.
    """
    request = dict(body)
    request[size_field] = page_size
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
    query = dict(params)
    seen: set[str] = set()
    while True:
        response = fetch(query)
        rows = _rows(response, items_key)
        if rows:
            yield rows
        cursor = response.get("nextCursor")
        if not cursor or not rows:
            return
        if cursor in seen:
            raise ApiError("export cursor repeated: the API is looping, stopping")
        seen.add(cursor)
        query = {**query, "cursor": cursor}


def sort_value_pages(
    fetch: JsonFetch, params: dict[str, Any], items_key: str, limit: int, sort_field: str
) -> Iterator[Page]:
    """Page `GET /conversations/search` with `startAfterDate` = the last row's sort value.

    Rows may carry their own `sort` array (preferred, it breaks ties) or only the sort field.
    """
    query = {**params, "limit": limit}
    seen: set[str] = set()
    while True:
        response = fetch(query)
        rows = _rows(response, items_key)
        if rows:
            yield rows
        if len(rows) < limit:
            return
        last = rows[-1]
        marker = last.get("sort") or last.get(sort_field)
        if marker is None or marker == []:
            raise ApiError(f"'{items_key}' rows carry no '{sort_field}' to page by")
        value = ",".join(map(str, marker)) if isinstance(marker, list) else str(marker)
        if value in seen:
            raise ApiError(f"startAfterDate {value} repeated: the API is looping, stopping")
        seen.add(value)
        query = {**query, "startAfterDate": value}


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
