"""run_sync: one sync of one or more locations into a dlt destination; shared by CLI, demo, webhooks.

A run is four stages, in this order:
1. plan: resources, options, credentials and locations, checked before any request;
2. read: locations are read side by side, each at its own rate budget, into spill buffers
   (`fetch.py`), so requests never wait for loads;
3. extract, normalize, load: whatever reads have finished is extracted and loaded together, many
   small locations in one cycle, a big backfill chunk by chunk; each location's cursors are part
   of the same extract as its rows, so they commit or vanish together;
4. commit: a location whose reads are all loaded gets its webhook deletions marked applied and its
   result reported.
A location (or resource) that fails commits nothing of its own and costs the others nothing.
After the last load the analyst layer (`analyst/`: wide views, opportunity history) catches up.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import dlt
import pyarrow as pa
from dlt.common.destination import Destination
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

from sources.highlevel import (
    RESOURCES,
    FetchedItems,
    SyncOptions,
    fetched_source,
    location_context,
    select_resources,
    split_by_location,
)
from sources.highlevel.client import AuthProvider, HighLevelClient, LocationStats
from sources.highlevel.columnar import LOAD_ID_CONFIG, KnownSchema, to_arrow_items
from sources.highlevel.config import SourceConfig, load_config
from sources.highlevel.endpoints import LISTS
from sources.highlevel.errors import ConfigError
from sources.highlevel.killpoints import arm_dlt, kill_point
from sources.highlevel.settings import DEFAULT_RESOURCES
from sources.highlevel.spill import MemoryBudget

from . import analyst, deletions
from .credentials import Credentials, installed_locations, resolve_credentials
from .datasetlock import dataset_lock, dataset_lock_timeout
from .fetch import Batch, Convert, Fetcher, LocationRun, Unit
from .installs import InstallRegistry
from .progress import ProgressSink
from .recovery import discard_unloaded
from .results import LocationResult, SyncResult, describe_failure
from .runlock import run_lock
from .sweeps import sweep_due

__all__ = ["LocationResult", "SyncRequest", "SyncResult", "describe_failure", "make_pipeline", "run_sync"]

logger = logging.getLogger("highlevel.sync")

PIPELINE_NAME = "highlevel"
DEFAULT_INBOX = ".dlt/highlevel_webhooks.sqlite"
# the high-volume resources, loaded as Arrow tables unless `columnar` is off
COLUMNAR_RESOURCES = ("contacts", "opportunities", "conversations", "messages")
# resources whose deletions the `deletions` table records
DELETABLE = {"contacts", "opportunities", "appointments", "tasks", "notes", *LISTS, "object_records", "relations"}
DEFAULT_DATASET = "highlevel"
# rows one extract + load cycle takes at most when reads are not chunked (chunk_rows = 0);
# otherwise chunk_rows: a big backfill loads chunk by chunk, small locations share a cycle
LOAD_BATCH_ROWS = 100_000


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
    # skip (with a warning) a resource the token's scopes do not cover even when named in
    # `resources`: for runs that name resources on the user's behalf (webhook-triggered runs)
    skip_unauthorised: bool = False
    start_date: datetime | None = None
    end_date: datetime | None = None
    reconcile: bool = False
    inbox_path: str | None = None  # default: sources.highlevel.webhook_inbox_path, else DEFAULT_INBOX
    wait: bool = True  # another run of the pipeline in progress: wait for it (False: RunInProgress)


@dataclass
class Plan:
    """Everything stage 1 decides; the later stages only follow it."""

    credentials: Credentials
    config: SourceConfig
    options: SyncOptions
    resources: list[str]


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
    progress: ProgressSink | None = None,
) -> SyncResult:
    """Sync every selected location; never raises for a location's failure (see SyncResult.ok).

    Raises ConfigError before any request when the configuration cannot work, and RunInProgress /
    RunLockTimeout when another run of the same pipeline holds it.
    """
    started = time.monotonic()
    plan = _plan(request, config or load_config(), auth)
    _arrow_on_system_allocator()
    with run_lock(request.pipeline_name, request.pipelines_dir, plan.config.run_lock_timeout_s, request.wait), \
            _fewer_gc_passes(), dataset_lock_timeout(plan.config.run_lock_timeout_s):
        return _sync(request, plan, client_options, progress, started)


# the cycle collector's generation-0 threshold while syncs run (Python's default: 700)
GC_FIRST_GENERATION = 20_000


class _GcThreshold:
    """How many syncs run in this process now, and the collector threshold from before the first."""

    lock = threading.Lock()
    running = 0
    saved: tuple[int, ...] = ()


@contextlib.contextmanager
def _fewer_gc_passes() -> Any:
    """Python's cycle collector runs every 700 new containers by default; a sync creates millions
    (every parsed page is dicts and lists, none in cycles), and the collections cost ~13 % of a
    contacts run's CPU. Rarer ones while syncs run (in-process webhook runs may overlap); the last
    one to finish puts the process's setting back. 20,000 measured as fast as 50,000 without its
    extra peak memory; `bench/contacts_throughput.py --compare-gc-threshold 700` weighs it."""
    with _GcThreshold.lock:
        if _GcThreshold.running == 0:
            _GcThreshold.saved = gc.get_threshold()
            gc.set_threshold(max(_GcThreshold.saved[0], GC_FIRST_GENERATION), *_GcThreshold.saved[1:])
        _GcThreshold.running += 1
    try:
        yield
    finally:
        with _GcThreshold.lock:
            _GcThreshold.running -= 1
            if _GcThreshold.running == 0:
                gc.set_threshold(*_GcThreshold.saved)


def _arrow_on_system_allocator() -> None:
    """Arrow's default allocator (mimalloc in the pyarrow wheels) keeps freed pages for reuse, and
    a run builds and drops Arrow tables for every batch: with it an agency's first run (200
    locations) peaked at 605 MB, with the system allocator at 389 MB, no slower
    (`bench/agency.py --locations 200 --skip-single`). Process-wide and for good, as Arrow's pool
    is; a user's own choice (ARROW_DEFAULT_MEMORY_POOL) stands."""
    if not os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        pa.set_memory_pool(pa.system_memory_pool())


