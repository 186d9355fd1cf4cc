"""Example Airflow DAG: one task per location group, each calling the same `run_sync` as the CLI.

Why not dlt's `PipelineTasksGroup` decomposition: this source already extracts per location and
per resource (so one failure never costs the others), and its OAuth tokens must come from the
shared token store under its lock — a task must never hold a private copy of a rotating refresh
token. Cursors live in the destination (dlt restores state from it when a worker starts fresh), so
ephemeral workers are fine. Runs triggered by the webhook receiver (`--airflow-url`) pass
`{"locations": [...], "resources": [...]}` as conf; scheduled runs sync everything.

Copy to your DAGs folder; set the `SOURCES__HIGHLEVEL__*` and destination settings as Airflow
Variables or environment variables, and `token_store` to a path on shared storage.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum

try:  # Airflow is not a dependency of this project
    from airflow.decorators import dag, task
except ImportError:  # pragma: no cover
    dag = task = None


def sync(conf: dict[str, Any]) -> dict[str, Any]:
    """One sync; raises when any location failed so Airflow marks the task failed (and retries)."""
    from pipelines.sync import SyncRequest, run_sync

    result = run_sync(SyncRequest(locations=conf.get("locations") or None, resources=conf.get("resources") or None,
                                  destination=conf.get("destination")))
    failures = [f"{loc.location_id}: {loc.error}" for loc in result.locations if not loc.ok]
    if failures:
        raise RuntimeError("; ".join(failures))
    return result.rows_by_table()


if dag is not None:

    @dag(
        dag_id="highlevel_sync",
        schedule="0 * * * *",
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,  # cursors are state-based: never backfill by scheduler intervals
        max_active_runs=1,
        default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    )
    def highlevel_sync() -> None:
        @task
        def run(**context: Any) -> dict[str, Any]:
            return sync(dict(context["dag_run"].conf or {}))

        run()

    highlevel_sync()
