"""`startAfterDate` paging (conversations) loses no row when several share the boundary millisecond,
whether the API reads the cursor strictly or inclusively (unconfirmed, CONTRACT §9)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from sources.highlevel.errors import ApiError
from sources.highlevel.paginators import sort_value_pages

Fetch = Callable[[dict[str, Any]], dict[str, Any]]


def conversations_api(values: list[int], inclusive: bool) -> tuple[list[dict[str, Any]], Fetch]:
    """Rows with the given `lastMessageDate`s; `startAfterDate` compared strictly or inclusively.
    Ties come out in id order, which the paginator must not rely on."""
    rows: list[dict[str, Any]] = [{"id": f"c{i:04d}", "lastMessageDate": v} for i, v in enumerate(values)]
    calls: list[dict[str, Any]] = []

    def fetch(query: dict[str, Any]) -> dict[str, Any]:
        calls.append(dict(query))
        descending = query.get("sort", "desc") == "desc"
        ordered = sorted(rows, key=lambda r: (-r["lastMessageDate"] if descending else r["lastMessageDate"], r["id"]))
        after = query.get("startAfterDate")
        if after is not None:
            cut = int(after)
            if descending:
                ordered = [r for r in ordered if r["lastMessageDate"] <= cut - (0 if inclusive else 1)]
            else:
                ordered = [r for r in ordered if r["lastMessageDate"] >= cut + (0 if inclusive else 1)]
        return {"conversations": ordered[:query["limit"]], "total": len(rows)}

    return calls, fetch


def walk(fetch: Fetch, sort: str = "desc", limit: int = 10, warnings: list[str] | None = None) -> list[str]:
    pages = sort_value_pages(fetch, {"locationId": "L", "sort": sort}, "conversations", limit, "lastMessageDate",
                             warn=None if warnings is None else warnings.append)
    return [row["id"] for page in pages for row in page]


# 35 rows: distinct stamps except a tie of 7 rows straddling the first page boundary (positions 6..12
# of the newest-first order) and a tie of 3 at the very end of the second page
STAMPS = [10_000 - 10 * i for i in range(35)]
for i in range(6, 13):
    STAMPS[i] = STAMPS[6]
for i in range(18, 21):
    STAMPS[i] = STAMPS[18]


@pytest.mark.parametrize("inclusive", [False, True], ids=["strict", "inclusive"])
@pytest.mark.parametrize("sort", ["desc", "asc"])
def test_ties_at_the_page_boundary_are_all_read_once(inclusive: bool, sort: str) -> None:
    calls, fetch = conversations_api(STAMPS, inclusive)
    ids = walk(fetch, sort)
    assert sorted(ids) == sorted(f"c{i:04d}" for i in range(35))
    assert len(ids) == len(set(ids))  # nothing yielded twice either
    assert len(calls) <= 5  # each page re-reads only its boundary's rows


def test_the_old_strict_cursor_would_have_lost_the_ties() -> None:
    """What the test above guards against: the boundary value itself, read strictly, skips the
    rows of the boundary millisecond that did not fit on the page."""
    _, fetch = conversations_api(STAMPS, inclusive=False)
    first = fetch({"limit": 10})["conversations"]
    boundary = first[-1]["lastMessageDate"]
    rest = fetch({"limit": 100, "startAfterDate": boundary})["conversations"]
    assert len(first) + len(rest) < 35


@pytest.mark.parametrize("inclusive", [False, True], ids=["strict", "inclusive"])
def test_more_ties_than_a_page_step_past_with_a_warning(inclusive: bool) -> None:
    stamps = [5_000] * 3 + [4_000] * 25 + [3_000 - i for i in range(12)]
    _, fetch = conversations_api(stamps, inclusive)
    warnings: list[str] = []
    ids = walk(fetch, limit=10, warnings=warnings)
    assert len(ids) == len(set(ids))
    # everything outside the overfull millisecond is read; inside it, at least a page's worth
    by_id = {f"c{i:04d}": v for i, v in enumerate(stamps)}
    assert {i for i, v in by_id.items() if v != 4_000} <= set(ids)
    assert sum(1 for i in ids if by_id[i] == 4_000) >= 10
    assert len(warnings) == 1 and "share the sort value 4000" in warnings[0]


def test_a_quiet_walk_of_unique_stamps_costs_one_request_per_page() -> None:
    calls, fetch = conversations_api([9_000 - i for i in range(25)], inclusive=False)
    assert len(walk(fetch)) == 25
    assert len(calls) == 3
    assert calls[1]["startAfterDate"] == 8_991 + 1  # one ms inside the boundary: its row comes again


def test_rows_with_a_sort_array_page_by_its_first_value() -> None:
    rows = [{"id": f"x{i}", "sort": [str(1_000 - i)]} for i in range(4)]

    def fetch(query: dict[str, Any]) -> dict[str, Any]:
        after = query.get("startAfterDate")
        kept = [r for r in rows if after is None or int(r["sort"][0]) < int(after)]
        return {"conversations": kept[:2]}

    pages = list(sort_value_pages(fetch, {}, "conversations", 2, "lastMessageDate"))
    assert [r["id"] for p in pages for r in p] == ["x0", "x1", "x2", "x3"]


def test_an_api_that_ignores_the_cursor_is_an_error_not_an_endless_loop() -> None:
    page = {"conversations": [{"id": f"s{i}", "lastMessageDate": 100 - i} for i in range(3)]}
    with pytest.raises(ApiError, match="ignores the cursor"):
        list(sort_value_pages(lambda q: page, {}, "conversations", 3, "lastMessageDate"))


def test_rows_without_a_sort_value_are_an_error() -> None:
    page = {"conversations": [{"id": "a"}, {"id": "b"}]}
    with pytest.raises(ApiError, match="lastMessageDate"):
        list(sort_value_pages(lambda q: page, {}, "conversations", 2, "lastMessageDate"))
