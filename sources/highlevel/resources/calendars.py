"""Calendars and appointments.

There is no location-wide appointments endpoint and no change filter: `GET /calendars/events`
needs a calendar and a time window (by appointment start, epoch ms). So:
- the first run backfills from `start_date` (default three years back) to `appointments_days_ahead`
  ahead in bounded windows, per calendar (how wide: `_calendar_events`);
- later runs re-read a rolling window (`appointments_days_back` / `appointments_days_ahead`,
  default 30 / 365) per calendar, merged on `id`: reschedules and cancellations inside it are
  picked up; cancelled appointments keep their status;
- appointments named by AppointmentCreate/Update webhooks are read by id
  (`GET /calendars/events/appointments/{id}`), whatever their date, so a correction to an old one
  lands on the next triggered run;
- `--reconcile` re-reads the whole horizon of the first run, so silent corrections land too, and
  appointments it no longer lists are deleted (`deletions.detected_by = sweep`). Only appointments
  the re-read could have listed are judged: those of a calendar that still exists, that started
  inside the horizon when last loaded. An appointment of a deleted calendar is unreachable this way
  (CONTRACT §8.5), which does not prove it was deleted. And each unlisted one is asked for by id
  first: one rescheduled beyond the horizon is reloaded, only a "not found" deletes.
Times arrive with the location's offset (`+05:30`) and are stored as UTC instants.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import dlt

from .. import settings
from ..errors import ApiError, RateLimited
from ..normalize import convert_timestamps, to_iso_z, to_utc
from .columns import json_column, location_key, text, ts
from .context import LocationContext, SyncOptions
from .deletions import hard_delete_rows
from .probe import PROBE_TTL

logger = logging.getLogger(__name__)

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
# an unknown appointment id: the spec lists 400 and 401 only; 404 is what a missing record usually gets
NOT_FOUND = (400, 404)


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


def horizon(options: SyncOptions, backfilled: bool, now: datetime) -> tuple[datetime, datetime]:
    """The [start, end) of appointment start times a run reads: a backfill window as given, the
    rolling window once the location is backfilled, else (first run, --full-refresh, --reconcile)
    everything from start_date (default three years back) to the look-ahead."""
    if options.end_date is not None:
        return options.start_date or now - settings.APPOINTMENT_DEFAULT_HISTORY, options.end_date
    if backfilled and not options.full_refresh and not options.reconcile:
        return now - options.appointment_lookback, now + options.appointment_lookahead
    return options.start_date or now - settings.APPOINTMENT_DEFAULT_HISTORY, now + options.appointment_lookahead


@dlt.resource(name="appointments", write_disposition="merge", primary_key="id", columns=APPOINTMENT_COLUMNS)
def appointments(ctx: LocationContext) -> Iterator[list[dict[str, Any]]]:
    state = ctx.resource_state("appointments")
    backfilled: dict[str, str] = state.setdefault("backfilled", {})
    options = ctx.options
    now = datetime.now(UTC)
    start, end = horizon(options, ctx.location_id in backfilled, now)
    report = ctx.report("appointments")
    deleted = ctx.deleted_ids("appointments")
    listed: set[str] = set()
    wide_refusals: dict[str, Any] = state.setdefault("wide_refused", {})
    calendar_ids = {str(calendar["id"]) for calendar in ctx.calendars(calendar_list) if calendar.get("id")}
    for events in _calendar_events(ctx, sorted(calendar_ids), start, end, wide_refusals, now):
        listed.update(str(event.get("id")) for event in events)
        rows = [_row(ctx, event) for event in events if event.get("id") not in deleted]
        report.rows += len(rows)
        if rows:
            yield rows
    sweeping = options.reconcile and options.end_date is None
    judged = _judged(ctx, calendar_ids, start, end) if sweeping else set()
    # by id: what webhooks named, and what the sweep misses (moved out of the horizon, or deleted)
    wanted = (set(ctx.changed_appointments) | judged) - listed - deleted
    rows = [row for row in (_by_id(ctx, event_id) for event_id in sorted(wanted)) if row is not None]
    report.rows += len(rows)
    if rows:
        yield rows
    gone = set(deleted)
    if sweeping:
        gone.update(ctx.sweep("appointments", listed | {str(row["id"]) for row in rows}, judged))
    if gone:
        yield hard_delete_rows(ctx, "appointments", gone)
    if options.end_date is None:
        backfilled[ctx.location_id] = to_iso_z(now)
        state.setdefault("last_success", {})[ctx.location_id] = to_iso_z(now)


class _NoEventList(ApiError):
    """A 200 without an `events` list."""


def _events(ctx: LocationContext, calendar_id: str, lower: datetime, upper: datetime) -> list[dict[str, Any]]:
    body = ctx.client.get(
        settings.CALENDAR_EVENTS, version=settings.VERSION_2021_04_15, location_id=ctx.location_id,
        params={"locationId": ctx.location_id, "calendarId": calendar_id,
                "startTime": str(int(lower.timestamp() * 1000)), "endTime": str(int(upper.timestamp() * 1000))},
    )
    events = body.get("events")
    if not isinstance(events, list):
        raise _NoEventList(f"location {ctx.location_id}: calendar events response has no 'events' list")
    return events


Window = tuple[str, datetime, datetime]  # a calendar and [lower, upper) of appointment start times


class _Refused:
    """A wide window the API would not answer (not a transient failure)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _calendar_events(ctx: LocationContext, calendar_ids: list[str], start: datetime, end: datetime,
                     refusals: dict[str, Any], now: datetime) -> Iterator[list[dict[str, Any]]]:
    """Every calendar's events of [start, end), one list per request, the calendars side by side.

    Wide windows first (the default rolling window is one request per calendar). A window the API
    refuses is read in narrow windows, and every window for a day (`refusals`, in the resource
    state). A wide answer long enough to have been cut short by a cap the API may apply is read
    again in narrow windows. Each step's requests are known before it starts, so they go out
    together (`client.map_pages`): one at a time, a distant API's latency adds up per window.
    """
    narrow = settings.APPOINTMENT_BACKFILL_WINDOW

    def fetch(window: Window) -> list[dict[str, Any]]:
        return _events(ctx, *window)

    if _refused_lately(refusals.get(ctx.location_id), now):
        yield from ctx.client.map_pages(fetch, [(calendar_id, lower, upper) for calendar_id in calendar_ids
                                                for lower, upper in windows(start, end, narrow)])
        return

    def wide(window: Window) -> list[dict[str, Any]] | _Refused:
        if window[2] - window[1] <= narrow:
            return fetch(window)  # as narrow as it gets: any failure is the read's
        try:
            return fetch(window)
        except ApiError as exc:
            if not isinstance(exc, _NoEventList) and (isinstance(exc, RateLimited) or exc.status is None
                                                      or exc.status in (401, 429) or exc.status >= 500):
                raise  # not the window's answer: fails the resource as anywhere
            return _Refused("a 200 without an events list" if isinstance(exc, _NoEventList) else f"HTTP {exc.status}")

    spans = [(calendar_id, lower, upper) for calendar_id in calendar_ids
             for lower, upper in windows(start, end, settings.APPOINTMENT_WIDE_WINDOW)]
    if not spans:
        return
    # the first goes alone: if the API refuses wide windows, the others need not be refused too
    probe = wide(spans[0])
    answers = itertools.chain([probe], ctx.client.map_pages(wide, spans[1:]) if not isinstance(probe, _Refused)
                              else (probe for _ in spans[1:]))
    again: list[Window] = []
    for (calendar_id, lower, upper), answer in zip(spans, answers, strict=True):
        if isinstance(answer, _Refused):
            if not _refused_lately(refusals.get(ctx.location_id), now):
                refusals[ctx.location_id] = {"reason": answer.reason, "at": to_iso_z(now)}
                ctx.report("appointments").warnings.append(
                    f"calendar events: a {(upper - lower).days}-day window was refused ({answer.reason}); "
                    f"reading {narrow.days}-day windows for a day")
            again.extend((calendar_id, a, b) for a, b in windows(lower, upper, narrow))
        elif upper - lower > narrow and len(answer) >= settings.APPOINTMENT_SPLIT_AT:
            again.extend((calendar_id, a, b) for a, b in windows(lower, upper, narrow))
        else:
            yield answer
    yield from ctx.client.map_pages(fetch, again)


