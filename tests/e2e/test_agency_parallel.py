"""An agency's locations side by side: each at its own budget, a failure costs only its owner.

30 sub-accounts under HighLevel's real limit (100 requests / 10 s per location), every resource.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from .conftest import Harness

LOCATIONS = 30
ALL = ["contacts", "opportunities", "pipelines", "conversations", "messages", "calendars", "appointments",
       "custom_fields", "users", "locations"]


@pytest.fixture
def agency(highlevel_sandbox_factory: Any, tmp_path: Path) -> Harness:
    sb = highlevel_sandbox_factory(contacts_per_location=(1_600,) + (40,) * (LOCATIONS - 1), index_lag_s=0.2,
                                   appointments_per_calendar=5)
    return Harness(sb, tmp_path)


def windows_over_limit(log: list[dict[str, Any]], limit: int = 100, interval_s: float = 10.0) -> dict[str, int]:
    """Per location, the most requests the server saw in any `interval_s` window, where above `limit`."""
    times: dict[str, list[float]] = defaultdict(list)
    for entry in log:
        if entry.get("location_id"):
            times[entry["location_id"]].append(entry["ts"])
    over = {}
    for location, stamps in times.items():
        stamps.sort()
        start, most = 0, 0
        for end, stamp in enumerate(stamps):
            while stamp - stamps[start] >= interval_s:
                start += 1
            most = max(most, end - start + 1)
        if most > limit:
            over[location] = most
    return over


def test_a_location_failing_mid_run_costs_the_others_nothing(agency: Harness) -> None:
    h = agency
    locations = h.sb.location_ids
    failing = locations[7]
    # its contacts read fails after two pages, each of its 3 attempts
    h.sb.faults.fail_next(3, 503, path_prefix="/contacts/search", after=2, location_id=failing)
    result = h.run(locations=locations, resources=ALL, config={"contacts_page_size": 10, "max_attempts": 3,
                                                                "max_parallel_locations": 8})

    by_id = {loc.location_id: loc for loc in result.locations}
    assert sorted(by_id) == sorted(locations)
    assert [loc.location_id for loc in result.locations if not loc.ok] == [failing]
    assert "contacts" in by_id[failing].resource_errors and "503" in by_id[failing].error
    for location in locations:
        loaded = h.contact_ids(location)
        assert len(loaded) == len(set(loaded))  # exactly once
        if location != failing:
            assert loaded == h.truth_ids(location)
            opportunities = h.query("select count(*), count(distinct id) from highlevel.opportunities "
                                    "where location_id = ?", location)[0]
            assert opportunities[0] == opportunities[1] == len(h.sb.truth(location, "opportunities"))
    # the failed read committed nothing, the failing location's other resources did
    assert h.contact_ids(failing) == []
    assert h.query("select count(*) from highlevel.users where location_id = ?", failing)[0][0] > 0
    state = h.state("contacts")
    assert failing not in state.get("cursors", {}) and locations[0] in state["cursors"]

    log = h.sb.requests()
    assert windows_over_limit(log) == {}
    assert not [e for e in log if e["status"] == 429]
    # side by side: the big location's requests overlap the small ones' in time
    big = [e["ts"] for e in log if e.get("location_id") == locations[0]]
    others = [e["ts"] for e in log if e.get("location_id") in locations[1:]]
    assert min(others) < max(big) and max(others) > min(big)

    # the next run catches the failed location up; nothing is duplicated anywhere
    again = h.run(locations=locations, resources=ALL, config={"contacts_page_size": 10})
    assert again.ok, [loc.error for loc in again.locations if not loc.ok]
    assert h.contact_ids(failing) == h.truth_ids(failing)
    assert h.query("select count(*) - count(distinct id) from highlevel.contacts")[0][0] == 0