def _sync(request: SyncRequest, plan: Plan, client_options: dict[str, Any] | None, progress: ProgressSink | None,
          started: float) -> SyncResult:
    """Stages 2 to 4, under the pipeline's run lock."""
    arm_dlt()  # test-only crash points inside dlt; nothing unless HIGHLEVEL_KILL_POINT names one
    pipeline = make_pipeline(request)
    discard_unloaded(pipeline)  # what a killed run left behind (see recovery.py)
    loader_format = _loader_format(pipeline)
    client_kwargs = {"max_attempts": plan.config.max_attempts, "timeout_s": plan.config.timeout_s,
                     "max_in_flight": plan.config.max_requests_in_flight, **(client_options or {})}
    with HighLevelClient(plan.config.base_url, plan.credentials.auth, **client_kwargs) as client:
        book = _Book(plan, pipeline, client, open_inbox(request), progress)
        locations = _locations(plan, client)
        book.planned(locations)
        fetcher = Fetcher(plan.resources, book.start, _converter(plan, pipeline), MemoryBudget(),
                          plan.config.max_parallel_locations,
                          skippable=plan.resources if request.resources is None or request.skip_unauthorised
                          else ())
        # stage 2 runs in the fetcher's workers; each batch is what they finished reading
        for batch in fetcher.batches(locations, plan.options.chunk_rows or LOAD_BATCH_ROWS):
            failure = _extract_and_load(pipeline, batch, loader_format, book.table_rows, progress)  # stage 3
            if failure is not None:  # the destination refused: nothing more can commit in this run
                fetcher.cancel()
                book.stop(failure, locations)
                break
            book.commit(batch.finished)  # stage 4
            if any(unit.resource == "contacts" for unit in batch.units):
                kill_point("between_chunks")  # test-only: a contacts chunk is loaded, the next is not
    analyst.refresh_after_load(pipeline)  # wide views, opportunity history: after every load
    return SyncResult(book.results, time.monotonic() - started, pipeline, book.table_rows)