def _refused_lately(entry: Any, now: datetime) -> bool:
    """Whether a refusal of wide windows is remembered and younger than a day (then probe again)."""
    if not isinstance(entry, dict):
        return False
    try:
        at = to_utc(entry.get("at"))
    except ValueError:
        return False
    return at is not None and now - at < PROBE_TTL


def _row(ctx: LocationContext, event: dict[str, Any]) -> dict[str, Any]:
    row = {**event, "locationId": event.get("locationId") or ctx.location_id}
    convert_timestamps(row, APPOINTMENT_TIMESTAMPS)
    return row


def _by_id(ctx: LocationContext, event_id: str) -> dict[str, Any] | None:
    """One appointment a webhook named; None when it no longer exists (its AppointmentDelete
    webhook or the reconcile sweep removes it)."""
    try:
        body = ctx.client.get(settings.APPOINTMENT.format(event_id=quote(event_id, safe="")),
                              version=settings.VERSION_2021_04_15, location_id=ctx.location_id)
    except ApiError as exc:
        if exc.status not in NOT_FOUND:
            raise
        logger.info("location %s: appointment %s from a webhook is gone (HTTP %s); skipped", ctx.location_id,
                    event_id, exc.status)
        return None
    event = body.get("event")
    if not isinstance(event, dict) or not event.get("id"):
        raise ApiError(f"location {ctx.location_id}: appointment response has no 'event' object")
    return _row(ctx, event)


def _judged(ctx: LocationContext, calendar_ids: set[str], start: datetime, end: datetime) -> set[str]:
    """Loaded appointments the re-read would have listed if they still existed."""
    return {event_id for event_id, (starts, calendar_id) in ctx.known_appointments.items()
            if starts is not None and start <= starts < end and calendar_id in calendar_ids}
