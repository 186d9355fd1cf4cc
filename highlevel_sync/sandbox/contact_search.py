"""`POST /contacts/search`: its body grammar (CONTRACT §3.1) and how a query runs on the index.

What the sandbox supports of the real grammar: `range` (gt/gte/lt/lte, ISO strings or epoch ms)
on `dateUpdated`/`dateAdded`, `eq`/`not_eq` on `id`, `query` free text, AND/OR groups, and one
`sort` on `dateUpdated`/`dateAdded`. Anything else is refused with a 422 that says so, instead of
being silently ignored. Limits are the real ones: `pageLimit` 1..500, page numbers only within
the first 10,000 hits, `page` and `searchAfter` never together, unknown body properties refused.

A query whose only filters are ranges on the sort field is answered from the sorted index in
O(log n + page); other filters scan the index in sort order (correct, slower; rare in syncs).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .data import ms_of
from .gateway import ApiFailure, unprocessable
from .index import IndexedRecords, Key, Record

SEARCH_WINDOW = 10_000
MAX_PAGE_LIMIT = 500
MAX_QUERY_LENGTH = 75
DATE_FIELDS = ("dateUpdated", "dateAdded")
TEXT_FIELDS = ("contactName", "firstName", "lastName", "email", "phone", "companyName")
BODY_FIELDS = frozenset({"locationId", "pageLimit", "page", "searchAfter", "query", "filters", "sort"})
DEFAULT_SORT = ("dateAdded", True)  # newest first, when the body has no sort

Predicate = Callable[[Record], bool]
Bounds = tuple[int | None, int | None]


@dataclass
class SearchQuery:
    location_id: str
    limit: int
    sort_field: str = DEFAULT_SORT[0]
    descending: bool = DEFAULT_SORT[1]
    skip: int = 0
    after: Key | None = None
    bounds: Bounds = (None, None)  # range on the sort field (from top-level filters)
    predicates: list[Predicate] = field(default_factory=list)  # every other condition


def parse(body: Any) -> SearchQuery:
    """Validate a search body the way the API does and turn it into a query."""
    if not isinstance(body, dict):
        raise unprocessable("body must be a JSON object")
    unknown = sorted(set(body) - BODY_FIELDS)
    if unknown:
        raise unprocessable(*(f"property {name} should not exist" for name in unknown))
    missing = [message for key, message in (("locationId", "locationId should not be empty"),
                                            ("pageLimit", "pageLimit must be a number"))
               if body.get(key) in (None, "")]
    if missing:
        raise unprocessable(*missing)
    if not isinstance(body["locationId"], str):
        raise unprocessable("locationId must be a string")
    limit = _integer(body["pageLimit"], "pageLimit")
    if limit > MAX_PAGE_LIMIT:
        raise unprocessable(f"pageLimit must not be greater than {MAX_PAGE_LIMIT}")
    if limit < 1:
        raise unprocessable("pageLimit must not be less than 1")
    query = SearchQuery(body["locationId"], limit)
    _parse_sort(body.get("sort"), query)
    _parse_paging(body.get("page"), body.get("searchAfter"), query)
    ranges, predicates = _top_level(body.get("filters"), query.sort_field)
    query.bounds = ranges
    query.predicates = predicates
    text = body.get("query")
    if text is not None and text != "":
        if not isinstance(text, str):
            raise unprocessable("query must be a string")
        if len(text) > MAX_QUERY_LENGTH:
            raise unprocessable(f"query must be shorter than or equal to {MAX_QUERY_LENGTH} characters")
        query.predicates.append(text_predicate(text))
    return query


def run(index: IndexedRecords, query: SearchQuery) -> tuple[list[Key], int]:
    """The page of keys and the query's total (all matches, whatever the cursor)."""
    lo, hi = query.bounds
    if not query.predicates:
        return index.window(query.sort_field, query.descending, lo, hi, query.after, query.limit, query.skip)
    matched = [key for key in index.scan(query.sort_field, query.descending, lo, hi)
               if all(p(index.visible[key[1]]) for p in query.predicates)]
    start = query.skip
    if query.after is not None:
        if query.descending:  # matched is descending: first key below the cursor
            start = len(matched) - bisect.bisect_left(matched[::-1], query.after)
        else:
            start = bisect.bisect_right(matched, query.after)
    return matched[start:start + query.limit], len(matched)


def text_predicate(text: str) -> Predicate:
    """Free-text `query`: case-insensitive substring of the name, email, phone or company."""
    needle = text.lower()
    return lambda r: any(needle in str(r.get(f) or "").lower() for f in TEXT_FIELDS)


# -- parts of the body --------------------------------------------------------------------------

