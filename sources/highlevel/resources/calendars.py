"""Calendars and appointments.

There is no location-wide appointments endpoint and no change filter: `GET /calendars/events`
needs a calendar and a time window (by appointment start, epoch ms). So:
- the first run backfills from `start_date` (default three years back) to a year ahead in
  bounded windows, per calendar;
- later runs re-read a rolling window (default 30 days back, 365 ahead) per calendar, merged on
  `id`: reschedules and cancellations inside it are picked up; cancelled appointments keep their
  status. Changes to appointments outside the window need the AppointmentUpdate webhook.
Times arrive with the location's offset (`+05:30`) and are stored as UTC instants.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import dlt

from .. import settings
from ..errors import ApiError
from ..normalize import convert_timestamps, to_iso_z
from .columns import json_column, location_key, text, ts
from .context import LocationContext
from .deletions import hard_delete_rows

APPOINTMENT_TIMESTAMPS = ("startTime", "endTime", "dateAdded", "dateUpdated")
APPOINTMENT_COLUMNS: dict[str, Any] = {
    "id": text(nullable=False),
    "location_id": text(nullable=False),
    "start_time": ts(),
    "end_time": ts(),
    "date_added": ts(),
    "date_updated": ts(dedup_sort="desc"),
    "users": json_column(),
    "assigned_resources": json_column(),
    "_deleted": {"data_type": "bool", "hard_delete": True},
}


def calendar_list(ctx: LocationContext) -> list[dict[str, Any]]:
    body = ctx.client.get(settings.CALENDARS, version=settings.VERSION_2021_04_15, location_id=ctx.location_id,
                          params={"locationId": ctx.location_id})
    items = body.get("calendars")
    if not isinstance(items, list):
        raise ApiError(f"location {ctx.location_id}: calendars response has no 'calendars' list")
    return items


@dlt.resource(name="calendars", write_disposition="merge", primary_key="id", merge_key="location_id",
              columns=location_key())
def calendars(ctx: LocationContext) -> Iterator[list[dict[str, Any]]]:
    rows = [{**c, "locationId": ctx.location_id} for c in ctx.calendars(calendar_list)]
    ctx.report("calendars").rows += len(rows)
    if rows:
        yield rows


def windows(start: datetime, end: datetime, size: timedelta) -> Iterator[tuple[datetime, datetime]]:
    """Consecutive [a, b) windows covering [start, end)."""
    current = start
    while current < end:
        upper = min(current + size, end)
        yield current, upper
        current = upper


@dlt.resource(name="appointments", write_disposition="merge", primary_key="id", columns=APPOINTMENT_COLUMNS)
def appointments(ctx: LocationContext) -> Iterator[list[dict[str, Any]]]:
    state = ctx.resource_state("appointments")
    backfilled: dict[str, str] = state.setdefault("backfilled", {})
    options = ctx.options
    now = datetime.now(UTC)
    if options.end_date is not None:
        start, end = options.start_date or now - settings.APPOINTMENT_DEFAULT_HISTORY, options.end_date
    elif ctx.location_id in backfilled and not options.full_refresh:
        start, end = now - options.appointment_lookback, now + options.appointment_lookahead
    else:
        start = options.start_date or now - settings.APPOINTMENT_DEFAULT_HISTORY
        end = now + options.appointment_lookahead
    report = ctx.report("appointments")
    deleted = ctx.deleted_ids("appointments")
    for calendar in ctx.calendars(calendar_list):
        calendar_id = calendar.get("id")
        if not calendar_id:
            continue
        for lower, upper in windows(start, end, settings.APPOINTMENT_BACKFILL_WINDOW):
            body = ctx.client.get(
                settings.CALENDAR_EVENTS, version=settings.VERSION_2021_04_15, location_id=ctx.location_id,
                params={"locationId": ctx.location_id, "calendarId": calendar_id,
                        "startTime": str(int(lower.timestamp() * 1000)), "endTime": str(int(upper.timestamp() * 1000))},
            )
            events = body.get("events")
            if not isinstance(events, list):
                raise ApiError(f"location {ctx.location_id}: calendar events response has no 'events' list")
            rows = []
            for event in events:
                if event.get("id") in deleted:
                    continue
                row = {**event, "locationId": event.get("locationId") or ctx.location_id}
                convert_timestamps(row, APPOINTMENT_TIMESTAMPS)
                rows.append(row)
            report.rows += len(rows)
            if rows:
                yield rows
    if deleted:
        yield hard_delete_rows(ctx, "appointments", deleted)
    if options.end_date is None:
        backfilled[ctx.location_id] = to_iso_z(now)
        state.setdefault("last_success", {})[ctx.location_id] = to_iso_z(now)
