"""The analyst layer: typed wide views, opportunity history and stage views, rebuilt after loads.

`refresh_after_load(pipeline)` runs once at the end of `run_sync`, through the destination's SQL
client (DuckDB and PostgreSQL): it brings `opportunity_history` up to the loaded opportunities,
then creates each view whose SQL changed (see `views.py`). It never fails a sync: the loaded
tables are the product, the layer on top is rebuilt by the next run if this one could not.
"""

from __future__ import annotations

import logging
from typing import Any

from ..datasetlock import dataset_lock
from .catalog import Catalog
from .dialect import DIALECTS, dialect_of
from .history import update_history
from .objects import object_views
from .revenue import revenue_views
from .stages import stage_views
from .views import ensure_view
from .wide import wide_views

__all__ = ["refresh", "refresh_after_load"]

logger = logging.getLogger("highlevel.analyst")


def refresh(pipeline: Any) -> list[str]:
    """Update the history and (re)build the views that changed; returns the views rebuilt."""
    dialect = dialect_of(pipeline.destination.destination_name)
    naming = pipeline.default_schema.naming
    with pipeline.sql_client() as client:
        catalog = Catalog(client)
        if catalog.has("opportunities"):
            update_history(client, catalog, dialect)
            catalog = Catalog(client)
        views = wide_views(client, catalog, dialect, naming) + stage_views(catalog, dialect) + revenue_views(catalog)
        views += object_views(client, catalog, dialect, naming)
        return [view.name for view in views if ensure_view(client, catalog, dialect, view)]


def refresh_after_load(pipeline: Any) -> None:
    """`refresh`, logging instead of raising: a failure here must not fail a sync that loaded."""
    if pipeline.destination is None or not pipeline.default_schema_name:
        return
    if pipeline.destination.destination_name not in DIALECTS:
        logger.info("no analyst layer on %s (built on duckdb and postgres only)", pipeline.destination.destination_name)
        return
    try:
        with dataset_lock(pipeline):  # shards sharing the dataset would race on the same views
            rebuilt = refresh(pipeline)
    except Exception as exc:
        logger.warning("analyst layer (wide views, opportunity history) not refreshed: %s; the next run retries",
                       exc, exc_info=logger.isEnabledFor(logging.DEBUG))
        return
    if rebuilt:
        logger.info("analyst views rebuilt: %s", ", ".join(rebuilt))