def _integer(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise unprocessable(f"{name} must be a number conforming to the specified constraints")
    return int(value)


def _parse_sort(sort: Any, query: SearchQuery) -> None:
    if sort is None or sort == []:
        return
    if not isinstance(sort, list) or not all(isinstance(item, dict) for item in sort):
        raise unprocessable("sort must be an array of {field, direction} objects")
    if len(sort) > 1:
        raise unprocessable("the sandbox sorts on one field; send a single sort entry")
    name, direction = sort[0].get("field"), str(sort[0].get("direction", "asc")).lower()
    if name not in DATE_FIELDS:
        raise unprocessable(f"sort field {name!r} is not supported by the sandbox (use dateUpdated or dateAdded)")
    if direction not in ("asc", "desc"):
        raise unprocessable("sort direction must be one of the following values: asc, desc")
    query.sort_field, query.descending = name, direction == "desc"


def _parse_paging(page: Any, after: Any, query: SearchQuery) -> None:
    if page is not None and after is not None:
        raise unprocessable("page and searchAfter cannot be used together; use searchAfter alone")
    if page is not None:
        number = _integer(page, "page")
        if number < 1:
            raise unprocessable("page must not be less than 1")
        if number * query.limit > SEARCH_WINDOW:
            raise ApiFailure(400, f"Result window is too large, page * pageLimit must be less than or equal to "
                             f"{SEARCH_WINDOW}. Use searchAfter to page deeper.")
        query.skip = (number - 1) * query.limit
    if after is not None:
        valid = (isinstance(after, list) and len(after) == 2 and isinstance(after[0], int | float)
                 and not isinstance(after[0], bool) and isinstance(after[1], str))
        if not valid:
            raise unprocessable("searchAfter must be the searchAfter array of the last contact of the previous page")
        query.after = (int(after[0]), after[1])


def _top_level(filters: Any, sort_field: str) -> tuple[Bounds, list[Predicate]]:
    """Top-level filters are ANDed: ranges on the sort field narrow the index window, the rest
    become predicates."""
    lo: int | None = None
    hi: int | None = None
    predicates: list[Predicate] = []
    for item in _filter_list(filters, "filters"):
        if item.get("field") == sort_field and item.get("operator") == "range" and "group" not in item:
            first, last = _range(item)
            lo = first if lo is None or (first is not None and first > lo) else lo
            hi = last if hi is None or (last is not None and last < hi) else hi
        else:
            predicates.append(_predicate(item))
    return (lo, hi), predicates


def _filter_list(filters: Any, where: str) -> list[dict[str, Any]]:
    if filters is None:
        return []
    if not isinstance(filters, list) or not all(isinstance(item, dict) for item in filters):
        raise unprocessable(f"{where} must be an array of filter objects")
    return filters


def _predicate(item: dict[str, Any]) -> Predicate:
    if "group" in item:
        group = item["group"]
        if group not in ("AND", "OR"):
            raise unprocessable("group must be one of the following values: AND, OR")
        parts = [_predicate(sub) for sub in _filter_list(item.get("filters"), "group filters")]
        if not parts:
            raise unprocessable("a filter group needs at least one filter")
        if group == "AND":
            return lambda r: all(p(r) for p in parts)
        return lambda r: any(p(r) for p in parts)
    name, operator, value = item.get("field"), item.get("operator"), item.get("value")
    if name in DATE_FIELDS and operator == "range":
        lo, hi = _range(item)
        return lambda r: (lo is None or ms_of(r[name]) >= lo) and (hi is None or ms_of(r[name]) <= hi)
    if name == "id" and operator in ("eq", "not_eq"):
        wanted = set(value) if isinstance(value, list) else {str(value)}
        return (lambda r: r["id"] in wanted) if operator == "eq" else (lambda r: r["id"] not in wanted)
    raise unprocessable(f"filter on field {name!r} with operator {operator!r} is not supported by the sandbox "
                        "(supported: dateUpdated/dateAdded range, id eq/not_eq)")


def _range(item: dict[str, Any]) -> Bounds:
    """A range filter's inclusive bounds in epoch ms."""
    value, name = item.get("value"), item.get("field")
    if not isinstance(value, dict) or not value:
        raise unprocessable(f"range filter on {name} needs a value object with gt, gte, lt or lte")
    lo: int | None = None
    hi: int | None = None
    for op, raw in value.items():
        bound = _instant(raw, name)
        if op in ("gt", "gte"):
            bound += 1 if op == "gt" else 0
            lo = bound if lo is None else max(lo, bound)
        elif op in ("lt", "lte"):
            bound -= 1 if op == "lt" else 0
            hi = bound if hi is None else min(hi, bound)
        else:
            raise unprocessable(f"range operator {op!r} is not one of gt, gte, lt, lte")
    return lo, hi


def _instant(raw: Any, name: Any) -> int:
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return int(raw)
    if isinstance(raw, str):
        try:
            return ms_of(raw)
        except ValueError:
            pass
    raise unprocessable(f"{name} range values must be ISO-8601 dates or epoch milliseconds")
