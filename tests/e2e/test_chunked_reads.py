"""A long contacts read goes in chunks: each is loaded and its position committed before the next.

Chunks keep memory flat on big locations and let a run killed late in a backfill continue where
it stopped instead of re-reading everything.
"""

from __future__ import annotations

from typing import Any

import dlt

from highlevel_sync.status import collect_status, format_status

from .conftest import Harness
from .test_contacts_sync import assert_matches_truth, epoch_ms

PAGE = 500


def fail_beyond(h: Harness, row: dict[str, Any]) -> None:
    """Every contacts search that starts past `row` (by its searchAfter marker or its time slice)
    fails, past every retry, until the faults are cleared: the part of the walk after that row
    cannot be read, in whatever order concurrent slices ask for it."""
    limit = epoch_ms(row["dateUpdated"])

    def beyond(path: str, body: Any) -> bool:
        if not path.startswith("/contacts/search") or not isinstance(body, dict):
            return False
        marker = body.get("searchAfter") or [None]
        ranges = [f["value"] for f in body.get("filters", []) if f.get("field") == "dateUpdated"]
        starts = [marker[0], *(epoch_ms(r["gte"]) for r in ranges if r.get("gte"))]
        return any(isinstance(start, int) and start > limit for start in starts)

    h.sb.faults.fail_when(500, beyond)


def searches(h: Harness) -> list[dict[str, Any]]:
    return [r for r in h.sb.requests("/contacts/search") if r["location_id"] == h.big]


def slice_overhead(requests: list[dict[str, Any]]) -> int:
    """How many time slices beyond the first a walk used: each may end on one short page."""
    return max(0, sum(1 for r in requests if "searchAfter" not in (r["body"] or {})) - 1)


def contacts_state(h: Harness) -> dict[str, Any]:
    pipeline = dlt.attach("highlevel", pipelines_dir=str(h.pipelines_dir))
    state: dict[str, Any] = pipeline.state["sources"]["highlevel"]["resources"]["contacts"]
    return state


def sorted_truth(h: Harness) -> list[dict[str, Any]]:
    """Contacts in the order the search returns them: dateUpdated, then id."""
    return sorted(h.sb.truth_contacts(h.big), key=lambda c: (epoch_ms(c["dateUpdated"]), c["id"]))


def test_a_chunked_full_load_is_exact_and_costs_no_extra_request(harness: Harness) -> None:
    h = harness
    total = len(h.sb.truth_contacts(h.big))  # 12,500: three chunks of 5,000
    h.sb.set_latency(fixed_ms=200)  # a distant API: the walk goes in time slices (slices.py)
    result = h.run(resources=["contacts"], config={"chunk_rows": 5_000})
    assert result.ok, result.locations[0].error
    assert_matches_truth(h, h.big)
    # the same pages as one unchunked read: the walk's time slices (slices.py) go on fetching across
    # chunk cuts, so no page is fetched twice; each slice ends with at most one short (or empty) page
    walked = searches(h)
    assert slice_overhead(walked) >= 2
    assert total // PAGE + 1 <= len(walked) <= total // PAGE + 1 + slice_overhead(walked)
    assert len({repr(r["body"]) for r in walked}) == len(walked), "no request sent twice"
    # three extracts and loads, one per chunk
    loads = h.query("select count(distinct _dlt_load_id) from highlevel.contacts")
    assert loads == [(3,)]
    state = contacts_state(h)
    assert state.get("resume", {}) == {}
    assert state["cursors"][h.big] == sorted_truth(h)[-1]["dateUpdated"].replace("+00:00", "Z")


def test_a_read_that_fails_mid_way_keeps_its_loaded_chunks_and_the_next_run_continues(harness: Harness) -> None:
    h = harness
    truth = sorted_truth(h)
    # the walk cannot get past the 7,500th contact: the second chunk (5,000 to 9,999) fails
    fail_beyond(h, truth[7_500])
    failed = h.run(resources=["contacts"], config={"chunk_rows": 5_000})
    assert not failed.ok
    assert "contacts" in failed.locations[0].resource_errors
    # the first chunk is loaded: a prefix of the walk, cut at the first full page past 5,000 rows
    # (a time slice may end on a short page, which is no place to cut)
    loaded = len(h.contact_ids())
    assert 5_000 <= loaded < 7_500
    assert h.contact_ids() == sorted(c["id"] for c in truth[:loaded])
    resume = contacts_state(h)["resume"][h.big]
    assert resume["after"] == [epoch_ms(truth[loaded - 1]["dateUpdated"]), truth[loaded - 1]["id"]]
    assert resume["read"] == loaded
    status = format_status(collect_status(dlt.attach("highlevel", pipelines_dir=str(h.pipelines_dir))))
    assert f"location {h.big} contacts: a chunked read stopped after {loaded:,} rows; the next run continues it" \
        in status

    h.sb.faults.clear()
    h.sb.clear_requests()
    assert h.run(resources=["contacts"], config={"chunk_rows": 5_000}).ok
    assert_matches_truth(h, h.big)
    assert h.query("select count(*) from highlevel.contacts") == [(len(truth),)]  # no duplicates
    first = h.sb.requests("/contacts/search")[0]
    assert first["body"]["searchAfter"] == resume["after"]  # continued, not restarted
    again = searches(h)
    rest = -(-(len(truth) - loaded) // PAGE)  # the pages after the resume point
    assert rest <= len(again) <= rest + 1 + slice_overhead(again)
    assert contacts_state(h).get("resume", {}) == {}


def test_changes_during_a_chunked_read_are_caught(harness: Harness) -> None:
    h = harness
    fail_beyond(h, sorted_truth(h)[7_500])
    assert not h.run(resources=["contacts"], config={"chunk_rows": 5_000}).ok
    h.sb.faults.clear()
    # contacts change between the failed run and the next: some were already loaded, some not
    changed = h.sb.update_contacts(h.big, 40)
    created = h.sb.create_contacts(h.big, 10)
    h.sb.wait_for_index()
    assert h.run(resources=["contacts"], config={"chunk_rows": 5_000}).ok
    assert_matches_truth(h, h.big)
    assert set(changed) | set(created) <= set(h.contact_ids())
    # and the following incremental run starts from the cursor, not from the old chunk position
    h.sb.clear_requests()
    assert h.run(resources=["contacts"], config={"chunk_rows": 5_000}).ok
    assert h.search_requests(h.big) <= 2


def test_a_full_refresh_does_not_continue_an_older_runs_chunks(harness: Harness) -> None:
    h = harness
    fail_beyond(h, sorted_truth(h)[7_500])
    assert not h.run(resources=["contacts"], config={"chunk_rows": 5_000}).ok
    h.sb.faults.clear()
    h.sb.clear_requests()
    assert h.run(resources=["contacts"], config={"chunk_rows": 5_000}, full_refresh=True).ok
    assert "searchAfter" not in h.sb.requests("/contacts/search")[0]["body"]  # read from the start
    full = len(h.sb.truth_contacts(h.big)) // PAGE + 1
    assert full <= len(searches(h)) <= full + slice_overhead(searches(h))
    assert_matches_truth(h, h.big)
