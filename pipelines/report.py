"""Plain-text run summaries for the terminal (the CLI prints them; nothing here prints)."""

from __future__ import annotations

from .sync import SyncResult


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
