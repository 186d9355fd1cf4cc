"""Reading locations side by side, ahead of the loader.

At most `max_parallel` locations are read at once, each at its own rate budget (the client paces
each location separately). A location's resources are read side by side, in a read pool shared by
every location (`max_reads` threads): HighLevel answers in hundreds of milliseconds, so reading one
resource after another would leave the budget idle. Three resources build on the others and wait for
them: `notes` (the contacts this run changed), `relations` (the custom-object records this run
listed) and `deletions` (what every sweep found). What a read
yields goes into a spill buffer, so requests never wait for the CPU-heavy normalize and load of
earlier data. Each finished read (a resource, or one chunk of a long one) becomes a `Unit`;
the main thread takes the units that are ready in batches, extracts and loads them together.

A read that fails leaves no unit: its rows and cursor are dropped, as if never read.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import pickle
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import orjson

from sources.highlevel import LocationContext, read_resource, settings
from sources.highlevel.endpoints import LISTS, scope_of
from sources.highlevel.errors import ScopeError
from sources.highlevel.spill import MemoryBudget, SpillBuffer

from . import deletions
from .results import LocationResult, describe_failure, is_location_fatal

logger = logging.getLogger("highlevel.fetch")

# resources without a change filter, read in full every run (appointments: a rolling window)
# (and the lists: re-read in full, or a recent window whose unchanged answer needs no load either)
REREAD_IN_FULL = frozenset({"pipelines", "calendars", "appointments", "tasks", "custom_fields", "users",
                            "locations", *LISTS, "object_records"})

Convert = Callable[[str, Any], Iterable[Any]]
# items of a full re-read held unserialized until its digest is known (see _read_resource)
HELD_ITEMS = 64


class Cancelled(Exception):
    """The run stopped (a load failed) or this location's data can no longer be committed."""


@dataclass
class LocationRun:
    """One location's way through the run: read by a worker, extracted and loaded by the main thread."""

    ctx: LocationContext
    result: LocationResult
    started: float = field(default_factory=time.monotonic)
    read_done: bool = False
    dropped: bool = False  # an extract of its data failed: later units must not commit past it
    # per resource and state section, the keys this location's state has had so far
    known: dict[str, dict[str, set[str]]] = field(default_factory=dict)

    @property
    def location_id(self) -> str:
        return self.ctx.location_id


@dataclass
class Unit:
    """One finished read of one resource (or one chunk of it) of one location, ready to extract."""

    run: LocationRun
    resource: str
    buffer: SpillBuffer
    state: dict[str, Any]  # the location's part of the resource state after this read
    known: dict[str, set[str]]  # the keys that part had before this read, per section
    rows: Counter[str]  # rows per table, as read

    @property
    def row_count(self) -> int:
        return sum(self.rows.values())


@dataclass
class Batch:
    """Units to extract and load together, and the locations that are complete once they are loaded."""

    units: list[Unit]
    finished: list[LocationRun]


@dataclass
class _Done:
    run: LocationRun


