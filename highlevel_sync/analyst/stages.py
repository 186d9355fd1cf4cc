"""Views over `opportunity_history`: how long opportunities stay in each stage, and the funnel.

A *stay* is an unbroken run of versions in one pipeline stage (a status or value change inside a
stage does not end it). Durations are only given for stays that ended, so the views answer the
same whenever and wherever they are queried (DuckDB or PostgreSQL); a current stay's age is
`now() - entered_at`. A deleted opportunity's last stay ends at its deletion.
"""

from __future__ import annotations

from .catalog import Catalog
from .dialect import Dialect
from .history import HISTORY
from .views import View

STAGES = "pipelines__stages"


def stays_sql(catalog: Catalog) -> str:
    """One row per stay: opportunity, stage, entered_at, left_at (NULL while still there), days."""
    history = catalog.table(HISTORY)
    ended = "COUNT(*) = COUNT(s.valid_to)"
    seconds = "EXTRACT(EPOCH FROM MAX(s.valid_to)) - EXTRACT(EPOCH FROM MIN(s.valid_from))"
    return (
        "SELECT s.id AS opportunity_id, s.location_id, s.pipeline_id, s.pipeline_stage_id, "
        f"MIN(s.valid_from) AS entered_at, CASE WHEN {ended} THEN MAX(s.valid_to) END AS left_at, "
        f"CASE WHEN {ended} THEN CAST(({seconds}) / 86400.0 AS DOUBLE PRECISION) END AS days_in_stage "
        "FROM (SELECT v.*, SUM(v.starts) OVER (PARTITION BY v.id ORDER BY v.valid_from ROWS UNBOUNDED PRECEDING) "
        "AS stay FROM (SELECT h.id, h.location_id, h.pipeline_id, h.pipeline_stage_id, h.valid_from, h.valid_to, "
        "CASE WHEN LAG(h.valid_to) OVER w = h.valid_from "
        "AND LAG(h.pipeline_stage_id) OVER w IS NOT DISTINCT FROM h.pipeline_stage_id "
        "AND LAG(h.pipeline_id) OVER w IS NOT DISTINCT FROM h.pipeline_id THEN 0 ELSE 1 END AS starts "
        f"FROM {history} AS h WINDOW w AS (PARTITION BY h.id ORDER BY h.valid_from)) AS v) AS s "
        "GROUP BY s.id, s.location_id, s.pipeline_id, s.pipeline_stage_id, s.stay"
    )


def _stage_names(catalog: Catalog, alias: str) -> tuple[str, str, str]:
    """(stage name column, stage position column, join clause) from the pipelines' stages, if loaded."""
    if not {"id", "name", "position"} <= set(catalog.columns(STAGES)):
        return "CAST(NULL AS VARCHAR)", "CAST(NULL AS BIGINT)", ""
    name, position = catalog.quote("name"), catalog.quote("position")
    join = (f"LEFT JOIN (SELECT id, MIN({name}) AS stage_name, MIN({position}) AS stage_position "
            f"FROM {catalog.table(STAGES)} GROUP BY id) AS n ON n.id = {alias}.pipeline_stage_id")
    return "n.stage_name", "n.stage_position", join


def stage_durations_view(catalog: Catalog) -> View:
    name, _, join = _stage_names(catalog, "t")
    sql = (f"SELECT t.opportunity_id, t.location_id, t.pipeline_id, t.pipeline_stage_id, {name} AS stage_name, "
           f"t.entered_at, t.left_at, t.days_in_stage FROM ({stays_sql(catalog)}) AS t {join}")
    return View("opportunity_stage_durations", sql, "per opportunity and stage stay: entered, left, days in stage")


def pipeline_funnel_view(catalog: Catalog, dialect: Dialect) -> View:
    name, position, join = _stage_names(catalog, "f")
    sql = (f"SELECT f.location_id, f.pipeline_id, f.pipeline_stage_id, {name} AS stage_name, "
           f"{position} AS stage_position, f.entered, f.still_there, f.median_days FROM ("
           "SELECT t.location_id, t.pipeline_id, t.pipeline_stage_id, COUNT(DISTINCT t.opportunity_id) AS entered, "
           "COUNT(DISTINCT CASE WHEN t.left_at IS NULL THEN t.opportunity_id END) AS still_there, "
           f"{dialect.median('t.days_in_stage')} AS median_days "
           f"FROM ({stays_sql(catalog)}) AS t GROUP BY t.location_id, t.pipeline_id, t.pipeline_stage_id) AS f {join}")
    return View("pipeline_funnel", sql, "per pipeline and stage: entered, still there, median days of ended stays")


def stage_views(catalog: Catalog, dialect: Dialect) -> list[View]:
    if not catalog.has(HISTORY):
        return []
    return [stage_durations_view(catalog), pipeline_funnel_view(catalog, dialect)]
