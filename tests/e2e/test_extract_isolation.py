"""Several locations share one extract; when it fails, each location is extracted on its own, so the
location whose data breaks the extract is the only one that loses the run.

What breaks an extract here is a read whose items raise while dlt replays them (in production: a
payload dlt cannot take, a disk error while spilling). The read itself succeeded, so only the
extract's per-location retry can isolate it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import highlevel_sync.sync as sync
from sources.highlevel import FetchedItems

from .conftest import Harness

RESOURCES = ["contacts", "custom_fields", "users", "locations"]


@pytest.fixture
def three(highlevel_sandbox_factory: Any, tmp_path: Path) -> Harness:
    return Harness(highlevel_sandbox_factory(contacts_per_location=(120, 80, 60), index_lag_s=0.2), tmp_path)


def _poisoned(items: Iterable[Any]) -> Iterator[Any]:
    """The first item, then the failure: the extract has begun writing when it breaks."""
    for item in items:
        yield item
        break
    raise OSError("spill file unreadable")


def test_a_location_whose_data_breaks_the_extract_fails_alone(three: Harness, monkeypatch: Any) -> None:
    h = three
    locations = h.sb.location_ids
    bad = locations[1]
    extracts: list[set[str]] = []

    def fetched(resource: str, location_id: str, items: Iterable[Any], state: dict[str, Any],
                known: dict[str, set[str]] | None = None) -> FetchedItems:
        part = FetchedItems(resource, location_id, items, state, known or {})
        if location_id == bad and resource == "contacts":
            return replace(part, items=_poisoned(items))
        return part

    real_source = sync._source

    def source(units: list[Any]) -> Any:
        extracts.append({unit.run.location_id for unit in units})
        return real_source(units)

    monkeypatch.setattr(sync, "FetchedItems", fetched)
    monkeypatch.setattr(sync, "_source", source)
    # every read of all three locations lands in one batch, so they share one extract first
    result = h.run(locations=locations, resources=RESOURCES, config={"chunk_rows": 100_000})

    by_id = {loc.location_id: loc for loc in result.locations}
    assert not by_id[bad].ok
    assert by_id[bad].error.startswith("extracting its data failed") and "spill file unreadable" in by_id[bad].error
    assert [loc for loc in locations if by_id[loc].ok] == [locations[0], locations[2]]
    # one shared extract, then one per location after it failed
    assert extracts[0] == set(locations) and {frozenset(e) for e in extracts[1:]} >= {frozenset({bad})}
    for location in (locations[0], locations[2]):
        assert h.contact_ids(location) == h.truth_ids(location)
    # the failed location committed neither rows nor cursors, so nothing it read is skipped later
    assert h.contact_ids(bad) == []
    assert bad not in h.state("contacts").get("cursors", {})
    assert locations[0] in h.state("contacts")["cursors"]

    monkeypatch.undo()
    again = h.run(locations=locations, resources=RESOURCES)
    assert again.ok, [loc.error for loc in again.locations if not loc.ok]
    for location in locations:
        assert h.contact_ids(location) == h.truth_ids(location)
    assert h.query("select count(*) - count(distinct id) from highlevel.contacts")[0][0] == 0
