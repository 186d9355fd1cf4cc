"""Airflow DAG `highlevel_sync`: locations split into shards, one mapped task per shard.

    plan_shards ──> sync_shard[0..n]   (dynamic task mapping; Airflow 2.9+ and 3.x)

`plan_shards` lists the locations (every install of the app for an agency token, the configured
ones otherwise, or the run's conf `locations`) and splits them by a stable hash into at most
`shards` shards (`highlevel_sync/shards.py`). Each `sync_shard` task syncs its locations through the same
`run_sync` as the CLI, as its own dlt pipeline (`highlevel_shard_<n>`: own working directory, state
and run lock), into one shared dataset. A failed location fails its shard's task with a message
naming it; the other shards are unaffected, and the failed one is retried.

Why not dlt's `PipelineTasksGroup`: this source already extracts per location and resource (one
failure never costs the others), and OAuth tokens must come from the shared token store under its
lock — a task never holds a private copy of a rotating refresh token. With workers on several
machines, set `token_store` to a PostgreSQL URL (README, "Run on Airflow").

Runs triggered by the webhook receiver (`--airflow-url`) pass `{"locations": [...], "resources":
[...]}` as conf: only those are synced. Scheduled runs sync everything. Cursors are dlt state (never
Airflow's data intervals), so `catchup` is off and runs of the DAG never overlap.

Settings at parse time (environment): HIGHLEVEL_AIRFLOW_SCHEDULE (cron, default hourly; "none" for
triggered runs only), HIGHLEVEL_AIRFLOW_SHARDS (default 4), HIGHLEVEL_AIRFLOW_RETRIES (default 2),
HIGHLEVEL_AIRFLOW_RETRY_DELAY_S (300).
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from typing import Any

import pendulum

try:  # Airflow 3: the Task SDK
    from airflow.sdk import Param, dag, get_current_context, task
except ImportError:  # Airflow 2.9+
    try:
        from airflow.decorators import dag, task
        from airflow.models.param import Param
        from airflow.operators.python import get_current_context
    except ImportError:  # Airflow is not a dependency of this project: the module still imports
        dag = task = Param = get_current_context = None

logger = logging.getLogger("highlevel.airflow")

DAG_ID = "highlevel_sync"
# scheduled runs (no conf) use this; a run's conf may say otherwise
DEFAULT_SHARDS = int(os.environ.get("HIGHLEVEL_AIRFLOW_SHARDS", "4"))
PARAM_DEFAULTS: dict[str, Any] = {"shards": DEFAULT_SHARDS, "locations": None, "resources": None,
                                  "dataset_name": None, "destination": None}


def plan(conf: dict[str, Any]) -> list[dict[str, Any]]:
    """The shards to sync for a run's conf, as XCom-friendly dicts.

    Read from the run's conf (the trigger form sends every param in it), not from `params`: a
    process that runs several DAG runs (`dag.test()`) keeps one run's conf in the DAG's params.
    """
    from highlevel_sync.shards import plan_shards

    params = {**PARAM_DEFAULTS, **{k: v for k, v in conf.items() if k in PARAM_DEFAULTS}}
    logger.info("planning shards for %s", {k: v for k, v in params.items() if v is not None})
    shards = plan_shards(int(params.get("shards") or DEFAULT_SHARDS), params.get("locations") or None)
    resources = list(params.get("resources") or [])
    return [{**shard.to_dict(), "resources": resources, "dataset_name": params.get("dataset_name"),
             "destination": params.get("destination")} for shard in shards]


def sync(work: dict[str, Any]) -> dict[str, Any]:
    """One shard; raises ShardFailed (task failed, retried) naming every failed location."""
    from highlevel_sync.shards import Shard, sync_shard

    return sync_shard(Shard.from_dict(work), work.get("resources") or None,
                      dataset_name=work.get("dataset_name") or None, destination=work.get("destination") or None)


def _schedule() -> str | None:
    value = os.environ.get("HIGHLEVEL_AIRFLOW_SCHEDULE", "0 * * * *").strip()
    return None if value.lower() in ("", "none") else value


if dag is not None:

    @dag(
        dag_id=DAG_ID,
        schedule=_schedule(),
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,  # cursors are state-based: never backfill by scheduler intervals
        max_active_runs=1,  # two runs of one shard would race on its pipeline state
        default_args={"retries": int(os.environ.get("HIGHLEVEL_AIRFLOW_RETRIES", "2")),
                      "retry_delay": timedelta(seconds=float(os.environ.get("HIGHLEVEL_AIRFLOW_RETRY_DELAY_S", 300)))},
        params={
            "shards": Param(DEFAULT_SHARDS, type="integer", minimum=1, maximum=512,
                            description="split the locations into at most this many mapped tasks"),
            "locations": Param(None, type=["null", "array"], description="only these location ids (default all)"),
            "resources": Param(None, type=["null", "array"], description="only these resources (default all)"),
            "dataset_name": Param(None, type=["null", "string"], description="default: highlevel"),
            "destination": Param(None, type=["null", "string"], description="dlt destination; default duckdb"),
        },
        tags=["highlevel", "dlt"],
        doc_md=__doc__,
    )
    def highlevel_sync() -> None:
        @task
        def plan_shards() -> list[dict[str, Any]]:
            dag_run: Any = get_current_context()["dag_run"]
            return plan(dict(dag_run.conf or {}))

        @task(map_index_template="{{ shard_label }}")
        def sync_shard(work: dict[str, Any]) -> dict[str, Any]:
            context: Any = get_current_context()
            context["shard_label"] = f"shard {int(work['index']) + 1}/{work['count']}"
            return sync(work)

        sync_shard.expand(work=plan_shards())

    highlevel_sync_dag = highlevel_sync()
