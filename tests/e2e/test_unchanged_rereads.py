"""Resources without a change filter are re-read every run; what did not change is not loaded again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .conftest import Harness

REREAD = ["pipelines", "calendars", "appointments", "custom_fields", "users", "locations"]


@pytest.fixture
def small(highlevel_sandbox_factory: Any, tmp_path: Path) -> Harness:
    return Harness(highlevel_sandbox_factory(contacts_per_location=(50, 20), index_lag_s=0.2), tmp_path)


def loads(h: Harness, table: str) -> int:
    return int(h.query(f"select count(distinct _dlt_load_id) from highlevel.{table}")[0][0])


@pytest.mark.parametrize("held_items", [None, 1], ids=["held-until-digest", "spilled-while-read"])
def test_an_unchanged_reread_loads_nothing_and_a_change_loads_again(small: Harness, held_items: int | None,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # a re-read's items wait unserialized until its digest is known, up to HELD_ITEMS of them; past
    # that they go to the spill buffer as they come: either way the same rows load
    if held_items is not None:
        monkeypatch.setattr("highlevel_sync.fetch.HELD_ITEMS", held_items)
    h = small
    locations = h.sb.location_ids
    for _ in range(2):  # the first run backfills appointments, the second reads the rolling window
        assert h.run(locations=locations, resources=REREAD).ok
    before = {table: h.query(f"select count(*) from highlevel.{table}")[0][0] for table in REREAD}

    quiet = h.run(locations=locations, resources=REREAD)
    assert quiet.ok
    assert all(not loc.rows for loc in quiet.locations), [loc.rows for loc in quiet.locations]
    assert {table: h.query(f"select count(*) from highlevel.{table}")[0][0] for table in REREAD} == before
    assert sum(loc.stats.requests for loc in quiet.locations) > 0  # it did read everything

    calendar_id, appointment_ids = h.sb.add_calendar(locations[1], 3)
    changed = h.run(locations=locations, resources=REREAD)
    assert changed.ok
    by_id = {loc.location_id: loc for loc in changed.locations}
    assert not by_id[locations[0]].rows  # the other location: still nothing to load
    assert by_id[locations[1]].rows["calendars"] == len(h.sb.truth(locations[1], "calendars"))
    loaded = {r[0] for r in h.query("select id from highlevel.calendars where location_id = ?", locations[1])}
    assert calendar_id in loaded
    got = {r[0] for r in h.query("select id from highlevel.appointments where location_id = ?", locations[1])}
    assert set(appointment_ids) <= got

    # --full-refresh trusts nothing it remembers
    full = h.run(locations=locations, resources=REREAD, full_refresh=True)
    assert all(loc.rows.get("users") for loc in full.locations)
