"""Progress of a sync on stderr, so a long agency run shows that it moves, and where.

On a terminal: a live table of the locations syncing right now (per resource the records read of
the total the API's search reports, requests, 429s) and one totals line. Finished locations leave
the table, because an agency run has up to 1,000 of them; a failed one is printed above the table
so it does not vanish unseen. Anywhere else (cron, CI, a pipe): no live display, exactly one plain
line per finished location, which is what a log file wants.

run_sync reports through `ProgressSink` from its worker threads and hands over the live
`ResourceReport` / `LocationStats` objects its workers keep updating. The display polls them from
its own refresh thread a few times a second: a worker never waits on the terminal, and the cost
does not grow with the number of rows or requests.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, TextIO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    # only the annotations need these: sync.py imports this module for ProgressSink
    from sources.highlevel.client import LocationStats
    from sources.highlevel.resources.context import ResourceReport

    from .results import LocationResult

logger = logging.getLogger("highlevel.progress")

# frames per second: enough to look alive, cheap next to the sync itself
REFRESH_PER_SECOND = 4.0
# running locations shown in the table; the rest are counted in one line
MAX_LOCATION_ROWS = 20


class ProgressSink(Protocol):
    """What run_sync reports while it runs. Every method may be called from any worker thread."""

    def locations_planned(self, count: int) -> None:
        """How many locations the run will sync, once known (an agency's list is read first)."""

    def location_started(
        self, location_id: str, reports: Mapping[str, ResourceReport], stats: LocationStats
    ) -> None:
        """A location begins. `reports` (resource name -> report) and `stats` are the live objects
        the workers keep updating; the sink only reads them, and only until `location_finished`."""

    def location_finished(self, result: LocationResult) -> None:
        """A location is done, loaded or failed; its numbers are final."""

    def stage(self, message: str) -> None:
        """A run-wide step worth showing, e.g. "loading 12 locations into duckdb"."""


@dataclass
class _Running:
    location_id: str
    reports: Mapping[str, ResourceReport]
    stats: LocationStats
    started: float


class SyncProgress:
    """The ProgressSink of the CLI and the demo; use it as a context manager around run_sync.

    `live=None` decides by the stream: a live display on a terminal, plain lines otherwise.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        live: bool | None = None,
        refresh_per_second: float = REFRESH_PER_SECOND,
        max_rows: int = MAX_LOCATION_ROWS,
    ) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self.live = is_terminal(self._stream) if live is None else live
        self._refresh_per_second = refresh_per_second
        self._max_rows = max_rows
        self._lock = threading.Lock()  # the counters below; never held while writing to the terminal
        self._running: dict[str, _Running] = {}
        self._planned: int | None = None
        self._ok = self._failed = 0
        self._records_done = self._requests_done = self._throttled_done = 0
        self._stage = ""
        self._started = time.monotonic()
        self._display_lock = threading.Lock()  # starting / stopping the display; guards _entered
        self._output_lock = threading.Lock()  # whole plain lines, even when workers finish together
        self._entered = 0
        self._display: Live | None = None

    # -- context manager -------------------------------------------------------------------------

    def __enter__(self) -> SyncProgress:
        with self._display_lock:
            self._entered += 1
            if self._entered == 1:
                self._started = time.monotonic()
                if self.live:
                    console = Console(file=self._stream)
                    self._display = Live(
                        console=console,
                        get_renderable=self.renderable,
                        refresh_per_second=self._refresh_per_second,
                        # log records written to sys.stderr appear above the table instead of
                        # tearing it; stdout stays untouched (`run --json` owns it)
                        redirect_stderr=self._stream is sys.stderr,
                        redirect_stdout=False,
                    )
                    self._display.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        with self._display_lock:
            self._entered = max(0, self._entered - 1)
            if self._entered == 0 and self._display is not None:
                display, self._display = self._display, None
                with self._lock:
                    self._stage = ""  # the last frame is the run's totals, not its last step
                display.stop()  # draws that frame once more and leaves it on screen

    # -- ProgressSink ----------------------------------------------------------------------------

    def locations_planned(self, count: int) -> None:
        with self._lock:
            self._planned = count

    def location_started(
        self, location_id: str, reports: Mapping[str, ResourceReport], stats: LocationStats
    ) -> None:
        with self._lock:
            self._running[location_id] = _Running(location_id, reports, stats, time.monotonic())

    def location_finished(self, result: LocationResult) -> None:
        with self._lock:
            running = self._running.pop(result.location_id, None)
            if result.ok:
                self._ok += 1
            else:
                self._failed += 1
            self._records_done += _records(running.reports) if running else 0
            self._requests_done += result.stats.requests
            self._throttled_done += result.stats.throttled
            line = self._finished_line(result)
        display = self._display
        if display is None:  # plain output (or a live sink used outside `with`)
            self._write(line)
        elif not result.ok:
            display.console.print(Text(line, style="bold red"), soft_wrap=True)

    def stage(self, message: str) -> None:
        with self._lock:
            self._stage = message
        if not self.live:
            # plain output is one line per location; a stage is for --debug
            logger.info("%s", message)

    # -- rendering -------------------------------------------------------------------------------

    def renderable(self) -> RenderableType:
        """The current frame: running locations and the totals line (called by the refresh thread)."""
        with self._lock:
            running = list(self._running.values())
            planned, ok, failed, stage = self._planned, self._ok, self._failed, self._stage
            records, requests, throttled = self._records_done, self._requests_done, self._throttled_done
        now = time.monotonic()
        table = Table(box=None, pad_edge=False, header_style="bold", expand=False)
        table.add_column("location", no_wrap=True)
        table.add_column("records read / search total", overflow="fold")
        table.add_column("requests", justify="right")
        table.add_column("429s", justify="right")
        table.add_column("time", justify="right")
        for index, run in enumerate(running):
            items = _snapshot(run.reports)
            records += sum(report.rows for _, report in items)
            requests += run.stats.requests
            throttled += run.stats.throttled
            if index < self._max_rows:
                table.add_row(run.location_id, _resources_cell(items), f"{run.stats.requests:,}",
                              _throttled_text(run.stats.throttled), _duration(now - run.started))
        if len(running) > self._max_rows:
            table.add_row(Text(f"... {len(running) - self._max_rows} more running", style="dim"))
        totals = Text()
        totals.append(f"locations: {ok:,} ok, ")
        totals.append(f"{failed:,} failed", style="bold red" if failed else "")
        totals.append(f", {len(running):,} running" + ("" if planned is None else f", {planned:,} total"))
        totals.append(f" | {records:,} records read, {requests:,} requests, ")
        totals.append_text(_throttled_text(throttled, " x 429"))
        totals.append(f" | {_duration(now - self._started)}")
        if stage:
            totals.append(f" | {stage}", style="cyan")
        return Group(table, totals) if running else totals

    def _finished_line(self, result: LocationResult) -> str:
        finished = self._ok + self._failed
        counter = f"[{finished}/{self._planned}]" if self._planned is not None else f"[{finished}]"
        return (
            f"{counter} location {result.location_id} {'ok' if result.ok else 'FAILED'} "
            f"rows={sum(result.rows.values())} requests={result.stats.requests} "
            f"429s={result.stats.throttled} seconds={result.seconds:.1f}"
        )

    def _write(self, line: str) -> None:
        with self._output_lock:
            self._stream.write(line + "\n")
            self._stream.flush()


def is_terminal(stream: TextIO) -> bool:
    """A live display only where a person watches: a TTY that understands cursor movement."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty is not None and isatty()) and os.environ.get("TERM") != "dumb"


def _snapshot(reports: Mapping[str, ResourceReport]) -> list[tuple[str, ResourceReport]]:
    """A copy of a dict that worker threads may grow while we read it."""
    for _ in range(3):
        try:
            return list(reports.items())
        except RuntimeError:  # a resource was added mid-copy
            continue
    return []


def _records(reports: Mapping[str, ResourceReport]) -> int:
    return sum(report.rows for _, report in _snapshot(reports))


def _resources_cell(items: list[tuple[str, ResourceReport]]) -> Text:
    cell = Text()
    for index, (name, report) in enumerate(items):
        if index:
            cell.append("  ")
        current = index == len(items) - 1  # reports are added as resources start
        cell.append(name, style="bold" if current else "dim")
        cell.append(f" {report.rows:,}")
        if report.total is not None:
            cell.append(f"/{report.total:,}")
    return cell


def _throttled_text(count: int, suffix: str = "") -> Text:
    return Text(f"{count:,}{suffix}", style="yellow" if count else "")


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
