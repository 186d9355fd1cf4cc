"""What every resource of one location shares: the client, options, lazy lookups, a run report."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import dlt

from .. import settings
from ..client import HighLevelClient
from ..errors import ApiError


@dataclass(frozen=True)
class SyncOptions:
    """Per-run knobs, resolved from config and CLI flags before the source is built."""

    start_date: datetime | None = None
    end_date: datetime | None = None  # set = a stateless backfill of [start_date, end_date]
    overlap: timedelta = settings.DEFAULT_OVERLAP
    contacts_page_size: int = settings.CONTACTS_PAGE_LIMIT_MAX
    full_refresh: bool = False
    appointment_lookback: timedelta = settings.APPOINTMENT_LOOKBACK
    appointment_lookahead: timedelta = settings.APPOINTMENT_LOOKAHEAD
    reconcile: bool = False  # also list every id and report the missing ones as deletions
    # rows per extract for resources that read in chunks (contacts): each chunk is loaded and its
    # position committed before the next, so memory stays flat and a crash keeps what was loaded
    chunk_rows: int = settings.DEFAULT_CHUNK_ROWS
    # notes requests (one per contact) per location and run; the contacts left wait for the next run
    notes_max_requests: int = settings.DEFAULT_NOTES_MAX_REQUESTS
    # invoices, orders, transactions, subscriptions: a plain run re-reads those created this recently
    payments_days_back: int = settings.DEFAULT_PAYMENTS_DAYS_BACK
    # relations requests (one per custom-object record) per location and run; the rest wait
    relations_max_requests: int = settings.DEFAULT_RELATIONS_MAX_REQUESTS
    search_slices: int = settings.DEFAULT_SEARCH_SLICES  # 1: a search is one walk


@dataclass
class ResourceReport:
    """Facts a resource reports for the run summary (rows emitted, path taken, warnings)."""

    rows: int = 0
    total: int | None = None  # rows the API says match (search `total`), for progress displays
    requests_note: str = ""
    probes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    more: bool = False  # the last extract was one chunk of a longer read: extract again
    # the read stopped early on this error, yet what it read and what it still owes (state) commit:
    # the resource is reported failed without losing its queue (notes)
    failure: str | None = None


@dataclass
class LocationContext:
    client: HighLevelClient
    location_id: str
    company_id: str | None = None
    options: SyncOptions = field(default_factory=SyncOptions)
    reports: dict[str, ResourceReport] = field(default_factory=dict)
    # deletions known before the run (webhooks, earlier sweeps): resource -> [{id, deleted_at, detected_by}]
    deletions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # ids already in the destination per resource, for the reconcile sweep
    known_ids: dict[str, set[str]] = field(default_factory=dict)
    # deletions found by this run's sweep (the caller records them durably after the load)
    swept: list[dict[str, Any]] = field(default_factory=list)
    # appointments already in the destination: id -> (start time, calendar id), for the reconcile
    # sweep, which re-reads a time window per calendar and may only judge appointments inside it
    known_appointments: dict[str, tuple[datetime | None, str | None]] = field(default_factory=dict)
    # appointments changed upstream (AppointmentCreate/Update webhooks), read by id whatever their
    # date: id -> when the change was noted (the caller marks exactly that change applied)
    changed_appointments: dict[str, str] = field(default_factory=dict)
    # when notes are synced: contacts whose notes the notes read fetches (id -> dateUpdated, None
    # when unknown): those loaded since the notes read last looked (the caller's), plus those the
    # contacts read of this run loads; None: notes are not synced, nothing is recorded
    changed_contacts: dict[str, datetime | None] | None = None
    # contacts NoteCreate/Update webhooks named: id -> when noted (the caller marks them applied)
    note_changes: dict[str, str] = field(default_factory=dict)
    # notes already in the destination: contact id -> note ids (a re-read drops the ones not listed)
    known_notes: dict[str, set[str]] = field(default_factory=dict)
    # tasks loaded while open: id -> contact id (None: unknown). One the open listing no longer shows
    # was completed or deleted since, and is read by id through its contact
    open_tasks: dict[str, str | None] = field(default_factory=dict)
    # records webhooks named as changed, read by id: resource -> {id: when noted} (the caller marks
    # exactly those changes applied after the load)
    changed_records: dict[str, dict[str, str]] = field(default_factory=dict)
    # relations already in the destination: custom-object record id -> relation ids (either side)
    known_relations: dict[str, set[str]] = field(default_factory=dict)
    # resources whose read failed this run: a sweep with a failure is not a complete sweep
    failed: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # lookups several resources share (custom fields, calendars, products...): fetched once, each
    # under its own lock so one slow lookup never holds up the others or the reports
    _shared: dict[str, Any] = field(default_factory=dict)
    _shared_locks: dict[str, threading.Lock] = field(default_factory=dict)
    # resource -> this location's part of the resource's state, when the run reads outside dlt's
    # extract (see `resource_state`); None: inside an extract, dlt's own state
    states: dict[str, dict[str, Any]] | None = None
    # tells this run's chunk positions from an earlier run's (see LocationCursor.resume_point)
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def deleted_ids(self, resource: str) -> set[str]:
        return {str(d["id"]) for d in self.deletions.get(resource, [])}

    def sweep(self, resource: str, seen: set[str], candidates: set[str] | None = None) -> list[str]:
        """Ids in the destination that the API no longer lists: deleted upstream.

        `candidates` narrows the judged ids to those the listing could have shown (default: every
        id known for the resource)."""
        known = self.known_ids.get(resource, set()) if candidates is None else candidates
        missing = sorted(known - seen - self.deleted_ids(resource))
        now = datetime.now(UTC)
        for record_id in missing:
            self.swept.append({"resource": resource, "id": record_id, "location_id": self.location_id,
                               "deleted_at": now, "detected_by": "sweep"})
        return missing

    def resource_state(self, resource: str) -> dict[str, Any]:
        """Where a resource keeps its cursors: the run's private copy when reading ahead of the
        extract (committed with the rows it describes), else dlt's resource state."""
        if self.states is None:
            return dlt.current.resource_state()
        with self._lock:
            return self.states.setdefault(resource, {})

    def report(self, resource: str) -> ResourceReport:
        with self._lock:
            return self.reports.setdefault(resource, ResourceReport())

    def shared(self, key: str, fetch: Callable[[LocationContext], Any]) -> Any:
        """`fetch(self)` once per run for every resource that asks for `key`; a failed fetch is
        tried again by the next one that asks."""
        with self._lock:
            lock = self._shared_locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._shared:
                self._shared[key] = fetch(self)
            return self._shared[key]

    def custom_field_definitions(self) -> list[dict[str, Any]]:
        """Definitions for every model, fetched once per run and shared by all resources."""
        return self.shared("custom_fields", _fetch_custom_fields)  # type: ignore[no-any-return]

    def calendars(self, fetch: Callable[[LocationContext], list[dict[str, Any]]]) -> list[dict[str, Any]]:
        """The calendar list, fetched once and shared by `calendars` and `appointments`."""
        return self.shared("calendars", fetch)  # type: ignore[no-any-return]

    def location(self) -> dict[str, Any]:
        return self.shared("location", _fetch_location)  # type: ignore[no-any-return]


def _fetch_custom_fields(ctx: LocationContext) -> list[dict[str, Any]]:
    body = ctx.client.get(settings.LOCATION_CUSTOM_FIELDS.format(location_id=ctx.location_id),
                          version=settings.VERSION_2021_07_28, location_id=ctx.location_id, params={"model": "all"})
    fields = body.get("customFields")
    if not isinstance(fields, list):
        raise ApiError(f"location {ctx.location_id}: customFields response has no 'customFields' list")
    return fields


def _fetch_location(ctx: LocationContext) -> dict[str, Any]:
    body = ctx.client.get(settings.LOCATION.format(location_id=ctx.location_id),
                          version=settings.VERSION_2021_07_28, location_id=ctx.location_id)
    record = body.get("location")
    if not isinstance(record, dict):
        raise ApiError(f"location {ctx.location_id}: GET /locations response has no 'location' object")
    return record
