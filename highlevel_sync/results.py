"""What a sync reports: per location, and for the whole run; and how failures read in one line."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from dlt.pipeline.exceptions import PipelineStepFailed

from sources.highlevel.client import LocationStats
from sources.highlevel.errors import AuthError, HighLevelError, LocationInactive, QuotaExhausted


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
    # rows dlt normalized per table, nested tables included (per-location counts cover root tables)
    table_rows: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(result.ok for result in self.locations)

    def rows_by_table(self) -> dict[str, int]:
        if self.table_rows:
            return dict(sorted(self.table_rows.items()))
        totals: dict[str, int] = {}
        for result in self.locations:
            for table, count in result.rows.items():
                totals[table] = totals.get(table, 0) + count
        return dict(sorted(totals.items()))


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and its causes (dlt wraps ours in its step errors)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def is_location_fatal(exc: BaseException) -> bool:
    """The token or the sub-account is the problem: the location's other resources would fail alike."""
    return any(isinstance(e, AuthError | LocationInactive | QuotaExhausted) for e in _chain(exc))


def describe_failure(exc: BaseException) -> str:
    """The most useful one-line message in an exception chain (ours beat dlt's wrappers)."""
    chain = list(_chain(exc))
    ours = next((e for e in chain if isinstance(e, HighLevelError)), None)
    if ours is not None:
        return str(ours)
    # dlt's step wrapper says only which step failed ("… with exception:"); the root cause says why
    exc = chain[-1] if isinstance(exc, PipelineStepFailed) else exc
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"{type(exc).__name__}: {first_line}"
