"""Shards for the Airflow DAG: a stable hash puts every location in exactly one shard, the same one in
every process; each shard is its own dlt pipeline."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from dlt.common.destination import Destination
from hypothesis import given
from hypothesis import strategies as st

from highlevel_sync.airflow_dag import plan
from highlevel_sync.shards import Shard, own_staging, shard_of, split
from highlevel_sync.sync import duckdb_destination
from sources.highlevel.errors import ConfigError

IDS = st.lists(st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789", min_size=1, max_size=20),
               max_size=60)


@given(IDS, st.integers(min_value=1, max_value=16))
def test_every_location_in_exactly_one_non_empty_shard(locations: list[str], count: int) -> None:
    shards = split(locations, count)
    placed = [loc for shard in shards for loc in shard.locations]
    assert sorted(placed) == sorted(set(locations))
    assert all(shard.locations and 0 <= shard.index < count and shard.count == count for shard in shards)
    assert len({shard.pipeline_name for shard in shards}) == len(shards)
    assert all(shard_of(loc, count) == shard.index for shard in shards for loc in shard.locations)


def test_the_hash_is_the_same_in_another_process() -> None:
    ids = [f"loc{i}" for i in range(40)]
    code = "import sys; from highlevel_sync.shards import shard_of; print([shard_of(f'loc{i}', 7) for i in range(40)])"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": "123", "PATH": ""})
    assert other.stdout.strip() == str([shard_of(i, 7) for i in ids])
    assert shard_of("loc0", 7) == 5  # sha256: fixed forever (changing it moves every location's cursors)


def test_a_shard_round_trips_through_xcom_json() -> None:
    shard = Shard(2, 4, ["a", "b"])
    assert Shard.from_dict(shard.to_dict()) == shard and shard.pipeline_name == "highlevel_shard_2"


def test_conf_locations_are_planned_without_asking_the_api() -> None:
    work = plan({"shards": 2, "locations": ["L1", "L2", "L3", "L1"], "resources": ["contacts"], "other": 1})
    assert sorted(loc for item in work for loc in item["locations"]) == ["L1", "L2", "L3"]
    assert all(item["resources"] == ["contacts"] and item["count"] == 2 for item in work)


def test_zero_shards_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        split(["a"], 0)


def staging_layout(destination: Any) -> str:
    factory: Any = Destination.from_reference(destination)
    return str(factory.configuration(factory.spec(), accept_partial=True).staging_dataset_name_layout)


def test_each_shard_stages_in_a_staging_dataset_of_its_own(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    shard = Shard(2, 4, ["L1"])
    assert staging_layout(own_staging("postgres", shard)) == "%s_staging_shard_2"
    assert staging_layout(own_staging("postgres", Shard(0, 4, ["L2"]))) == "%s_staging_shard_0"
    duckdb = own_staging(duckdb_destination(tmp_path / "w.duckdb"), shard)
    assert staging_layout(duckdb) == "%s_staging_shard_2"
    assert duckdb.config_params["credentials"].database == str(tmp_path / "w.duckdb")  # the rest kept
    monkeypatch.setenv("DESTINATION__POSTGRES__STAGING_DATASET_NAME_LAYOUT", "stg_%s")
    assert staging_layout(own_staging("postgres", shard)) == "stg_%s_shard_2"  # a configured layout, suffixed
