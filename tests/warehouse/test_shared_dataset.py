"""Pipelines of their own loading one PostgreSQL dataset side by side (Airflow shard tasks).

dlt assumes one pipeline per dataset at a time: every merge stages rows in `<dataset>_staging`,
truncated when a load starts, and migrates tables without `IF NOT EXISTS`. Shards sharing a dataset
would wipe each other's staged rows, race to create tables and deadlock on the staging truncates.
These runs load many small chunks per shard so that loads overlap, on a new dataset and again on a
loaded one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from highlevel_sync.shards import split

pytestmark = pytest.mark.warehouse
ROOT = Path(__file__).resolve().parents[2]

SHARD_RUN = """
import json, logging, sys
import dlt
from highlevel_sync.shards import Shard, shard_request
from highlevel_sync.sync import run_sync
from sources.highlevel.auth import StaticAuthProvider
from sources.highlevel.config import validate

logging.basicConfig(level=logging.WARNING)
logging.getLogger("highlevel.datasetlock").setLevel(logging.INFO)
args = json.loads(sys.argv[1])
shard = Shard.from_dict(args["shard"])
request = shard_request(shard, args["resources"], args["dataset"],
                        dlt.destinations.postgres(credentials=args["dsn"]), args["pipelines_dir"])
result = run_sync(request, config=validate({"base_url": args["base_url"], "location_ids": shard.locations,
                                            "chunk_rows": 40, "max_parallel_locations": 2}),
                  auth=StaticAuthProvider(args["tokens"]), client_options={"backoff_base_s": 0.05})
print(json.dumps([[loc.location_id, loc.error] for loc in result.locations]))
"""


def query(dsn: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg2.connect(dsn) as con, con.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def run_shards_together(sb: Any, dsn: str, dataset: str, tmp: Path, shards: list[Any]) -> str:
    """Every shard's run at once, as Airflow's mapped tasks; their logs."""
    procs = []
    for shard in shards:
        args = {"shard": shard.to_dict(), "resources": ["contacts", "users"], "dataset": dataset, "dsn": dsn,
                "pipelines_dir": str(tmp / "pipelines"), "base_url": sb.base_url,
                "tokens": {loc: sb.token_for(loc) for loc in shard.locations}}
        procs.append(subprocess.Popen([sys.executable, "-c", SHARD_RUN, json.dumps(args)], cwd=ROOT,
                                      env={**os.environ, "DLT_DATA_DIR": str(tmp / "dlt")},
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outcomes = [proc.communicate(timeout=300) for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * len(procs), [err[-3000:] for _, err in outcomes]
    for out, _ in outcomes:
        assert all(error is None for _, error in json.loads(out.splitlines()[-1])), out
    return "".join(err for _, err in outcomes)


def test_shards_loading_one_dataset_together_lose_nothing(highlevel_sandbox_factory: Any, postgres_dsn: str,
                                                          tmp_path: Path) -> None:
    sb = highlevel_sandbox_factory(contacts_per_location=(300, 260, 220, 200, 180, 160, 140, 120), index_lag_s=0.2)
    shards = split(sb.location_ids, 4)
    assert len(shards) >= 3
    dataset = "shared_" + tmp_path.name[-6:].lower().replace("-", "_")

    def check() -> None:
        for loc in sb.location_ids:
            truth = {c["id"]: c["email"] for c in sb.truth_contacts(loc)}
            rows = query(postgres_dsn, f"select id, email from {dataset}.contacts where location_id = %s", loc)
            assert len(rows) == len(truth) and dict(rows) == truth, loc
            tags = query(postgres_dsn, f"select count(*) from {dataset}.contacts__tags t join {dataset}.contacts c "
                                       "on t._dlt_parent_id = c._dlt_id where c.location_id = %s", loc)
            assert tags == [(sum(len(c.get("tags") or []) for c in sb.truth_contacts(loc)),)], loc

    logs = run_shards_together(sb, postgres_dsn, dataset, tmp_path, shards)  # a new dataset: all create tables
    check()
    for loc in sb.location_ids:
        sb.update_contacts(loc, 100)
    sb.wait_for_index()
    logs += run_shards_together(sb, postgres_dsn, dataset, tmp_path, shards)  # merges into loaded tables
    check()
    # the loads did meet (without the lock they overlap, and this test fails), and queued instead
    assert "waiting for another pipeline's load into dataset " + dataset in logs
    staging = query(postgres_dsn, "select schema_name from information_schema.schemata where schema_name like %s "
                                  "order by 1", f"{dataset}_staging%")
    assert staging == sorted((f"{dataset}_staging_shard_{shard.index}",) for shard in shards)
