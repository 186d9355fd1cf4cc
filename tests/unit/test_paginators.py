"""Paging styles against recorded response shapes, without a network."""

from typing import Any

import pytest

from sources.highlevel.errors import ApiError
from sources.highlevel.paginators import search_after_pages, skip_limit_pages


def contacts_api(total: int) -> tuple[list[dict[str, Any]], Any]:
    rows = [{"id": f"c{i:05d}", "searchAfter": [1_700_000_000_000 + i, f"c{i:05d}"]} for i in range(total)]
    calls: list[dict[str, Any]] = []

    def fetch(body: dict[str, Any]) -> dict[str, Any]:
        calls.append(body)
        start = 0
        if "searchAfter" in body:
            start = next(i for i, r in enumerate(rows) if r["searchAfter"] == body["searchAfter"]) + 1
        return {"contacts": rows[start:start + body["pageLimit"]], "total": total}

    return calls, fetch


def test_search_after_walks_past_the_10k_window_without_gaps() -> None:
    calls, fetch = contacts_api(12_345)
    ids = [r["id"] for page, _ in search_after_pages(fetch, {"locationId": "L"}, "contacts", 500) for r in page]
    assert ids == [f"c{i:05d}" for i in range(12_345)]
    assert len(calls) == 25  # 24 full pages + the short last one; no empty trailing request
    assert "page" not in calls[1] and calls[1]["searchAfter"] == [1_700_000_000_499, "c00499"]


def test_exact_multiple_of_page_size_ends_on_an_empty_page() -> None:
    calls, fetch = contacts_api(1000)
    pages = [page for page, _ in search_after_pages(fetch, {}, "contacts", 500)]
    assert [len(p) for p in pages] == [500, 500] and len(calls) == 3


def test_a_repeated_cursor_is_an_error_not_an_endless_loop() -> None:
    page = [{"id": "x", "searchAfter": [1, "x"]}] * 2

    def fetch(body: dict[str, Any]) -> dict[str, Any]:
        return {"contacts": page}

    with pytest.raises(ApiError, match="repeated"):
        list(search_after_pages(fetch, {}, "contacts", 2))


def test_missing_items_key_is_a_clear_error() -> None:
    with pytest.raises(ApiError, match="no 'contacts' list"):
        list(search_after_pages(lambda body: {"error": "x"}, {}, "contacts", 10))


def test_skip_limit_sends_strings_and_stops_on_a_short_page() -> None:
    seen: list[dict[str, Any]] = []

    def fetch(params: dict[str, Any]) -> dict[str, Any]:
        seen.append(params)
        skip = int(params["skip"])
        return {"users": [{"id": i} for i in range(skip, min(skip + int(params["limit"]), 250))], "count": 999}

    pages = list(skip_limit_pages(fetch, {"companyId": "C"}, "users", 100))
    assert [len(p) for p in pages] == [100, 100, 50]
    assert [p["skip"] for p in seen] == ["0", "100", "200"] and seen[0]["limit"] == "100"


def test_prefetch_yields_everything_in_order_and_surfaces_errors() -> None:
    from sources.highlevel.paginators import prefetch

    assert list(prefetch(iter(range(50)), depth=2)) == list(range(50))

    def broken() -> Any:
        yield 1
        raise ApiError("page 2 was garbage")

    got = []
    with pytest.raises(ApiError, match="garbage"):
        for item in prefetch(broken()):
            got.append(item)
    assert got == [1]


def test_prefetch_stops_fetching_when_the_consumer_stops() -> None:
    import time

    from sources.highlevel.paginators import prefetch

    fetched: list[int] = []

    def pages() -> Any:
        for i in range(1000):
            time.sleep(0.005)  # a request
            fetched.append(i)
            yield i

    gen = prefetch(pages(), depth=2)
    assert next(gen) == 0
    gen.close()
    stopped_at = len(fetched)
    time.sleep(0.1)
    assert len(fetched) == stopped_at < 1000  # nothing is requested after close


def test_row_limit_cuts_after_full_pages_without_fetching_more() -> None:
    from sources.highlevel.paginators import RowLimit, prefetch

    calls, fetch = contacts_api(2_300)
    limit = RowLimit(1_000, 500)
    pages = list(prefetch(limit(search_after_pages(fetch, {"locationId": "L"}, "contacts", 500))))
    assert [len(p) for p, _ in pages] == [500, 500]
    assert limit.cut and len(calls) == 2  # the third page was never requested
    # the next chunk starts after the last row it saw, and ends on the short page
    rest = RowLimit(1_000, 500)
    after = pages[-1][0][-1]["searchAfter"]
    more = list(rest(search_after_pages(fetch, {"locationId": "L"}, "contacts", 500, after=after)))
    assert [len(p) for p, _ in more] == [500, 500]
    assert rest.cut
    last = RowLimit(1_000, 500)
    after = more[-1][0][-1]["searchAfter"]
    tail = list(last(search_after_pages(fetch, {"locationId": "L"}, "contacts", 500, after=after)))
    assert [len(p) for p, _ in tail] == [300] and not last.cut
    ids = [r["id"] for chunk in (pages, more, tail) for p, _ in chunk for r in p]
    assert ids == [f"c{i:05d}" for i in range(2_300)]


def test_a_prefetcher_never_waits_for_its_consumer_and_spills_what_waits_beyond_depth() -> None:
    import time

    from sources.highlevel.paginators import Prefetcher

    fetched: list[int] = []

    def pages() -> Any:
        for i in range(300):
            fetched.append(i)
            yield [{"id": i, "pad": "x" * 100}]

    ahead = Prefetcher(pages(), depth=5, start=True)
    deadline = time.monotonic() + 5
    while len(fetched) < 300 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(fetched) == 300  # fetched everything with nobody reading
    buffer = ahead._buffer
    assert buffer._in_memory == 5 and buffer._on_disk == 296  # 295 pages and the end marker
    assert [page[0]["id"] for page in ahead] == list(range(300))  # in order, from memory then disk
    lazy = Prefetcher(iter(range(3)), depth=2)
    assert list(lazy) == [0, 1, 2]


def test_a_spill_queue_reuses_its_file_once_drained() -> None:
    from sources.highlevel.spill import SpillQueue

    q = SpillQueue(memory_items=2)
    for i in range(10):
        q.put(i)
    assert [q.get() for _ in range(10)] == list(range(10))
    assert q._on_disk == 0 and q._end == 0  # the file was reset
    q.put("again")
    assert q.get() == "again"
    q.close()


def test_row_limit_does_not_cut_when_the_total_says_the_walk_is_over() -> None:
    from sources.highlevel.paginators import RowLimit

    calls, fetch = contacts_api(1_000)  # exactly two full pages, `total` = 1,000
    limit = RowLimit(1_000, 500)
    pages = list(limit(search_after_pages(fetch, {"locationId": "L"}, "contacts", 500)))
    assert not limit.cut and [len(p) for p, _ in pages] == [500, 500]
    assert len(calls) == 3  # the empty page that ends the walk, not a second extract
    resumed = RowLimit(500, 500, already=500)  # a later chunk counts the rows before it
    after = pages[0][0][-1]["searchAfter"]
    assert [len(p) for p, _ in resumed(search_after_pages(fetch, {"locationId": "L"}, "contacts", 500,
                                                            after=after))] == [500]
    assert not resumed.cut
