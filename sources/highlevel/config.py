"""User configuration, resolved once from dlt's providers (env vars, .dlt/*.toml) and validated.

Every problem becomes a ConfigError naming the key and the fix, before any request is made.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlparse

import dlt

from . import settings
from .errors import ConfigError
from .normalize import to_utc
from .tokenstore import DEFAULT_TOKEN_STORE

SECTION = "sources.highlevel"
# a second run of a pipeline waits this long for the first (an hour covers a big backfill's cycle)
DEFAULT_RUN_LOCK_TIMEOUT_S = 3600.0


@dataclass(frozen=True)
class SourceConfig:
    base_url: str = settings.DEFAULT_BASE_URL
    location_ids: tuple[str, ...] = ()
    company_id: str | None = None
    private_integration_token: str | None = field(default=None, repr=False)
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    token_store: str = DEFAULT_TOKEN_STORE
    start_date: datetime | None = None
    overlap: timedelta = settings.DEFAULT_OVERLAP
    contacts_page_size: int = settings.CONTACTS_PAGE_LIMIT_MAX
    chunk_rows: int = settings.DEFAULT_CHUNK_ROWS
    max_attempts: int = settings.DEFAULT_MAX_ATTEMPTS
    timeout_s: float = settings.DEFAULT_TIMEOUT_S
    # locations fetched side by side, each at its own rate budget
    max_parallel_locations: int = settings.DEFAULT_MAX_PARALLEL_LOCATIONS
    # high-volume tables become Arrow tables (dlt's row normalizer skipped); False: dlt's JSON path
    columnar: bool = True
    # how long a run waits for another run of the same pipeline to finish (pipelines/runlock.py)
    run_lock_timeout_s: float = DEFAULT_RUN_LOCK_TIMEOUT_S
    # appointments have no change filter: each run re-reads this window around now, per calendar
    appointment_lookback: timedelta = settings.APPOINTMENT_LOOKBACK
    appointment_lookahead: timedelta = settings.APPOINTMENT_LOOKAHEAD
    # notes (a request per changed contact) are opt-in; at most this many notes requests per
    # location and run, the rest deferred to the next run
    sync_notes: bool = False
    notes_max_requests: int = settings.DEFAULT_NOTES_MAX_REQUESTS
    # requests in flight at once across every location of a run (each location stays within its
    # own budget): what hides HighLevel's latency
    max_requests_in_flight: int = settings.DEFAULT_MAX_REQUESTS_IN_FLIGHT
    # time slices a long search walk is read in, side by side (1: one walk, a page at a time)
    search_slices: int = settings.DEFAULT_SEARCH_SLICES
    # a plain run also sweeps (full re-read, deletions) a location whose last sweep is older; 0: never
    sweep_every_hours: float = settings.DEFAULT_SWEEP_EVERY_HOURS
    # invoices, orders, transactions, subscriptions change after creation and have no change filter:
    # every run re-reads the ones created (issued) in this many days
    payments_days_back: int = settings.DEFAULT_PAYMENTS_DAYS_BACK
    # custom-object relations cost a request per record: opt-in, capped per location and run
    sync_relations: bool = False
    relations_max_requests: int = settings.DEFAULT_RELATIONS_MAX_REQUESTS


def _lookup(key: str, secret: bool = False) -> Any:
    accessor = dlt.secrets if secret else dlt.config
    try:
        return accessor.get(f"{SECTION}.{key}")
    except Exception as exc:  # a malformed toml file surfaces here
        raise ConfigError(f"cannot read {SECTION}.{key}: {exc}") from None


def load_config(**overrides: Any) -> SourceConfig:
    """Read `sources.highlevel.*`; keyword overrides (from CLI flags) win when not None."""
    raw: dict[str, Any] = {
        "base_url": _lookup("base_url"),
        "location_ids": _lookup("location_ids") or _lookup("location_id"),
        "company_id": _lookup("company_id"),
        "private_integration_token": _lookup("private_integration_token", secret=True),
        "client_id": _lookup("credentials.client_id", secret=True),
        "client_secret": _lookup("credentials.client_secret", secret=True),
        "token_store": _lookup("token_store"),
        "start_date": _lookup("start_date"),
        "overlap_minutes": _lookup("overlap_minutes"),
        "contacts_page_size": _lookup("contacts_page_size"),
        "chunk_rows": _lookup("chunk_rows"),
        "max_attempts": _lookup("max_attempts"),
        "timeout_s": _lookup("timeout_s"),
        "max_parallel_locations": _lookup("max_parallel_locations"),
        "columnar": _lookup("columnar"),
        "run_lock_timeout_s": _lookup("run_lock_timeout_s"),
        "appointments_days_back": _lookup("appointments_days_back"),
        "appointments_days_ahead": _lookup("appointments_days_ahead"),
        "sync_notes": _lookup("sync_notes"),
        "notes_max_requests": _lookup("notes_max_requests"),
        "max_requests_in_flight": _lookup("max_requests_in_flight"),
        "search_slices": _lookup("search_slices"),
        "sweep_every_hours": _lookup("sweep_every_hours"),
        "payments_days_back": _lookup("payments_days_back"),
        "sync_relations": _lookup("sync_relations"),
        "relations_max_requests": _lookup("relations_max_requests"),
    }
    raw.update({k: v for k, v in overrides.items() if v is not None})
    return validate(raw)


def validate(raw: dict[str, Any]) -> SourceConfig:
    base_url = str(raw.get("base_url") or settings.DEFAULT_BASE_URL).strip().rstrip("/")
    parsed = urlparse(base_url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError(
            f"base_url {base_url!r} is not an http(s) URL; set SOURCES__HIGHLEVEL__BASE_URL to e.g. "
            f"{settings.DEFAULT_BASE_URL}"
        )
    token = raw.get("private_integration_token")
    if token is not None and not isinstance(token, str):
        raise ConfigError("private_integration_token must be a string")
    return SourceConfig(
        base_url=base_url,
        location_ids=parse_locations(raw.get("location_ids")),
        company_id=(str(raw["company_id"]).strip() or None) if raw.get("company_id") else None,
        private_integration_token=token.strip() if token else None,
        client_id=_optional_str("credentials.client_id", raw.get("client_id")),
        client_secret=_optional_str("credentials.client_secret", raw.get("client_secret")),
        token_store=_optional_str("token_store", raw.get("token_store")) or DEFAULT_TOKEN_STORE,
        start_date=parse_date("start_date", raw.get("start_date")),
        overlap=timedelta(minutes=_number("overlap_minutes", raw.get("overlap_minutes"), 5, 0, 24 * 60)),
        contacts_page_size=int(_number("contacts_page_size", raw.get("contacts_page_size"),
                                       settings.CONTACTS_PAGE_LIMIT_MAX, 1, settings.CONTACTS_PAGE_LIMIT_MAX)),
        chunk_rows=int(_number("chunk_rows", raw.get("chunk_rows"), settings.DEFAULT_CHUNK_ROWS, 0, 10_000_000)),
        max_attempts=int(_number("max_attempts", raw.get("max_attempts"), settings.DEFAULT_MAX_ATTEMPTS, 1, 50)),
        timeout_s=_number("timeout_s", raw.get("timeout_s"), settings.DEFAULT_TIMEOUT_S, 1, 600),
        max_parallel_locations=int(_number("max_parallel_locations", raw.get("max_parallel_locations"),
                                           settings.DEFAULT_MAX_PARALLEL_LOCATIONS, 1, 256)),
        columnar=_flag("columnar", raw.get("columnar"), True),
        run_lock_timeout_s=_number("run_lock_timeout_s", raw.get("run_lock_timeout_s"),
                                   DEFAULT_RUN_LOCK_TIMEOUT_S, 0, 7 * 24 * 3600),
        appointment_lookback=timedelta(days=_number("appointments_days_back", raw.get("appointments_days_back"),
                                                    settings.APPOINTMENT_LOOKBACK.days, 0, 20 * 365)),
        appointment_lookahead=timedelta(days=_number("appointments_days_ahead", raw.get("appointments_days_ahead"),
                                                     settings.APPOINTMENT_LOOKAHEAD.days, 0, 20 * 365)),
        sync_notes=_flag("sync_notes", raw.get("sync_notes"), False),
        notes_max_requests=int(_number("notes_max_requests", raw.get("notes_max_requests"),
                                       settings.DEFAULT_NOTES_MAX_REQUESTS, 0, 1_000_000)),
        max_requests_in_flight=int(_number("max_requests_in_flight", raw.get("max_requests_in_flight"),
                                           settings.DEFAULT_MAX_REQUESTS_IN_FLIGHT, 1, 1024)),
        search_slices=int(_number("search_slices", raw.get("search_slices"), settings.DEFAULT_SEARCH_SLICES, 1, 64)),
        sweep_every_hours=_number("sweep_every_hours", raw.get("sweep_every_hours"),
                                  settings.DEFAULT_SWEEP_EVERY_HOURS, 0, 24 * 365),
        payments_days_back=int(_number("payments_days_back", raw.get("payments_days_back"),
                                       settings.DEFAULT_PAYMENTS_DAYS_BACK, 0, 20 * 365)),
        sync_relations=_flag("sync_relations", raw.get("sync_relations"), False),
        relations_max_requests=int(_number("relations_max_requests", raw.get("relations_max_requests"),
                                           settings.DEFAULT_RELATIONS_MAX_REQUESTS, 0, 1_000_000)),
    )


def parse_locations(value: Any) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ConfigError(f"location_ids must be a list or a comma-separated string, got {type(value).__name__}")
    ids = tuple(str(item).strip() for item in items if str(item).strip())
    for location_id in ids:
        if location_id != "all" and (not location_id.isalnum() or len(location_id) > 64):
            raise ConfigError(f"location id {location_id!r} is malformed: HighLevel ids are short alphanumeric strings")
    return ids


def parse_date(name: str, value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    try:
        return to_utc(value)
    except ValueError:
        raise ConfigError(
            f"{name} {value!r} is not a date; use ISO-8601 like 2024-01-31 or 2024-01-31T00:00:00Z"
        ) from None


def _number(name: str, value: Any, default: float, low: float, high: float) -> float:
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number between {low:g} and {high:g}, got {value!r}") from None
    if not low <= number <= high:
        raise ConfigError(f"{name} must be between {low:g} and {high:g}, got {value!r}")
    return number


def _flag(name: str, value: Any, default: bool) -> bool:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {value!r}")


def _optional_str(name: str, value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str | int):
        raise ConfigError(f"{name} must be a string")
    return str(value).strip() or None
