"""The API's paging styles as small iterators that yield pages and know when they are done.

Each takes a `fetch` callable (one HTTP round trip, provided by the client) so paging logic is
testable without a network. Every paginator refuses to loop: a cursor seen twice is an error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from .errors import ApiError

Page = list[dict[str, Any]]
JsonFetch = Callable[[dict[str, Any]], dict[str, Any]]


def search_after_pages(
    fetch: JsonFetch,
    body: dict[str, Any],
    items_key: str,
    page_size: int,
    size_field: str = "pageLimit",
) -> Iterator[tuple[Page, dict[str, Any]]]:
    """Page a search endpoint with `searchAfter` (contacts and opportunity search).

    Page numbers stop at 10,000 hits; `searchAfter` (the last row's sort values) does not. A page
    shorter than `page_size` is the last one, which saves the empty trailing request. Yields
    `(rows, response)` so callers can read `total`.
    """
    request = dict(body)
    request[size_field] = page_size
    request.pop("page", None)
    seen: set[str] = set()
    while True:
        response = fetch(request)
        rows = response.get(items_key)
        if not isinstance(rows, list):
            raise ApiError(f"response has no '{items_key}' list (got keys {sorted(response)[:8]})")
        if rows:
            yield rows, response
        if len(rows) < page_size:
            return
        marker = rows[-1].get("searchAfter")
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
        rows = response.get(items_key)
        if not isinstance(rows, list):
            raise ApiError(f"response has no '{items_key}' list (got keys {sorted(response)[:8]})")
        if rows:
            yield rows
        if len(rows) < limit:
            return
        skip += len(rows)
    raise ApiError(f"'{items_key}' paging did not end after {max_pages} pages")
