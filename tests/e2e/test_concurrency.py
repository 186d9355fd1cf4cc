"""Requests in flight: slices, parallel resources and pages keep every correctness rule.

- sliced and unsliced contact reads load identical tables, records edited during the read included;
- a slice that fails leaves the cursor where it was, and the next run fills the gap;
- with many requests in flight against a distant sandbox, no location goes over its limit;
- with 10 % 5xx and 5 % 429 on every route (token endpoints too), every healthy location of an
  agency loads every record exactly once, run after run.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import duckdb
import pytest

from .conftest import Harness
from .test_chunked_reads import fail_beyond, searches, sorted_truth
from .test_contacts_sync import assert_matches_truth
from .test_oauth import Agency, loaded


def snapshot(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows without dlt's load bookkeeping (ids, load ids differ between runs) and
    without `date_updated`: the two sandboxes apply the same edits, each at its own moment."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with duckdb.connect(str(db), read_only=True) as con:
        for table in ("contacts", "contact_custom_field_values"):
            columns = [c for (c,) in con.execute(
                "select column_name from information_schema.columns where table_schema = 'highlevel' "
                "and table_name = ? and column_name not like '\\_dlt%' escape '\\' and column_name != 'date_updated' "
                "order by column_name",
                [table]).fetchall()]
            out[table] = sorted(con.execute(f"select {', '.join(columns)} from highlevel.{table}").fetchall(), key=repr)
        out["contacts__tags"] = sorted(con.execute(
            "select c.id, t.tag from highlevel.contacts__tags t join highlevel.contacts c "
            "on c._dlt_id = t._dlt_parent_id").fetchall())
    return out


def read_with_edits(factory: Any, tmp_path: Path, slices: int) -> tuple[dict[str, Any], int]:
    # a distant API (200 ms an answer): slices are cut only where they hide latency
    sb = factory(contacts_per_location=(12_500, 40, 20), index_lag_s=0.2, latency_ms=200.0)
    h = Harness(sb, tmp_path)
    # people edit contacts while the read is under way: after the 3rd and the 12th search request
    sb.before_request("/contacts/search", lambda: sb.world.update_contacts(h.big, 40), after=3)
    sb.before_request("/contacts/search", lambda: sb.world.update_contacts(h.big, 40), after=12)
    assert h.run(config={"search_slices": slices}).ok
    sb.wait_for_index()
    assert h.run(config={"search_slices": slices}).ok  # the next run catches what moved during the first
    assert_matches_truth(h, h.big)
    return snapshot(h.db_path), len(searches(h))


def test_sliced_and_unsliced_reads_load_identical_tables(highlevel_sandbox_factory: Any, tmp_path: Path) -> None:
    sliced, sliced_requests = read_with_edits(highlevel_sandbox_factory, tmp_path / "sliced", 16)
    single, single_requests = read_with_edits(highlevel_sandbox_factory, tmp_path / "single", 1)
    assert sliced == single
    assert len(sliced["contacts"]) == 12_500
    assert sliced_requests > single_requests  # the slices did run (each may end on a short page)


def test_a_failed_slice_leaves_the_cursor_and_the_next_run_fills_it(harness: Harness) -> None:
    h = harness
    truth = sorted_truth(h)
    h.sb.set_latency(fixed_ms=200)  # a distant API: the walk goes in slices
    fail_beyond(h, truth[9_000])  # the slices past the 9,000th contact keep failing
    failed = h.run(resources=["contacts"], config={"chunk_rows": 0})
    assert not failed.ok and "contacts" in failed.locations[0].resource_errors
    if h.query("select count(*) from information_schema.tables where table_name = 'contacts'")[0][0]:
        assert h.query("select count(*) from highlevel.contacts") == [(0,)]  # no slice's rows without the rest
    assert h.big not in h.state("contacts").get("cursors", {})  # nothing committed past the hole
    h.sb.faults.clear()
    assert h.run(resources=["contacts"], config={"chunk_rows": 0}).ok
    assert_matches_truth(h, h.big)


def test_many_requests_in_flight_never_take_a_location_over_its_limit(
        highlevel_sandbox_factory: Any, tmp_path: Path) -> None:
    sb = highlevel_sandbox_factory(contacts_per_location=(6_000, 1_500, 1_500, 800, 800, 400), index_lag_s=0.2,
                                   latency_ms=60.0, latency_per_record_ms=0.05)
    h = Harness(sb, tmp_path)
    result = h.run(locations=sb.location_ids, resources=None, config={"max_requests_in_flight": 64})
    assert result.ok, [r.error for r in result.locations if r.error]
    log = sb.requests()
    assert not [r for r in log if r["status"] == 429]
    by_location: dict[str, list[float]] = defaultdict(list)
    for entry in log:
        by_location[entry["location_id"]].append(entry["ts"])
    peak_window, peak_burst = 0, 0
    for stamps in by_location.values():
        stamps.sort()
        lo = burst_lo = 0
        for hi, stamp in enumerate(stamps):
            while stamp - stamps[lo] >= 10.0:
                lo += 1
            while stamp - stamps[burst_lo] >= 0.06:  # arrived within one answer's latency: in flight together
                burst_lo += 1
            peak_window = max(peak_window, hi - lo + 1)
            peak_burst = max(peak_burst, hi - burst_lo + 1)
    assert peak_window <= 100
    assert peak_burst >= 8, "a location's requests were in flight together"
    for location in sb.location_ids:
        assert_matches_truth(h, location)


@pytest.fixture
def agency(highlevel_sandbox_factory: Any, tmp_path: Path) -> Agency:
    sb = highlevel_sandbox_factory(contacts_per_location=(2_500, 300, 200, 120, 80), index_lag_s=0.2)
    made = Agency(sb, tmp_path)
    made.env["SOURCES__HIGHLEVEL__MAX_ATTEMPTS"] = "10"
    made.env["SOURCES__HIGHLEVEL__SWEEP_EVERY_HOURS"] = "0"
    return made


@pytest.mark.slow
def test_faults_on_every_route_cost_no_healthy_location_a_record(agency: Agency) -> None:
    sb = agency.sb
    agency.import_company()
    healthy, suspended, uninstalled = sb.location_ids[:3], sb.location_ids[3], sb.location_ids[4]
    sb.suspend(suspended)
    sb.uninstall(uninstalled)
    # 10 % 5xx and 5 % 429 on every route, the token endpoints included
    sb.faults.set(error_rate=0.15, error_statuses=(500, 502, 503, 504, 429, 429))
    db = agency.tmp / "main.duckdb"
    for round_ in range(4):
        code, out, err = agency.finish(agency.cli("run", "--locations", "all", "--resources",
                                                  "contacts,users,forms,invoices,products"))
        assert code == 1, err  # the suspended location fails; nothing else may
        assert "not active" in out + err
        for loc in healthy:
            ids = [r[0] for r in loaded(db, f"select id from highlevel.contacts where location_id = '{loc}'")]
            assert sorted(ids) == sorted(c["id"] for c in sb.truth_contacts(loc)), f"round {round_} {loc}"
            assert len(ids) == len(set(ids))
            forms = [r[0] for r in loaded(db, f"select id from highlevel.forms where location_id = '{loc}'")]
            assert sorted(forms) == sorted(f["id"] for f in sb.truth(loc, "forms"))
        assert sb.burned_tokens == 0
        sb.world.update_contacts(healthy[0], 60)
        sb.world.create_contacts(healthy[1], 15)
        sb.wait_for_index()
    statuses = [r["status"] for r in sb.requests()]
    # the faults did happen, on data and token routes alike
    assert statuses.count(429) >= 3 and sum(1 for s in statuses if s >= 500) >= 6, Counter(statuses)
    assert any(r["status"] >= 429 for r in sb.requests("/oauth/"))