class _Book:
    """The run's bookkeeping: each location's starting state, and its result once it is done."""

    def __init__(self, plan: Plan, pipeline: Any, client: HighLevelClient, inbox: Any,
                 progress: ProgressSink | None) -> None:
        self.plan, self.pipeline, self.client, self.inbox, self.progress = plan, pipeline, client, inbox, progress
        states = copy.deepcopy(pipeline.state.get("sources", {}).get("highlevel", {}).get("resources", {}))
        self.parts = {name: split_by_location(states.get(name, {})) for name in plan.resources}
        # locations started and not yet committed: a committed one's context (its state, shared
        # reads, loaded ids) is let go, or an agency run would hold every location's until the end
        self.open_runs: dict[int, LocationRun] = {}
        self.started: set[str] = set()
        self.results: list[LocationResult] = []
        self.table_rows: dict[str, int] = {}
        self.loaded_tasks: dict[str, dict[str, deletions.LoadedTask]] = {}
        # the lists' loaded ids per location, read once for all locations (a list re-read in full
        # judges its deletions every run, the others when a location sweeps)
        self.loaded_lists: dict[str, dict[str, set[str]]] = {}

    def planned(self, locations: list[str]) -> None:
        if "tasks" in self.plan.resources:  # every run judges loaded open tasks: all of them, in one query
            self.loaded_tasks = deletions.loaded_tasks_by_location(self.pipeline, locations)
        self.loaded_lists = deletions.loaded_ids_by_table(
            self.pipeline, [name for name in self.plan.resources if name in LISTS or name == "object_records"],
            locations)
        if self.progress is not None:
            self.progress.locations_planned(len(locations))

    def start(self, location_id: str) -> LocationRun:
        """A location about to be read: its context, its part of the state, its pending deletions."""
        plan = self.plan
        states = {name: self.parts[name].pop(location_id, {}) for name in plan.resources}
        options = plan.options
        if not options.reconcile and sweep_due(location_id, states, plan.config.sweep_every_hours):
            options = replace(options, reconcile=True)
        ctx = location_context(self.client, location_id, plan.credentials.company_id, options)
        ctx.states = states
        deletions.prepare(ctx, self.inbox, self.pipeline, options.reconcile, plan.resources,
                          self.loaded_tasks.pop(location_id, {}))
        for name, loaded in self.loaded_lists.items():
            ctx.known_ids[name] = loaded.pop(location_id, set())
        run = LocationRun(ctx, LocationResult(location_id))
        self.open_runs[id(run)] = run
        self.started.add(location_id)
        self.client.governor(location_id)  # its stats exist from now on, for the progress display
        if self.progress is not None:
            self.progress.location_started(location_id, ctx.reports, self.client.stats[location_id])
        return run

    def commit(self, finished: list[LocationRun]) -> None:
        """Locations whose reads are all loaded: webhook deletions applied, results reported."""
        for run in finished:
            if "deletions" in self.plan.resources and "deletions" not in run.result.resource_errors \
                    and not run.dropped:
                deletions.commit(run.ctx, self.inbox)
            self.results.append(_close(run, self.client))
            self.open_runs.pop(id(run), None)
            if self.progress is not None:
                self.progress.location_finished(self.results[-1])

    def stop(self, failure: str, locations: list[str]) -> None:
        """The run ends early: every location not done yet fails with `failure`."""
        closed = {result.location_id for result in self.results}
        self.results.extend(_close(run, self.client, failure) for run in self.open_runs.values()
                            if run.location_id not in closed)
        self.results.extend(LocationResult(loc, error=f"not synced: {failure}") for loc in locations
                            if loc not in self.started)


def open_inbox(request: SyncRequest) -> Any:
    """The webhook inbox this run's settings name; None when no receiver ever created it."""
    return deletions.open_inbox(request.inbox_path or dlt.config.get("sources.highlevel.webhook_inbox_path")
                                or DEFAULT_INBOX)


# -- stage 1: plan ------------------------------------------------------------------------------

def _plan(request: SyncRequest, config: SourceConfig, auth: AuthProvider | None) -> Plan:
    names = request.resources
    if names is None and (config.sync_notes or config.sync_relations):
        # notes and relations are opt-in: one request per changed contact, per changed record
        names = [*DEFAULT_RESOURCES, *(["notes"] if config.sync_notes else []),
                 *(["relations"] if config.sync_relations else [])]
    resources = select_resources(names)
    if auth is None:
        credentials = resolve_credentials(config, request.locations)
    else:
        credentials = Credentials(auth, list(request.locations or config.location_ids), config.company_id)
    if credentials.locations is not None and not credentials.locations:
        raise ConfigError("no location to sync: set SOURCES__HIGHLEVEL__LOCATION_ID or pass --locations")
    if credentials.locations is None and (not credentials.company_id or credentials.manager is None):
        raise ConfigError("agency fan-out needs company_id; set SOURCES__HIGHLEVEL__COMPANY_ID")
    if request.end_date and not request.start_date and not config.start_date:
        raise ConfigError("--end-date needs --start-date (a backfill window)")
    options = SyncOptions(
        start_date=request.start_date or config.start_date,
        end_date=request.end_date,
        overlap=config.overlap,
        contacts_page_size=config.contacts_page_size,
        chunk_rows=config.chunk_rows,
        appointment_lookback=config.appointment_lookback,
        appointment_lookahead=config.appointment_lookahead,
        notes_max_requests=config.notes_max_requests,
        relations_max_requests=config.relations_max_requests,
        payments_days_back=config.payments_days_back,
        search_slices=config.search_slices,
        full_refresh=request.full_refresh,
        reconcile=request.reconcile,
    )
    if DELETABLE & set(resources) and "deletions" not in resources:
        resources.append("deletions")
    return Plan(credentials, config, options, resources)


