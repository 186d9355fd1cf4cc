"""`highlevel-sync status` shows the dataset, not one pipeline folder: shards synced by different
workers (their own pipelines dirs) all appear, each location once, with its shard and the cursors
that shard committed, read from the destination's `_dlt_pipeline_state`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dlt

from highlevel_sync.sandbox import Sandbox
from highlevel_sync.shards import shard_request, split
from highlevel_sync.sync import duckdb_destination, run_sync
from sources.highlevel.auth import StaticAuthProvider
from sources.highlevel.config import validate

ROOT = Path(__file__).resolve().parents[2]


def status(db: Path, pipelines_dir: Path, *flags: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "DESTINATION__"))}
    proc = subprocess.run([sys.executable, "-m", "highlevel_sync.highlevel_pipeline", "status", "--pipelines-dir",
                           str(pipelines_dir), *flags], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**env, "DESTINATION__DUCKDB__CREDENTIALS": str(db)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_status_lists_every_location_of_every_shard_once(highlevel_sandbox_factory: Callable[..., Sandbox],
                                                          tmp_path: Path) -> None:
    sb = highlevel_sandbox_factory(contacts_per_location=(30, 20, 15, 10, 8, 5), index_lag_s=0.2)
    db = tmp_path / "warehouse.duckdb"
    shards = split(sb.location_ids, 3)
    assert len(shards) >= 2
    auth = StaticAuthProvider({loc: sb.token_for(loc) for loc in sb.location_ids})
    cursors: dict[str, Any] = {}
    for shard in shards:  # each on its own "worker": a pipelines dir no other shard sees
        worker = tmp_path / f"worker-{shard.index}"
        request = shard_request(shard, ["contacts", "users"], destination=duckdb_destination(db),
                                pipelines_dir=str(worker))
        result = run_sync(request, config=validate({"base_url": sb.base_url, "location_ids": shard.locations}),
                          auth=auth)
        assert result.ok
        state = dlt.attach(shard.pipeline_name, pipelines_dir=str(worker)).state
        cursors.update(state["sources"]["highlevel"]["resources"]["contacts"]["cursors"])

    report = json.loads(status(db, tmp_path / "a-machine-that-never-synced", "--json"))
    listed = [loc["location_id"] for loc in report["locations"]]
    assert sorted(listed) == sorted(sb.location_ids)  # every location, once
    by_id = {loc["location_id"]: loc for loc in report["locations"]}
    for shard in shards:
        for location_id in shard.locations:
            loc = by_id[location_id]
            assert (loc["shard"], loc["pipeline"]) == (shard.index, shard.pipeline_name)
            contacts = loc["resources"]["contacts"]
            assert contacts["cursor"] == cursors[location_id]
            assert contacts["rows"] == len(sb.truth_contacts(location_id))
            assert contacts["last_success"] and loc["last_success"] >= contacts["last_success"]

    text = status(db, tmp_path / "another-machine")
    for shard in shards:
        for location_id in shard.locations:
            line = next(line for line in text.splitlines() if line.startswith(location_id) and " contacts " in line)
            assert line.endswith(shard.pipeline_name) and cursors[location_id] in line
