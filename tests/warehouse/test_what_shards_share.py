"""What shards on different machines share lives where they share it (real PostgreSQL):
- with a PostgreSQL token store, the install registry is a table of that database: an uninstall
  one worker's receiver records is seen by a shard planned on another worker (another cwd and
  pipelines dir, no common file);
- a load waiting for another pipeline's hold on the dataset gives up after `run_lock_timeout_s`,
  with one line naming the lock and the session holding it;
- after a successful shard load, staging schemas of shards the plan no longer has are dropped.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from uuid import uuid4

import dlt
import psycopg2
import pytest

from highlevel_sync.datasetlock import lock_name
from highlevel_sync.installs import InstallRegistry
from highlevel_sync.shards import Shard, shard_request, sync_shard
from highlevel_sync.sync import SyncRequest, run_sync
from sources.highlevel.auth import StaticAuthProvider
from sources.highlevel.config import validate

from .test_pg_tokenstore import Agency, count

pytestmark = pytest.mark.warehouse

PLAN = ("import json; from highlevel_sync.shards import plan_shards; "
        "print(json.dumps(sorted(loc for shard in plan_shards(2) for loc in shard.locations)))")
MARK = ("import sys; from highlevel_sync.installs import InstallRegistry; "
        "InstallRegistry(sys.argv[1]).mark_uninstalled(sys.argv[2], sys.argv[1])")


def test_an_uninstall_one_worker_records_is_seen_by_a_shard_on_another(highlevel_sandbox_factory: Any,
                                                                        postgres_dsn: str, tmp_path: Path) -> None:
    sb = highlevel_sandbox_factory(contacts_per_location=(20, 10, 5), index_lag_s=0.2)
    agency = Agency(sb, postgres_dsn, tmp_path)
    agency.import_company()
    worker_a, worker_b = tmp_path / "worker-a", tmp_path / "worker-b"
    worker_a.mkdir()
    worker_b.mkdir()
    gone = sb.location_ids[1]

    def run(code: str, cwd: Path, *args: str) -> str:
        done = subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=agency.env, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    assert json.loads(run(PLAN, worker_b)) == sorted(sb.location_ids)
    run(MARK, worker_a, agency.url, gone)  # what worker A's receiver does on AppUninstall
    assert json.loads(run(PLAN, worker_b)) == sorted(set(sb.location_ids) - {gone})
    assert not list(tmp_path.rglob("highlevel_installs.json"))  # nothing went through a local file
    assert gone in InstallRegistry(agency.url).uninstalled()
    InstallRegistry(agency.url).mark_installed(gone)  # AppInstall on any worker brings it back
    assert json.loads(run(PLAN, worker_a)) == sorted(sb.location_ids)


def test_a_load_blocked_by_a_held_dataset_gives_up_after_the_timeout_naming_the_holder(
        highlevel_sandbox_factory: Any, postgres_dsn: str, tmp_path: Path) -> None:
    sb = highlevel_sandbox_factory(contacts_per_location=(20, 10), index_lag_s=0.2)
    location = sb.location_ids[0]
    dataset = f"held_{uuid4().hex[:8]}"
    holder = psycopg2.connect(postgres_dsn, application_name="shard-7-stuck")
    holder.autocommit = True
    with holder.cursor() as cur:
        cur.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0)), pg_backend_pid()", (lock_name(dataset),))
        pid = cur.fetchone()[1]
    try:
        started = time.monotonic()
        result = run_sync(SyncRequest(resources=["contacts"], destination=dlt.destinations.postgres(postgres_dsn),
                                      dataset_name=dataset, pipelines_dir=str(tmp_path / "pipelines")),
                          config=validate({"base_url": sb.base_url, "location_ids": [location],
                                           "run_lock_timeout_s": 2}),
                          auth=StaticAuthProvider({location: sb.token_for(location)}))
        waited = time.monotonic() - started
    finally:
        holder.close()
    assert not result.ok
    error = result.locations[0].error or ""
    assert "\n" not in error
    assert f"gave up after 2 s (run_lock_timeout_s) waiting for dataset {dataset}" in error
    assert f"'highlevel-load:{dataset}', held by session pid {pid} (shard-7-stuck)" in error
    assert waited < 60
    # the lock gone, the next run loads what this one could not
    again = run_sync(SyncRequest(resources=["contacts"], destination=dlt.destinations.postgres(postgres_dsn),
                                 dataset_name=dataset, pipelines_dir=str(tmp_path / "pipelines")),
                     config=validate({"base_url": sb.base_url, "location_ids": [location], "run_lock_timeout_s": 2}),
                     auth=StaticAuthProvider({location: sb.token_for(location)}))
    assert again.ok
    assert count(postgres_dsn, f"select count(*) from {dataset}.contacts") == [(len(sb.truth_contacts(location)),)]


def test_staging_schemas_of_shards_no_longer_planned_are_dropped(highlevel_sandbox_factory: Any, postgres_dsn: str,
                                                                 tmp_path: Path) -> None:
    sb = highlevel_sandbox_factory(contacts_per_location=(20, 10), index_lag_s=0.2)
    location = sb.location_ids[0]
    dataset = f"shrunk_{uuid4().hex[:8]}"
    # an earlier plan had 6 shards; other schemas look alike but are not ours to drop
    kept = [f"{dataset}_staging", f"{dataset}_staging_shard_1", f"other_{dataset}_staging_shard_4"]
    stale = [f"{dataset}_staging_shard_2", f"{dataset}_staging_shard_5"]
    with psycopg2.connect(postgres_dsn) as con, con.cursor() as cur:
        for schema in kept + stale:
            cur.execute(f"CREATE SCHEMA {schema}")
    shard = Shard(0, 2, [location])
    summary = sync_shard(shard, ["contacts"], dataset_name=dataset, destination=dlt.destinations.postgres(postgres_dsn),
                         pipelines_dir=str(tmp_path / "pipelines"),
                         config=validate({"base_url": sb.base_url, "location_ids": [location],
                                          "private_integration_token": sb.token_for(location)}))
    assert summary["locations"] == [location]
    schemas = {row[0] for row in count(postgres_dsn, "select schema_name from information_schema.schemata")}
    assert not set(stale) & schemas
    assert set(kept) | {dataset, f"{dataset}_staging_shard_0"} <= schemas
    assert shard_request(shard, dataset_name=dataset).pipeline_name == "highlevel_shard_0"
