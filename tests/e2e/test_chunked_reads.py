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
    result = h.run(resources=["contacts"], config={"chunk_rows": 5_000})
    assert result.ok, result.locations[0].error
    assert_matches_truth(h, h.big)
    # the same pages as one unchunked read: full pages, then the empty one that ends the walk
    assert h.search_requests(h.big) == total // PAGE + 1
    # three extracts and loads, one per chunk
    loads = h.query("select count(distinct _dlt_load_id) from highlevel.contacts")
    assert loads == [(3,)]
    state = contacts_state(h)
    assert state.get("resume", {}) == {}
    assert state["cursors"][h.big] == sorted_truth(h)[-1]["dateUpdated"].replace("+00:00", "Z")


def test_a_read_that_fails_mid_way_keeps_its_loaded_chunks_and_the_next_run_continues(harness: Harness) -> None:
    h = harness
    truth = sorted_truth(h)
    # the 11th search page (the first of the second chunk) fails past every retry
    h.sb.faults.fail_next(6, 500, "/contacts/search", after=10)
    failed = h.run(resources=["contacts"], config={"chunk_rows": 5_000})
    assert not failed.ok
    assert "contacts" in failed.locations[0].resource_errors
    assert h.contact_ids() == sorted(c["id"] for c in truth[:5_000])
    resume = contacts_state(h)["resume"][h.big]
    assert resume["after"] == [epoch_ms(truth[4_999]["dateUpdated"]), truth[4_999]["id"]]
    assert resume["read"] == 5_000
    status = format_status(collect_status(dlt.attach("highlevel", pipelines_dir=str(h.pipelines_dir))))
    assert f"location {h.big} contacts: a chunked read stopped after 5,000 rows; the next run continues it" in status

    h.sb.clear_requests()
    assert h.run(resources=["contacts"], config={"chunk_rows": 5_000}).ok
    assert_matches_truth(h, h.big)
    assert h.query("select count(*) from highlevel.contacts") == [(len(truth),)]  # no duplicates
    first = h.sb.requests("/contacts/search")[0]
    assert first["body"]["searchAfter"] == resume["after"]  # continued, not restarted
    assert h.search_requests(h.big) == len(truth) // PAGE + 1 - 10
    assert contacts_state(h).get("resume", {}) == {}


def test_changes_during_a_chunked_read_are_caught(harness: Harness) -> None:
    h = harness
    h.sb.faults.fail_next(6, 500, "/contacts/search", after=10)
    assert not h.run(resources=["contacts"], config={"chunk_rows": 5_000}).ok
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
    h.sb.faults.fail_next(6, 500, "/contacts/search", after=10)
    assert not h.run(resources=["contacts"], config={"chunk_rows": 5_000}).ok
    h.sb.clear_requests()
    assert h.run(resources=["contacts"], config={"chunk_rows": 5_000}, full_refresh=True).ok
    assert "searchAfter" not in h.sb.requests("/contacts/search")[0]["body"]  # read from the start
    assert h.search_requests(h.big) == len(h.sb.truth_contacts(h.big)) // PAGE + 1
    assert_matches_truth(h, h.big)
