"""An offset walk without a total goes ahead in growing waves, stops at the first short page and
wastes fewer requests than the listing has pages."""

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest

from sources.highlevel.paginators import pages_ahead

LIMIT = 10


def listing(rows: int) -> tuple[list[int], list[list[int]], Callable[..., Iterator[dict[str, Any]]]]:
    """A fake API of `rows` rows; records every request's skip and every wave sent together."""
    asked: list[int] = []
    waves: list[list[int]] = []

    def fetch(query: dict[str, Any]) -> dict[str, Any]:
        asked.append(query["skip"])
        return {"rows": list(range(query["skip"], min(query["skip"] + LIMIT, rows)))}

    def parallel(fetch: Callable[[dict[str, Any]], dict[str, Any]], queries: Iterable[dict[str, Any]]
                 ) -> Iterator[dict[str, Any]]:
        queries = list(queries)
        waves.append([q["skip"] for q in queries])
        answers = [fetch(query) for query in queries]  # a wave is sent at once, as by the client's pool
        yield from answers  # and answered in order

    def walk(expected: int | None = None) -> Iterator[dict[str, Any]]:
        return pages_ahead(fetch, lambda i: {"skip": i * LIMIT}, lambda body: len(body["rows"]), LIMIT, parallel,
                           expected_rows=expected, widest=8)

    return asked, waves, walk


@pytest.mark.parametrize("rows", [0, 5, 10, 25, 70, 300])
def test_every_row_once_in_order_and_little_waste(rows: int) -> None:
    asked, waves, walk = listing(rows)
    read = [row for body in walk() for row in body["rows"]]
    assert read == list(range(rows))
    pages = rows // LIMIT + 1  # the last one short (or empty)
    assert len(asked) - pages < max(pages, 1)  # asked beyond the end: fewer than the pages it has
    assert [len(w) for w in waves][:5] == [1, 2, 4, 8, 8][:len(waves)]  # one page first, then growing waves


def test_pages_after_a_short_one_are_not_read() -> None:
    _, _, walk = listing(25)
    bodies = list(walk())
    assert [len(b["rows"]) for b in bodies] == [10, 10, 5]


@pytest.mark.parametrize(("expected", "rows", "waste"), [(250, 250, 0), (255, 250, 0), (70, 70, 0), (240, 250, 0),
                                                           (300, 250, 5), (0, 0, 0)])
def test_as_many_pages_as_last_time_go_at_once(expected: int, rows: int, waste: int) -> None:
    asked, waves, walk = listing(rows)
    read = [row for body in walk(expected) for row in body["rows"]]
    assert read == list(range(rows))
    assert len(asked) == rows // LIMIT + 1 + waste  # unchanged: not one request more than one walk
    assert len(waves[0]) == min(-(-(expected + 1) // LIMIT), 8)
