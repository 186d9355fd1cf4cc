"""`highlevel-sync status`: per location and resource, the cursor, last success and rows loaded."""

from __future__ import annotations

from typing import Any

from sources.highlevel.settings import RESOURCE_NAMES

# resource -> table holding its rows
TABLES = {name: name for name in RESOURCE_NAMES} | {"appointments": "appointments"}


def collect_status(pipeline: Any) -> list[dict[str, Any]]:
    """Rows of (location, resource, cursor, last_success, rows) from dlt state and the destination."""
    resources = pipeline.state.get("sources", {}).get("highlevel", {}).get("resources", {})
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
    locations = sorted({loc for state in resources.values() for loc in state.get("last_success", {})}
                       | {loc for state in resources.values() for loc in state.get("resume", {})}
                       | {loc for loc, _ in counts})
    rows = []
    for location_id in locations:
        for resource in RESOURCE_NAMES:
            state = resources.get(resource, {})
            cursor = state.get("cursors", {}).get(location_id) or state.get("backfilled", {}).get(location_id)
            rows.append({"location_id": location_id, "resource": resource, "cursor": cursor,
                         "last_success": state.get("last_success", {}).get(location_id),
                         "rows": counts.get((location_id, resource)),
                         "resume_read": (state.get("resume", {}).get(location_id) or {}).get("read")})
    return rows


def format_status(rows: list[dict[str, Any]], uninstalled: dict[str, str] | None = None) -> str:
    notes = [f"location {row['location_id']} {row['resource']}: a chunked read stopped after "
             f"{row['resume_read']:,} rows; the next run continues it" for row in rows if row.get("resume_read")]
    notes += [f"location {loc}: app uninstalled {when}; not synced until it is installed again"
              for loc, when in sorted((uninstalled or {}).items())]
    if not rows:
        return "\n".join(["No sync has run yet for this pipeline.", *notes])
    lines = [f"{'location':<22} {'resource':<15} {'cursor':<26} {'last success':<26} {'rows':>9}"]
    for row in rows:
        count = "-" if row["rows"] is None else f"{row['rows']:,}"
        lines.append(f"{row['location_id']:<22} {row['resource']:<15} {row['cursor'] or '-':<26} "
                     f"{row['last_success'] or '-':<26} {count:>9}")
    return "\n".join(lines + notes)
