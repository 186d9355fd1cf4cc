"""`highlevel-sync status`: per location and resource, the cursor, last success and rows loaded, for
every location of the dataset, whichever shard or pipeline synced it (see dataset_state.py)."""

from __future__ import annotations

from typing import Any

from sources.highlevel.settings import RESOURCE_NAMES

from .dataset_state import LocationState, stored_states
from .dataset_state import locations as dataset_locations

# resource -> table holding its rows
TABLES = {name: name for name in RESOURCE_NAMES} | {"appointments": "appointments"}


def collect_status(pipeline: Any) -> list[dict[str, Any]]:
    """Rows of (location, resource, cursor, last_success, rows, pipeline, shard, last_sweep) for every
    location of the dataset, whichever pipeline (shard, CLI, plain dlt) synced it: from the states
    the destination holds, plus this pipeline's local one if the destination has none of it yet."""
    states = stored_states(pipeline)
    if pipeline.pipeline_name not in states and pipeline.state.get("sources", {}).get("highlevel"):
        states[pipeline.pipeline_name] = pipeline.state
    counts: dict[tuple[str, str], int] = {}
    try:
        with pipeline.sql_client() as client:
            existing = {row[0] for row in client.execute_sql(
                "select table_name from information_schema.tables where table_schema = %s", pipeline.dataset_name)}
            for resource, table in TABLES.items():
                if table in existing:
                    for location_id, count in client.execute_sql(
                            f"select location_id, count(*) from {client.make_qualified_table_name(table)} "
                            "group by 1"):
                        counts[(str(location_id), resource)] = int(count)
    except Exception:  # no destination yet: state alone is still useful
        pass
    known = dataset_locations(states)
    for location_id, _ in counts:
        known.setdefault(location_id, LocationState(location_id))
    rows = []
    for location_id in sorted(known):
        loc = known[location_id]
        for resource in RESOURCE_NAMES:
            state = loc.resources.get(resource, {})
            rows.append({"location_id": location_id, "resource": resource,
                         "cursor": state.get("cursors") or state.get("backfilled"),
                         "last_success": state.get("last_success"),
                         "rows": counts.get((location_id, resource)),
                         "resume_read": (state.get("resume") or {}).get("read"),
                         "pipeline": loc.pipeline, "shard": loc.shard, "last_sweep": state.get("last_sweep")})
    return rows


def status_json(rows: list[dict[str, Any]], uninstalled: dict[str, str] | None = None) -> dict[str, Any]:
    """`status --json`: each location once, with its pipeline and shard, and per resource its state."""
    by_location: dict[str, dict[str, Any]] = {}
    for row in rows:
        loc = by_location.setdefault(row["location_id"], {
            "location_id": row["location_id"], "pipeline": row["pipeline"], "shard": row["shard"],
            "last_success": None, "last_sweep": None, "resources": {}})
        for key in ("last_success", "last_sweep"):
            if row[key] and (loc[key] is None or row[key] > loc[key]):
                loc[key] = row[key]
        loc["resources"][row["resource"]] = {key: row[key] for key in ("cursor", "last_success", "last_sweep",
                                                                        "rows", "resume_read")}
    return {"locations": list(by_location.values()), "uninstalled": dict(sorted((uninstalled or {}).items()))}


def format_status(rows: list[dict[str, Any]], uninstalled: dict[str, str] | None = None) -> str:
    notes = [f"location {row['location_id']} {row['resource']}: a chunked read stopped after "
             f"{row['resume_read']:,} rows; the next run continues it" for row in rows if row.get("resume_read")]
    notes += [f"location {loc}: app uninstalled {when}; not synced until it is installed again"
              for loc, when in sorted((uninstalled or {}).items())]
    if not rows:
        return "\n".join(["No sync has run yet for this pipeline.", *notes])
    lines = [f"{'location':<22} {'resource':<15} {'cursor':<26} {'last success':<26} {'rows':>9}  pipeline"]
    for row in rows:
        count = "-" if row["rows"] is None else f"{row['rows']:,}"
        lines.append(f"{row['location_id']:<22} {row['resource']:<15} {row['cursor'] or '-':<26} "
                     f"{row['last_success'] or '-':<26} {count:>9}  {row.get('pipeline') or '-'}")
    return "\n".join(lines + notes)