def _locations(plan: Plan, client: HighLevelClient) -> list[str]:
    """The configured locations, or for an agency every location the app is installed in."""
    credentials = plan.credentials
    if credentials.locations is not None:
        return list(credentials.locations)
    assert credentials.company_id is not None and credentials.manager is not None  # checked by _plan
    locations = installed_locations(client, credentials.company_id, credentials.manager.app.app_id)
    gone = InstallRegistry(plan.config.token_store).uninstalled()
    skipped = [loc for loc in locations if loc in gone]
    if skipped:
        logger.info("skipping %d location(s) that uninstalled the app: %s", len(skipped), ", ".join(skipped))
    return [loc for loc in locations if loc not in gone]


def _converter(plan: Plan, pipeline: Any) -> Convert:
    """Items as the resources yield them (dlt's JSON normalizer), or as Arrow tables (columnar).

    Built in the main thread from the dataset's schema as it is now, so every reader thread types
    a column the way the dataset already has it.
    """
    if not plan.config.columnar:
        return lambda resource, item: (item,)
    # rows are converted before the extract has a load id: the replay stamps root tables' at extract
    # (dlt's own switch would give nested tables a `_dlt_load_id` they have not on the JSON path)
    dlt.config[LOAD_ID_CONFIG] = False
    strategies = pipeline.destination.capabilities().supported_merge_strategies if pipeline.destination else []
    known = KnownSchema(pipeline.default_schema if pipeline.default_schema_name else None,
                        default_merge_strategy=strategies[0] if strategies else None)
    hints = {name: RESOURCES[name](None)._hints for name in COLUMNAR_RESOURCES if name in plan.resources}

    def convert(resource: str, item: Any) -> Iterable[Any]:
        return to_arrow_items(resource, item, hints[resource], known) if resource in hints else (item,)

    return convert


# -- stage 3: extract, normalize, load ----------------------------------------------------------

def _extract_and_load(pipeline: Any, batch: Batch, loader_format: str | None, table_rows: dict[str, int],
                      progress: ProgressSink | None) -> str | None:
    """Extract the batch (per location if together fails), then normalize and load it.

    Returns why the load failed, or None. A location whose extract fails is dropped from the run:
    its later reads would commit cursors past rows that never arrived.
    """
    if not batch.units:
        return None
    try:
        for run, error in _extract(pipeline, batch.units, loader_format):
            run.dropped = True
            run.result.error = f"extracting its data failed: {error}"
        kill_point("after_extract")
        if not pipeline.has_pending_data:
            return None
        rows = sum(unit.row_count for unit in batch.units)
        if progress is not None:
            locations = len({id(unit.run) for unit in batch.units})
            progress.stage(f"loading {rows:,} rows of {locations} location(s)")
        logger.info("normalizing and loading %d read(s)", len(batch.units))
        try:
            pipeline.normalize()
            with dataset_lock(pipeline), _kept_open(pipeline, rows):  # other pipelines (Airflow shards) load it too
                pipeline.load(workers=_load_workers(pipeline)).raise_on_failed_jobs()
        except Exception as exc:
            logger.debug("load failed", exc_info=True)
            return f"loading into the destination failed: {describe_failure(exc)}; the next run reads that data again"
        kill_point("after_load")
        for table, count in pipeline.last_trace.last_normalize_info.row_counts.items():
            if not table.startswith("_dlt"):
                table_rows[table] = table_rows.get(table, 0) + count
        for unit in batch.units:
            if not unit.run.dropped:
                for table, count in unit.rows.items():
                    unit.run.result.rows[table] = unit.run.result.rows.get(table, 0) + count
        return None
    finally:
        for unit in batch.units:
            unit.buffer.close()


