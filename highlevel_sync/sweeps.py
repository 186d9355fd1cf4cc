"""When a location's scheduled safety-net sweep is due (`sweep_every_hours`).

Polling reads what the API can filter; what it cannot (deletions, old records changed later) a
sweep finds by re-reading everything, as `--reconcile` does. Each location has a slot in the
period, placed by a stable hash of its id, so an agency's sweeps spread over the period instead of
all landing on one run; a location sweeps on the first run after its slot that follows its last
sweep. With a period shorter than the time between runs, every location sweeps every run.

The last sweep is kept in the `deletions` resource state (`last_sweep[<location>]`), written by
the run that swept, with its rows. A location's first run reads everything anyway and counts as one.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from sources.highlevel.normalize import to_utc


def slot_offset(location_id: str, period: timedelta) -> timedelta:
    """Where in every period this location's sweep falls: stable across runs and machines."""
    digest = int.from_bytes(hashlib.blake2b(location_id.encode(), digest_size=8).digest(), "big")
    return timedelta(seconds=digest % max(1, int(period.total_seconds())))


def latest_slot(location_id: str, period: timedelta, now: datetime) -> datetime:
    """The newest moment at or before `now` that is this location's slot."""
    offset = slot_offset(location_id, period)
    since_epoch = now - datetime(1970, 1, 1, tzinfo=UTC) - offset
    periods = since_epoch // period
    return datetime(1970, 1, 1, tzinfo=UTC) + offset + periods * period


def sweep_due(location_id: str, states: dict[str, dict[str, Any]], every_hours: float,
              now: datetime | None = None) -> bool:
    """True when the location's last sweep is older than its latest slot; never for period 0, nor
    for a location never synced (its first run reads everything)."""
    if every_hours <= 0 or "deletions" not in states:
        return False
    raw = states["deletions"].get("last_sweep", {}).get(location_id)
    if raw is None:
        return False
    try:
        last = to_utc(raw)
    except ValueError:
        return True  # unreadable: sweeping is the safe side
    if last is None:
        return True
    period = timedelta(hours=every_hours)
    return latest_slot(location_id, period, now or datetime.now(UTC)) > last
