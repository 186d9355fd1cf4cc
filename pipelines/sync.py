"""run_sync: one sync of one or more locations into a dlt destination; shared by CLI, demo, webhooks.

Locations run one after another, each as its own extract → normalize → load. A location that
fails keeps nothing half-done (dlt discards its extract and cursors), while every location before
and after it commits normally. Packages a crashed earlier run left behind are loaded first.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import dlt
from dlt.common.destination import Destination
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

from sources.highlevel import SyncOptions, highlevel_source, location_context, select_resources, warm_resources
from sources.highlevel.client import AuthProvider, HighLevelClient, LocationStats
from sources.highlevel.config import SourceConfig, load_config
from sources.highlevel.errors import AuthError, ConfigError, HighLevelError, LocationInactive, QuotaExhausted

from . import deletions
from .credentials import Credentials, installed_locations, resolve_credentials
from .installs import InstallRegistry

logger = logging.getLogger("highlevel.sync")

PIPELINE_NAME = "highlevel"
DEFAULT_INBOX = ".dlt/highlevel_webhooks.sqlite"
# resources whose deletions the `deletions` table records
DELETABLE = {"contacts", "opportunities", "appointments"}
DEFAULT_DATASET = "highlevel"
# extracted rows that trigger a normalize + load before the next resource (smaller ones batch up)
LOAD_BATCH_ROWS = 10_000


@dataclass
class SyncRequest:
    """What to sync and where; None means "from config" or the default."""

    resources: Sequence[str] | None = None
    locations: Sequence[str] | None = None
    destination: str | Destination[Any, Any] | None = None
    dataset_name: str = DEFAULT_DATASET
    pipeline_name: str = PIPELINE_NAME
    pipelines_dir: str | None = None
    full_refresh: bool = False
    start_date: datetime | None = None
    end_date: datetime | None = None
    reconcile: bool = False
    inbox_path: str | None = None  # default: sources.highlevel.webhook_inbox_path, else DEFAULT_INBOX


@dataclass
class LocationResult:
    location_id: str
    error: str | None = None
    resource_errors: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    stats: LocationStats = field(default_factory=LocationStats)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class SyncResult:
    locations: list[LocationResult]
    seconds: float
    pipeline: Any = None

    @property
    def ok(self) -> bool:
        return all(result.ok for result in self.locations)

    def rows_by_table(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for result in self.locations:
            for table, count in result.rows.items():
                totals[table] = totals.get(table, 0) + count
        return dict(sorted(totals.items()))


def make_pipeline(request: SyncRequest) -> Any:
    kwargs: dict[str, Any] = {"pipelines_dir": request.pipelines_dir} if request.pipelines_dir else {}
    destination = request.destination or "duckdb"
    if destination == "duckdb" and not _duckdb_configured():
        destination = duckdb_destination(None)
    return dlt.pipeline(
        pipeline_name=request.pipeline_name,
        destination=destination,
        dataset_name=request.dataset_name,
        **kwargs,
    )


def run_sync(
    request: SyncRequest,
    *,
    config: SourceConfig | None = None,
    auth: AuthProvider | None = None,
    client_options: dict[str, Any] | None = None,
) -> SyncResult:
    """Sync every selected location; never raises for a location's failure (see SyncResult.ok).

    Raises ConfigError before any request when the configuration cannot work.
    """
    started = time.monotonic()
    config = config or load_config()
    resources = select_resources(request.resources)
    if auth is None:
        credentials = resolve_credentials(config, request.locations)
    else:
        credentials = Credentials(auth, list(request.locations or config.location_ids), config.company_id)
    if credentials.locations is not None and not credentials.locations:
        raise ConfigError("no location to sync: set SOURCES__HIGHLEVEL__LOCATION_ID or pass --locations")
    if request.end_date and not request.start_date and not config.start_date:
        raise ConfigError("--end-date needs --start-date (a backfill window)")
    options = SyncOptions(
        start_date=request.start_date or config.start_date,
        end_date=request.end_date,
        overlap=config.overlap,
        contacts_page_size=config.contacts_page_size,
        chunk_rows=config.chunk_rows,
        full_refresh=request.full_refresh,
        reconcile=request.reconcile,
    )
    if DELETABLE & set(resources) and "deletions" not in resources:
        resources.append("deletions")
    pipeline = make_pipeline(request)
    inbox = deletions.open_inbox(request.inbox_path or dlt.config.get("sources.highlevel.webhook_inbox_path")
                                 or DEFAULT_INBOX)
    loader_format = _loader_format(pipeline)
    _finish_pending(pipeline)

    results: list[LocationResult] = []
    client_kwargs = {"max_attempts": config.max_attempts, "timeout_s": config.timeout_s, **(client_options or {})}
    with HighLevelClient(config.base_url, credentials.auth, **client_kwargs) as client:
        locations = credentials.locations
        if locations is None:
            if not credentials.company_id or credentials.manager is None:
                raise ConfigError("agency fan-out needs company_id; set SOURCES__HIGHLEVEL__COMPANY_ID")
            locations = installed_locations(client, credentials.company_id, credentials.manager.app.app_id)
            gone = InstallRegistry(config.token_store).uninstalled()
            skipped = [loc for loc in locations if loc in gone]
            if skipped:
                logger.info("skipping %d location(s) that uninstalled the app: %s", len(skipped), ", ".join(skipped))
            locations = [loc for loc in locations if loc not in gone]
        for location_id in locations:
            results.append(_sync_location(pipeline, client, location_id, config, options, resources, loader_format,
                                          credentials.company_id, inbox))
    return SyncResult(results, time.monotonic() - started, pipeline)


def _sync_location(
    pipeline: Any,
    client: HighLevelClient,
    location_id: str,
    config: SourceConfig,
    options: SyncOptions,
    resources: list[str],
    loader_format: str | None,
    company_id: str | None,
    inbox: Any = None,
) -> LocationResult:
    result = LocationResult(location_id)
    started = time.monotonic()
    ctx = location_context(client, location_id, company_id, options)
    deletions.prepare(ctx, inbox, pipeline, options.reconcile, resources)
    # One extract per resource (per chunk for long reads): dlt commits a resource's rows and cursor
    # together or not at all, so a failing resource costs nothing to the others. Big extracts are
    # normalized and loaded before the next one is read: the rate limit is a sliding window, so the
    # budget refills while the CPU works and the next resource starts with a burst, and the run ends
    # with a small load instead of one big one. Small extracts wait and share a load.
    unloaded = 0
    stop = False
    for index, name in enumerate(resources):
        report = ctx.report(name)
        more = True
        while more and not stop:
            logger.info("location %s: extracting %s", location_id, name)
            report.more, rows_before = False, report.rows
            try:
                pipeline.extract(highlevel_source(ctx, [name]), loader_file_format=loader_format)
            except Exception as exc:
                result.resource_errors[name] = describe_failure(exc)
                deletions.forget(ctx, name)
                logger.debug("location %s resource %s failed", location_id, name, exc_info=True)
                # the token or the sub-account is the problem: other resources would fail alike
                stop = _is_location_fatal(exc)
                break
            more = report.more
            unloaded += report.rows - rows_before
            if more or unloaded >= LOAD_BATCH_ROWS:
                # requests for what comes next go out while this CPU-bound step runs
                warm_resources(ctx, resources[index + 1:], pipeline.state)
                stop = not _load(pipeline, result)
                unloaded = 0
        if stop:
            break
    ctx.close_warm()
    if result.error is None and pipeline.has_pending_data:
        _load(pipeline, result)
    if result.error is None and "deletions" in resources and "deletions" not in result.resource_errors:
        deletions.commit(ctx, inbox)
    if result.resource_errors and result.error is None:
        result.error = "; ".join(f"{name}: {message}" for name, message in result.resource_errors.items())
    result.stats = client.stats.get(location_id, LocationStats())
    result.warnings = [w for report in ctx.reports.values() for w in report.warnings]
    result.notes = {name: report.requests_note for name, report in ctx.reports.items() if report.requests_note}
    result.seconds = time.monotonic() - started
    return result


def _load(pipeline: Any, result: LocationResult) -> bool:
    """Normalize and load what the extracts queued; count its rows, or record why it failed."""
    logger.info("location %s: normalizing and loading", result.location_id)
    try:
        pipeline.normalize()
        pipeline.load(workers=_load_workers(pipeline)).raise_on_failed_jobs()
    except Exception as exc:
        result.error = f"loading into the destination failed: {describe_failure(exc)}; the next run reads " \
                       "that data again"
        logger.debug("location %s load failed", result.location_id, exc_info=True)
        return False
    for table, count in pipeline.last_trace.last_normalize_info.row_counts.items():
        if not table.startswith("_dlt"):
            result.rows[table] = result.rows.get(table, 0) + count
    return True


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and its causes (dlt wraps ours in its step errors)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _is_location_fatal(exc: BaseException) -> bool:
    return any(isinstance(e, AuthError | LocationInactive | QuotaExhausted) for e in _chain(exc))


def describe_failure(exc: BaseException) -> str:
    """The most useful one-line message in an exception chain (ours beat dlt's wrappers)."""
    ours = next((e for e in _chain(exc) if isinstance(e, HighLevelError)), None)
    if ours is not None:
        return str(ours)
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"{type(exc).__name__}: {first_line}"


def _loader_format(pipeline: Any) -> str | None:
    """DuckDB's default insert_values loader is slow and memory hungry; parquet is ~5x faster."""
    if pipeline.destination is not None and pipeline.destination.destination_name == "duckdb":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            return "jsonl"
        return "parquet"
    return None


def _finish_pending(pipeline: Any) -> None:
    """Discard packages an interrupted earlier run extracted but did not load.

    Loading them proved unsafe: after SIGKILLs, a later load failed because a merge table's nested
    table had been created without its root key; the likely cause is a package normalized against
    a stored schema the kill left out of date (not reproduced deterministically). Aborting
    restores the cursors and schema to where those packages started, so
    this run reads those rows again: it costs requests, never data, and merge makes rows that did
    reach the destination harmless.
    """
    if not pipeline.has_pending_data:
        return
    logger.warning("discarding data an interrupted earlier run did not load; cursors are rewound so this run "
                   "reads those rows again")
    pipeline.abort_packages()
    with contextlib.suppress(Exception):
        pipeline.load()  # completes the aborted package's record


# DuckDB loads with one thread and one job at a time: on a 100k-contact load, parallel jobs and
# threads raised peak memory from ~440 MB to ~560 MB and were not faster (the run is bound by
# Python, not by DuckDB). Applies to the loader's connections only, not to the file.
DUCKDB_LOADER_SETTINGS = {"threads": 1}


def duckdb_destination(path: str | Path | None) -> Destination[Any, Any]:
    """The DuckDB destination as this project loads it; None: dlt's default file (<pipeline>.duckdb)."""
    settings = dict(DUCKDB_LOADER_SETTINGS)
    credentials = DuckDbCredentials(str(path), global_config=settings) if path else DuckDbCredentials(
        global_config=settings)
    return dlt.destinations.duckdb(credentials=credentials)


def _duckdb_configured() -> bool:
    """The user configured DuckDB credentials (a path): dlt resolves them, we leave them alone."""
    for accessor in (dlt.secrets, dlt.config):
        with contextlib.suppress(Exception):
            if accessor.get("destination.duckdb.credentials"):
                return True
    return False


def _load_workers(pipeline: Any) -> int:
    destination = pipeline.destination
    return 1 if destination is not None and destination.destination_name == "duckdb" else 20