class Fetcher:
    """Starts location reads as slots free up and hands out what they read, in batches."""

    def __init__(
        self,
        resources: Sequence[str],
        start: Callable[[str], LocationRun],
        convert: Convert,
        budget: MemoryBudget,
        max_parallel: int,
        max_reads: int = settings.DEFAULT_MAX_PARALLEL_READS,
        skippable: Iterable[str] = (),
    ) -> None:
        """`start(location_id)` prepares a location in the main thread (its context, state,
        pending deletions) and returns its run; reading then happens in a worker."""
        self._resources = list(resources)
        self._start = start
        self._convert = convert
        self._budget = budget
        self._max_parallel = max_parallel
        self._max_reads = max_reads
        # resources the run chose by default: one the token's scopes do not cover is skipped, not failed
        self._skippable = frozenset(skippable)
        self._reads: ThreadPoolExecutor | None = None
        self._events: queue.Queue[Unit | _Done] = queue.Queue()
        self._cancelled = threading.Event()
        self._ready_rows = 0  # rows of the units waiting in `batches`

    def cancel(self) -> None:
        self._cancelled.set()

    def batches(self, locations: Iterable[str], max_rows: int, max_wait_s: float = 10.0) -> Iterator[Batch]:
        """Batches of ready units, oldest first, each at most `max_rows` rows (but one unit at least).

        Every extract + load cycle has a fixed cost (about a second on DuckDB, whatever its size),
        so small reads wait for company: a batch goes when `max_rows` rows are ready, when a ready
        read has waited `max_wait_s`, or when no read is running any more.
        """
        waiting = iter(locations)
        active = 0
        ready: list[tuple[float, Unit]] = []
        read: list[LocationRun] = []
        with ThreadPoolExecutor(max_workers=self._max_parallel, thread_name_prefix="highlevel-location") as pool, \
                ThreadPoolExecutor(max_workers=self._max_reads, thread_name_prefix="highlevel-read") as reads:
            self._reads = reads
            try:
                while True:
                    active -= self._drain(ready, read)
                    # a location read but not yet loaded holds its context and buffers: when the
                    # loader falls behind (a first run, CPU bound), reading waits for it instead of
                    # filling memory with locations read ahead
                    while active < self._max_parallel and active + len(read) < 2 * self._max_parallel \
                            and not self._cancelled.is_set():
                        location_id = next(waiting, None)
                        if location_id is None:
                            break
                        pool.submit(self._read_location, self._start(location_id))
                        active += 1
                    if not (active or ready or read):
                        return
                    due = not active or self._ready_rows >= max_rows
                    if not due:
                        timeout = None if not ready else max(0.0, ready[0][0] + max_wait_s - time.monotonic())
                        try:
                            active -= self._collect(self._events.get(timeout=timeout), ready, read)
                            continue  # something happened: look again
                        except queue.Empty:
                            pass  # the oldest ready read waited long enough
                    taken: list[Unit] = []
                    rows = 0
                    while ready and (not taken or rows + ready[0][1].row_count <= max_rows):
                        unit = ready.pop(0)[1]
                        taken.append(unit)
                        rows += unit.row_count
                        self._ready_rows -= unit.row_count
                    left = {id(unit.run) for _, unit in ready}
                    finished = [run for run in read if id(run) not in left]
                    read = [run for run in read if id(run) in left]
                    yield Batch(taken, finished)
            finally:
                self._cancelled.set()  # on any exit: workers stop at their next item
                for _, unit in ready:
                    unit.buffer.close()

    def _collect(self, event: Unit | _Done, ready: list[tuple[float, Unit]], read: list[LocationRun]) -> int:
        """File one event; 1 when it says a location's reading ended."""
        if isinstance(event, _Done):
            event.run.read_done = True
            read.append(event.run)
            return 1
        if event.run.dropped or self._cancelled.is_set():
            event.buffer.close()
        else:
            ready.append((time.monotonic(), event))
            self._ready_rows += event.row_count
        return 0

    def _drain(self, ready: list[tuple[float, Unit]], read: list[LocationRun]) -> int:
        ended = 0
        while True:
            try:
                ended += self._collect(self._events.get_nowait(), ready, read)
            except queue.Empty:
                return ended

    def _read_location(self, run: LocationRun) -> None:
        """Waits while the read pool reads the location's resources, side by side where they can be."""
        try:
            for phase in read_phases(self._resources):
                assert self._reads is not None
                futures = [self._reads.submit(self._read_resource, run, name) for name in phase]
                wait(futures)  # every read of the phase ends before the location can be reported read
                going_on = [future.result() for future in futures]  # Cancelled and bugs surface here
                if not all(going_on):
                    break
        except Cancelled:
            pass
        except Exception as exc:  # a bug, not an API failure: name it and keep the other locations going
            logger.debug("location %s: reading failed", run.location_id, exc_info=True)
            run.result.resource_errors["(read)"] = describe_failure(exc)
        finally:
            self._events.put(_Done(run))

    def _read_resource(self, run: LocationRun, name: str) -> bool:
        """Read one resource (every chunk of it); False when the location cannot go on."""
        ctx = run.ctx
        report = ctx.report(name)
        state = ctx.resource_state(name)  # this location's part, as the reads leave it
        # the keys that part has had so far: a later unit's merge drops the ones it no longer has
        known = run.known.setdefault(name, {section: set(entries) for section, entries in state.items()})
        # re-read in full every run: if nothing changed, there is nothing to load either
        digest = hashlib.blake2b(digest_size=16) if name in REREAD_IN_FULL and not ctx.options.full_refresh else None
        more = True
        while more:
            report.more = False
            buffer = SpillBuffer(self._budget)
            rows: Counter[str] = Counter()
            # a full re-read is mostly unchanged: its first items wait unserialized until the
            # digest says whether they load at all (a no-change agency run at loopback speed spent
            # an eighth of its reading CPU serializing rows it then threw away)
            held: list[Any] | None = [] if digest is not None else None
            try:
                for item in read_resource(ctx, name):
                    if self._cancelled.is_set() or run.dropped:
                        raise Cancelled
                    if digest is not None:
                        digest.update(content_bytes(item))
                    for out in self._convert(name, item):
                        rows[table_of(name, out)] += count_rows(out)
                        if held is None:
                            buffer.append(out)
                            continue
                        held.append(out)
                        if len(held) >= HELD_ITEMS:  # a big re-read: bounded memory comes first
                            for waiting in held:
                                buffer.append(waiting)
                            held = None
            except Cancelled:
                buffer.close()
                raise
            except Exception as exc:
                buffer.close()
                deletions.forget(ctx, name)
                if isinstance(exc, ScopeError) and name in self._skippable:
                    report.warnings.append(f"{name} skipped: the token lacks the {scope_of(name) or 'needed'} scope "
                                           "(re-authorise the app with it to sync this table)")
                    return True
                ctx.failed.add(name)
                run.result.resource_errors[name] = describe_failure(exc)
                logger.debug("location %s resource %s failed", run.location_id, name, exc_info=True)
                return not is_location_fatal(exc)
            more = report.more
            if digest is not None and _unchanged(state, run.location_id, digest.hexdigest()):
                buffer.close()  # the destination has these very rows: the unit only carries the state
                rows = Counter()
            elif held:
                for waiting in held:
                    buffer.append(waiting)
            before = {section: set(keys) for section, keys in known.items()}
            for section, entries in state.items():
                known.setdefault(section, set()).update(entries)
            self._events.put(Unit(run, name, buffer, copy.deepcopy(state), before, rows))
        if report.failure is not None:
            run.result.resource_errors[name] = report.failure
        return True


