"""Contacts from the sandbox into DuckDB: complete, exact, incremental, cheap when nothing changed."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from .conftest import Harness


def epoch_ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(UTC).timestamp() * 1000)


def loaded_contacts(h: Harness, location_id: str) -> dict[str, dict[str, Any]]:
    rows = h.query(
        "select id, first_name, last_name, email, phone, dnd, epoch_ms(date_added), epoch_ms(date_updated) "
        "from highlevel.contacts where location_id = ?", location_id)
    return {r[0]: {"firstName": r[1], "lastName": r[2], "email": r[3], "phone": r[4], "dnd": r[5],
                   "dateAdded": r[6], "dateUpdated": r[7]} for r in rows}


def loaded_tags(h: Harness, location_id: str) -> dict[str, list[str]]:
    tags: dict[str, list[str]] = {}
    for contact_id, tag in h.query(
            "select contact_id, tag from highlevel.contacts__tags t join highlevel.contacts c "
            "on t._dlt_parent_id = c._dlt_id where c.location_id = ? and t.location_id = ?", location_id, location_id):
        tags.setdefault(contact_id, []).append(tag)
    return {k: sorted(v) for k, v in tags.items()}


def loaded_values(h: Harness, location_id: str) -> dict[tuple[str, str], tuple[Any, ...]]:
    rows = h.query(
        "select contact_id, field_id, value, value_number, epoch_ms(value_timestamp), value_json "
        "from highlevel.contact_custom_field_values where location_id = ?", location_id)
    return {(r[0], r[1]): r[2:] for r in rows}


def assert_matches_truth(h: Harness, location_id: str) -> None:
    truth = h.sb.truth_contacts(location_id)
    loaded = loaded_contacts(h, location_id)
    assert sorted(loaded) == sorted(c["id"] for c in truth)
    tags = loaded_tags(h, location_id)
    values = loaded_values(h, location_id)
    expected_value_keys = set()
    for contact in truth:
        row = loaded[contact["id"]]
        for field in ("firstName", "lastName", "email", "phone", "dnd"):
            assert row[field] == contact.get(field), (contact["id"], field)
        assert row["dateAdded"] == epoch_ms(contact["dateAdded"])
        assert row["dateUpdated"] == epoch_ms(contact["dateUpdated"])
        assert tags.get(contact["id"], []) == sorted(contact.get("tags") or [])
        for item in contact.get("customFields") or []:
            key = (contact["id"], item["id"])
            expected_value_keys.add(key)
            text, number, stamp, as_json = values[key]
            raw = item["value"]
            if isinstance(raw, list | dict):
                assert json.loads(as_json) == raw
            elif isinstance(raw, bool):
                assert text == json.dumps(raw)
            elif isinstance(raw, int | float):
                assert number == float(raw) or stamp == raw, key  # NUMERICAL or DATE (epoch ms)
            else:
                assert text == raw, key
    assert set(values) == expected_value_keys  # nothing stale, nothing extra


def test_full_load_equals_ground_truth_beyond_the_10k_window(harness: Harness) -> None:
    harness.sb.set_latency(fixed_ms=200)  # a distant API: the walk goes in time slices (slices.py)
    result = harness.run(locations=harness.sb.location_ids)
    assert result.ok, [r.error for r in result.locations]
    assert len(harness.contact_ids()) == 12_500
    for location_id in harness.sb.location_ids:
        assert_matches_truth(harness, location_id)
    (count, distinct), = harness.query("select count(*), count(distinct id) from highlevel.contacts")
    assert count == distinct == 12_500 + 300 + 40
    # the small dimensions, each location's rows side by side
    assert harness.query("select count(distinct location_id) from highlevel.users") == [(3,)]
    assert {r[0] for r in harness.query("select id from highlevel.locations")} == set(harness.sb.location_ids)
    truth_fields = {f["id"] for loc in harness.sb.location_ids for f in harness.sb.truth_custom_fields(loc, "all")}
    loaded_fields = harness.query("select id from highlevel.custom_fields where model in ('contact', 'opportunity')")
    assert {r[0] for r in loaded_fields} == truth_fields  # (custom objects' fields are rows of their own)
    # no page-number paging: every search after the first page used searchAfter
    searches = harness.sb.requests("/contacts/search")
    assert all("page" not in (r["body"] or {}) for r in searches)
    # 12,500 = 25 full pages. The walk goes in time slices side by side (slices.py): each slice
    # starts without a searchAfter marker (but the first, which continues the first page) and ends
    # with a short (or empty) page, so a slice costs at most one request more than its full pages
    big = [r for r in searches if r["location_id"] == harness.big]
    slices = sum(1 for r in big if "searchAfter" not in (r["body"] or {})) - 1  # less the very first page
    assert slices >= 2, "a 12,500-contact walk is read in slices"
    assert 26 <= len(big) <= 26 + slices


def test_next_run_picks_up_exactly_the_changes(harness: Harness) -> None:
    assert harness.run().ok
    cursor = max(epoch_ms(c["dateUpdated"]) for c in harness.sb.truth_contacts(harness.big))
    updated = harness.sb.update_contacts(harness.big, 50)
    created = harness.sb.create_contacts(harness.big, 30)
    harness.sb.wait_for_index()
    result = harness.run()
    assert result.ok
    # the changes, plus the untouched contacts of the 5-minute overlap behind the previous cursor
    overlap = {c["id"] for c in harness.sb.truth_contacts(harness.big)
               if epoch_ms(c["dateUpdated"]) >= cursor - 5 * 60_000} - set(updated) - set(created)
    assert len(overlap) < 10
    assert result.locations[0].rows["contacts"] == 80 + len(overlap)
    assert set(updated) | set(created) <= set(harness.contact_ids())
    assert harness.query("select count(*) - count(distinct id) from highlevel.contacts") == [(0,)]
    assert_matches_truth(harness, harness.big)


def test_a_change_inside_the_index_lag_is_caught_by_the_next_run(small_harness: Harness) -> None:
    h = small_harness
    assert h.run().ok
    # made while the search index has not caught up: invisible to this run...
    h.sb.update_contacts(h.big, 5)
    created = h.sb.create_contacts(h.big, 3)
    assert h.run().ok
    assert not set(created) <= set(h.contact_ids())
    # ... but the overlap window brings them in on the next one
    h.sb.wait_for_index()
    assert h.run().ok
    assert_matches_truth(h, h.big)


def test_a_run_without_upstream_changes_costs_at_most_two_searches(small_harness: Harness) -> None:
    h = small_harness
    locations = h.sb.location_ids
    assert h.run(locations=locations).ok
    h.sb.clear_requests()
    result = h.run(locations=locations)
    assert result.ok
    for location_id in locations:
        assert h.search_requests(location_id) <= 2
    # only the few contacts inside the overlap window are re-read, and merged without duplicates
    assert result.rows_by_table().get("contacts", 0) < 10
    assert h.query("select count(*) - count(distinct id) from highlevel.contacts") == [(0,)]


def test_removed_custom_values_and_tags_are_replaced_not_accumulated(small_harness: Harness) -> None:
    h = small_harness
    assert h.run().ok
    for _ in range(4):  # the sandbox sometimes strips all values or tags of an updated contact
        h.sb.update_contacts(h.big, 40)
    h.sb.wait_for_index()
    assert h.run().ok
    assert_matches_truth(h, h.big)


def test_injected_429_and_5xx_still_give_a_complete_load(small_harness: Harness) -> None:
    h = small_harness
    h.sb.faults.set(error_rate=0.25)
    result = h.run(locations=h.sb.location_ids)
    h.sb.faults.clear()
    assert result.ok, [r.error for r in result.locations]
    assert sum(r.stats.retries for r in result.locations) > 0
    for location_id in h.sb.location_ids:
        assert_matches_truth(h, location_id)


def test_backfill_window_loads_only_its_range_and_keeps_cursors(small_harness: Harness) -> None:
    h = small_harness
    truth = h.sb.truth_contacts(h.big)
    stamps = sorted(epoch_ms(c["dateUpdated"]) for c in truth)
    start, end = stamps[100], stamps[300]
    as_dt = [datetime.fromtimestamp(s / 1000, tz=UTC) for s in (start, end)]
    assert h.run(start_date=as_dt[0], end_date=as_dt[1]).ok
    expected = sorted(c["id"] for c in truth if start <= epoch_ms(c["dateUpdated"]) <= end)
    assert h.contact_ids() == expected
    # the window did not set a cursor: a normal run now reads everything
    assert h.run().ok
    assert h.contact_ids() == h.truth_ids()
