"""A resource's cursor for one location, kept in dlt resource state.

State commits only with a successful extract of the data it describes, so a failed run leaves
the previous cursor in place. Layout: `resources.<name>.cursors[<location>]` (ISO-8601 UTC) and
`resources.<name>.last_success[<location>]`; a second stream of a resource is keyed
`<location>/<stream>`, readable by `highlevel-sync status`. A read split into chunks (one extract
each) keeps where it stopped in `resources.<name>.resume[<location>]` until it completes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from ..normalize import to_iso_z, to_utc
from .context import LocationContext


class LocationCursor:
    """`stream` separates independent streams of one resource (the message export's email pass)."""

    def __init__(self, ctx: LocationContext, resource: str, stream: str | None = None) -> None:
        self.ctx = ctx
        self.resource = resource
        self.key = ctx.location_id if stream is None else f"{ctx.location_id}/{stream}"
        self._state: dict[str, Any] = ctx.resource_state(resource)
        self._cursors: dict[str, str] = self._state.setdefault("cursors", {})
        options = ctx.options
        # a backfill window (end_date) and --full-refresh neither read nor move the stored cursor
        self.stateless = options.end_date is not None
        ignore = options.full_refresh or self.stateless
        self.stored: datetime | None = None if ignore else to_utc(self._cursors.get(self.key))
        self.newest: datetime | None = self.stored

    def window_start(self) -> datetime | None:
        """Where this run reads from: the cursor minus the overlap window, never before start_date."""
        start = self.ctx.options.start_date
        if self.stored is None:
            return start
        since = self.stored - self.ctx.options.overlap
        return max(since, start) if start else since

    def observe(self, stamp: datetime | None) -> None:
        if stamp is not None and (self.newest is None or stamp > self.newest):
            self.newest = stamp

    def save(self) -> None:
        if self.newest is not None and not self.stateless:
            self._cursors[self.key] = to_iso_z(self.newest)

    def resume_point(self) -> dict[str, Any] | None:
        """Where an unfinished chunked read stopped, if this run may continue it.

        A crashed run's chunks are kept (their rows are loaded), so the next run continues; a
        --full-refresh continues only its own chunks, never an older run's read.
        """
        if self.stateless:
            return None
        point = self._state.get("resume", {}).get(self.key)
        if not isinstance(point, dict):
            return None
        if self.ctx.options.full_refresh and point.get("run") != self.ctx.run_id:
            return None
        return point

    def stop_at(self, point: dict[str, Any] | None) -> None:
        """Record (or, with None, clear) where this chunk stopped; commits with the chunk's rows."""
        if self.stateless:
            return
        if point is None:
            self._state.get("resume", {}).pop(self.key, None)
        else:
            resume = self._state.setdefault("resume", {})
            resume[self.key] = {**point, "run": self.ctx.run_id}

    def finish(self) -> None:
        self.save()
        self._state.setdefault("last_success", {})[self.ctx.location_id] = to_iso_z(datetime.now(UTC))


def prune_recent(recent: dict[str, str], overlap: timedelta) -> dict[str, str]:
    """Of the change stamps a per-record read remembers (notes, relations), keep what the next
    overlap window can show again: stamps near the newest one."""
    if not recent:
        return {}
    newest = to_utc(max(recent.values()))
    assert newest is not None
    floor = to_iso_z(newest - 2 * overlap)
    return {record_id: stamp for record_id, stamp in recent.items() if stamp >= floor}