def _extract(pipeline: Any, units: list[Unit], loader_format: str | None) -> list[tuple[LocationRun, str]]:
    """One extract for all units; if it fails, one per location, so one bad location costs only itself."""
    units = [unit for unit in units if not unit.run.dropped]
    groups: dict[int, list[Unit]] = {}
    for unit in units:
        groups.setdefault(id(unit.run), []).append(unit)
    try:
        if units:
            pipeline.extract(_source(units), loader_file_format=loader_format)
        return []
    except Exception as exc:
        logger.debug("extract failed", exc_info=True)
        if len(groups) == 1:
            return [(units[0].run, describe_failure(exc))]
    failed = []
    for group in groups.values():
        try:
            pipeline.extract(_source(group), loader_file_format=loader_format)
        except Exception as exc:
            logger.debug("location %s: extract failed", group[0].run.location_id, exc_info=True)
            failed.append((group[0].run, describe_failure(exc)))
    return failed


def _source(units: list[Unit]) -> Any:
    return fetched_source([FetchedItems(u.resource, u.run.location_id, u.buffer, u.state, u.known) for u in units])


# -- stage 4: results ---------------------------------------------------------------------------

def _close(run: LocationRun, client: HighLevelClient, failure: str | None = None) -> LocationResult:
    """The location's result, once everything it read is loaded (or the run stopped)."""
    result, ctx = run.result, run.ctx
    if failure is not None and result.error is None:
        result.error = failure
    if result.resource_errors and result.error is None:
        result.error = "; ".join(f"{name}: {message}" for name, message in result.resource_errors.items())
    result.stats = client.stats.get(run.location_id, LocationStats())
    result.warnings = [w for report in ctx.reports.values() for w in report.warnings]
    result.notes = {name: report.requests_note for name, report in ctx.reports.items() if report.requests_note}
    result.seconds = time.monotonic() - run.started
    return result


def _loader_format(pipeline: Any) -> str | None:
    """DuckDB: parquet (its default insert_values loader is slow and memory hungry; parquet is ~5x
    faster). Elsewhere the destination's preferred format, named explicitly: left to itself dlt
    writes Arrow tables for PostgreSQL as csv, whose COPY loads empty strings as NULL."""
    if pipeline.destination is None:
        return None
    if pipeline.destination.destination_name == "duckdb":
        return "parquet"
    return str(pipeline.destination.capabilities().preferred_loader_file_format)


# DuckDB loads with one thread and one job at a time: on a 100k-contact load, parallel jobs and
# threads raised peak memory from ~440 MB to ~560 MB and were not faster (the run is bound by
# Python, not by DuckDB). A memory limit makes a big merge spill to its temp directory instead of
# growing the process. 100k contacts (bench/contacts_throughput.py --compare-memory-limit 160MB):
# peak RSS 435 MB at 160MB, 361 MB at 64MB, for 6 % more time. But not every operator spills: an
# agency's no-change run merging 30 tables of 1,000 locations failed 178 locations' loads with
# "Out of Memory Error ... 61.0 MiB used" at 64MB (bench/agency.py --locations 1000), hence 256MB.
# Applies to the loader's connections.
DUCKDB_LOADER_SETTINGS: dict[str, Any] = {"threads": 1, "memory_limit": "256MB", "preserve_insertion_order": False}


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


# a load of fewer rows keeps the DuckDB file open from job to job (`_kept_open`)
KEEP_OPEN_BELOW_ROWS = 20_000


@contextlib.contextmanager
def _kept_open(pipeline: Any, rows: int) -> Iterator[None]:
    """DuckDB: the database file stays open for a whole load step of small jobs.

    dlt opens the file for each job and closes it after (reading the catalog on every open, a
    checkpoint on every close): an agency's no-change run, many tables of a few rows each, spent a
    third of its time there. While this process holds one connection, DuckDB keeps the database
    open, so each job's connection joins it. Not for a big load: an open database keeps the memory
    of each job's merge for the next (50k contacts peaked 60 MB higher), and its open and close
    cost little beside its jobs. Held only inside the dataset lock: other pipelines loading this
    file (Airflow shards) open it in their turn.
    """
    destination = pipeline.destination
    if destination is None or destination.destination_name != "duckdb" or rows >= KEEP_OPEN_BELOW_ROWS:
        yield
        return
    client = pipeline.sql_client()
    try:
        client.open_connection()
    except Exception:  # the load opens the file itself and says what is wrong
        logger.debug("could not hold the DuckDB file open for the load", exc_info=True)
        yield
        return
    try:
        yield
    finally:
        client.close_connection()


def _load_workers(pipeline: Any) -> int:
    destination = pipeline.destination
    return 1 if destination is not None and destination.destination_name == "duckdb" else 20