# read after every other resource of the location: they build on what the others read
AFTER_OTHERS = ("notes", "relations", "deletions")


def read_phases(resources: Sequence[str]) -> list[list[str]]:
    """The resources in the order they can run: everything side by side, then `notes` (the contacts
    read records the changed ones), then `deletions` (every sweep has reported)."""
    first = [name for name in resources if name not in AFTER_OTHERS]
    return [phase for phase in (first, *([name] for name in AFTER_OTHERS if name in resources)) if phase]


def content_bytes(item: Any) -> bytes:
    """What an item says, as bytes that are equal exactly when the content is: JSON (with the
    table an item is hinted to), not pickle, whose output depends on which equal strings happen to
    be one object (the JSON parser shares keys through a cache other threads fill)."""
    table = table_of("", item)
    data = getattr(item, "data", item) if hasattr(item, "meta") else item
    try:
        return table.encode() + b"\0" + orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:  # not JSON (an Arrow table): pickle is deterministic for those
        return pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)


def _unchanged(state: dict[str, Any], location_id: str, digest: str) -> bool:
    """Remember what a full re-read looked like; True when it looks the same as last time.

    The digest commits with the rows it describes (it is part of the location's state), so a
    skipped load always has a loaded twin.
    """
    digests: dict[str, str] = state.setdefault("digest", {})
    same = digests.get(location_id) == digest
    digests[location_id] = digest
    return same


def table_of(resource: str, item: Any) -> str:
    """The table an extracted item goes to: its hinted table name, else the resource's."""
    meta = getattr(item, "meta", None)
    hints = getattr(meta, "hints", None)
    if isinstance(hints, dict) and isinstance(hints.get("table_name"), str):
        return str(hints["table_name"])
    name = getattr(meta, "table_name", None)
    return name if isinstance(name, str) else resource


def count_rows(item: Any) -> int:
    data = getattr(item, "data", item) if hasattr(item, "meta") else item
    if hasattr(data, "num_rows"):
        return int(data.num_rows)
    return len(data) if isinstance(data, list) else 1
