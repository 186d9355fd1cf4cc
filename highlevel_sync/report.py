"""Run summaries: plain text for a person, JSON for a script (the CLI prints them; nothing here prints)."""

from __future__ import annotations

from typing import Any

from .results import LocationResult, SyncResult


def format_summary(result: SyncResult) -> str:
    lines = [f"Sync finished in {result.seconds:.1f} s: {'OK' if result.ok else 'FAILED'}"]
    rows = result.rows_by_table()
    if rows:
        width = max(len(t) for t in rows)
        lines.append("Rows written per table (merged on id; re-read overlap rows included):")
        lines.extend(f"  {table:<{width}}  {count:>9,}" for table, count in rows.items())
    lines.append("Per location:")
    for loc in result.locations:
        stats = loc.stats
        quota = "?" if stats.daily_remaining is None else f"{stats.daily_remaining:,}"
        lines.append(
            f"  {loc.location_id}: {'ok' if loc.ok else 'FAILED'} in {loc.seconds:.1f} s, "
            f"{stats.requests} requests, {stats.throttled} x 429, {stats.retries} retries, daily quota left {quota}"
        )
        if stats.by_endpoint:
            lines.append("    requests by endpoint: " + ", ".join(
                f"{endpoint} {count}" for endpoint, count in sorted(stats.by_endpoint.items())))
        lines.extend(f"    {resource}: {note}" for resource, note in sorted(loc.notes.items()))
        lines.extend(f"    warning: {w}" for w in loc.warnings)
        for resource, message in sorted(loc.resource_errors.items()):
            lines.append(f"    FAILED {resource}: {message}")
        if loc.error and not loc.resource_errors:
            lines.append(f"    error: {loc.error}")
    return "\n".join(lines)


def summary_json(result: SyncResult) -> dict[str, Any]:
    """The run summary as one JSON-ready object, for `highlevel-sync run --json`.

    The same facts as `format_summary`, keyed for schedulers and scripts that decide what to do
    next (alert, retry a location, watch the daily quota); field names are part of the CLI contract.
    """
    return {
        "ok": result.ok,
        "seconds": round(result.seconds, 3),
        "rows": result.rows_by_table(),
        "locations": [_location_json(loc) for loc in result.locations],
    }


def _location_json(loc: LocationResult) -> dict[str, Any]:
    stats = loc.stats
    return {
        "location_id": loc.location_id,
        "ok": loc.ok,
        "error": loc.error,
        "resource_errors": dict(sorted(loc.resource_errors.items())),
        "rows": dict(sorted(loc.rows.items())),
        "requests": stats.requests,
        "throttled": stats.throttled,
        "retries": stats.retries,
        "daily_remaining": stats.daily_remaining,
        "seconds": round(loc.seconds, 3),
        "warnings": list(loc.warnings),
        "notes": dict(sorted(loc.notes.items())),
    }
