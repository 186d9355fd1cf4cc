"""HighLevel in Dagster, the way Dagster loads any dlt source: `dagster-dlt`'s `@dlt_assets` over
`highlevel_source()`, one asset per resource (contacts, opportunities...).

Settings come from dlt's providers as everywhere else (`.dlt/config.toml`, `.dlt/secrets.toml`,
`SOURCES__HIGHLEVEL__*`): the source is built when Dagster loads this file, so they must be there.
The source reads its locations one after another (an agency: every installed one); for a large
agency, schedule `run_sync` instead (see pipelines/prefect_highlevel.py and the README).

    pip install dagster dagster-dlt highlevel-dlt
    dagster dev -f pipelines/dagster_highlevel.py
"""

from collections.abc import Iterator
from typing import Any

import dlt
from dagster import AssetExecutionContext, Definitions
from dagster_dlt import DagsterDltResource, dlt_assets

from sources.highlevel import highlevel_source


@dlt_assets(
    dlt_source=highlevel_source(),
    dlt_pipeline=dlt.pipeline(pipeline_name="highlevel_dagster", destination="duckdb", dataset_name="highlevel"),
    name="highlevel",
    group_name="highlevel",
)
def highlevel_assets(context: AssetExecutionContext, dlt: DagsterDltResource) -> Iterator[Any]:
    """Every resource of the source; a run picks up from dlt's state, so it reads only changes.

    Each run gets a fresh source (the decorator's one only describes the assets): a dlt source
    object keeps the schema of its last run, which a second run after Dagster's `pipeline.drop()`
    cannot merge again."""
    yield from dlt.run(context=context, dlt_source=highlevel_source())


defs = Definitions(assets=[highlevel_assets], resources={"dlt": DagsterDltResource()})
