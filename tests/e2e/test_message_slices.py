"""A location's first read of messages goes in creation-time slices side by side (the export's
cursor would otherwise chain every page behind the one before, a page's latency per 500 messages).

Which field the export's `startDate`/`endDate` filter is unconfirmed (CONTRACT §9): the first read
must load every message exactly once whether the API filters creation time, update time or
nothing, and the next run must go on from it incrementally.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .conftest import Harness

MESSAGES = ["messages"]


def export_requests(h: Harness) -> list[dict[str, Any]]:
    return h.sb.requests("/conversations/messages/export")


def loaded_messages(h: Harness) -> list[tuple[str, str]]:
    return h.query("select id, status from highlevel.messages where location_id = ? order by id", h.big)


def truth(h: Harness) -> list[tuple[str, str]]:
    return sorted((m["id"], m["status"]) for m in h.sb.truth(h.big, "messages"))


@pytest.mark.parametrize("filtered", ["dateAdded", "dateUpdated", None])
def test_a_first_read_of_messages_is_whole_whatever_the_export_filters(
        highlevel_sandbox_factory: Any, tmp_path: Path, filtered: str | None) -> None:
    # a distant API (200 ms an answer) and 14,000 messages: the non-email pass is cut into slices
    sb = highlevel_sandbox_factory(contacts_per_location=(2_000,), conversations_per_location=(1_000,),
                                   messages_per_conversation=14, latency_ms=200.0,
                                   message_export_date_field=filtered)
    h = Harness(sb, tmp_path)
    # the oldest 3,000 were read since: updated now, created long ago (an update-time filter
    # puts them in the newest slice, where their creation time is far below its range)
    read = set(sb.read_messages(h.big, 3_000))

    result = h.run(resources=MESSAGES)

    assert result.ok, result.locations[0].error
    assert loaded_messages(h) == truth(h)  # every message once, with its latest status
    assert h.query("select count(*) = count(distinct id) from highlevel.messages") == [(True,)]
    assert {m for m, status in loaded_messages(h) if status == "read"} == read
    non_email = [r for r in export_requests(h) if "channel" not in r["query"]]
    sliced = [i for i, r in enumerate(non_email) if "startDate" in r["query"] or "endDate" in r["query"]]
    assert sliced  # the read was cut into slices, whatever came of them
    unfiltered_after_slices = [r for r in non_email[sliced[0]:]
                               if "startDate" not in r["query"] and "endDate" not in r["query"]]
    if filtered == "dateAdded":
        assert not unfiltered_after_slices  # the slices held: no walk over everything again
    else:
        assert unfiltered_after_slices  # the filter was not on creation time: one walk read it all

    # the next run goes on from the first read's newest update, newest first, and stops below the
    # cursor minus the overlap (5 min: the 3,000 read just now come again, 6 pages and a bit)
    first_read = len(export_requests(h))
    new = set(sb.add_messages(h.big, ["SMS", "Email"]))
    sb.clear_requests()
    assert h.run(resources=MESSAGES).ok
    assert loaded_messages(h) == truth(h)
    assert new <= {m for m, _ in loaded_messages(h)}
    assert all(r["query"]["sortBy"] == "updatedAt" and "startDate" not in r["query"] for r in export_requests(h))
    assert len(export_requests(h)) <= 9 < first_read
