"""HighLevel in Prefect: a flow calling `run_sync`, the engine behind `highlevel-sync run`.

`run_sync` reads many locations side by side (each at its own rate budget), applies webhook
deletes and sweeps, and never raises for one location's failure: the flow fails, naming every
failed location, after the others' rows and cursors are committed. Settings come from dlt's
providers (`.dlt/*.toml`, `SOURCES__HIGHLEVEL__*`); destination credentials from dlt's usual keys.

    pip install prefect highlevel-dlt
    python pipelines/prefect_highlevel.py            # one run; or serve/deploy the flow
"""

from typing import Any

from prefect import flow, get_run_logger

from highlevel_sync.sync import SyncRequest, run_sync


@flow(name="highlevel-sync")
def highlevel_sync_flow(locations: list[str] | None = None, resources: list[str] | None = None,
                        destination: str = "duckdb", dataset_name: str = "highlevel",
                        pipelines_dir: str | None = None) -> dict[str, Any]:
    """One sync; `locations=["all"]` for every sub-account of an agency token, None for the configured ones."""
    logger = get_run_logger()
    result = run_sync(SyncRequest(locations=locations, resources=resources, destination=destination,
                                  dataset_name=dataset_name, pipelines_dir=pipelines_dir, wait=True))
    for location in result.locations:
        logger.info("location %s: %s, %d rows, %d requests", location.location_id,
                    "ok" if location.ok else location.error, sum(location.rows.values()), location.stats.requests)
    failed = [f"{location.location_id}: {location.error}" for location in result.locations if not location.ok]
    if failed:
        raise RuntimeError(f"{len(failed)} location(s) failed: " + "; ".join(failed))
    return {"rows": result.rows_by_table(), "locations": len(result.locations), "seconds": round(result.seconds, 1)}


if __name__ == "__main__":
    highlevel_sync_flow()
