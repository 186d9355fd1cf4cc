"""Appointment windows whatever the API's unconfirmed limits on `GET /calendars/events` are.

The longest window the API takes, and whether it caps one answer, are unconfirmed (CONTRACT §9):
wide windows are tried first (one request per calendar for the rolling window), a refused one
falls back to 90-day windows (remembered for a day), and a long wide answer is read again in
narrow windows. Every sandbox variant ends with the table equal to the sandbox's appointments.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from highlevel_sync.sandbox.data import ms_of
from sources.highlevel import settings

from .conftest import Harness

RESOURCES = ["calendars", "appointments"]
NARROW_MS = settings.APPOINTMENT_BACKFILL_WINDOW.total_seconds() * 1000


def event_reads(h: Harness) -> list[dict[str, Any]]:
    return [r for r in h.sb.requests("/calendars/events") if r["path"] == "/calendars/events"]


def span_ms(request: dict[str, Any]) -> int:
    return int(request["query"]["endTime"]) - int(request["query"]["startTime"])


def sync(h: Harness) -> Any:
    result = h.run(resources=RESOURCES)
    assert result.ok, [r.error for r in result.locations]
    return result


def loaded_equals_truth(h: Harness) -> None:
    loaded = [r[0] for r in h.query("select id from highlevel.appointments order by id")]
    assert loaded == sorted(e["id"] for e in h.sb.truth(h.big, "events"))


def test_the_rolling_window_is_one_request_per_calendar(highlevel_sandbox_factory: Any, tmp_path: Path) -> None:
    h = Harness(highlevel_sandbox_factory(contacts_per_location=(100,), index_lag_s=0.2), tmp_path)
    sync(h)
    loaded_equals_truth(h)
    h.sb.clear_requests()
    sync(h)
    calendars = len(h.sb.truth(h.big, "calendars"))
    assert len(event_reads(h)) == calendars  # 30 days back + 365 ahead fit one wide window
    loaded_equals_truth(h)


def test_a_refused_wide_window_falls_back_to_narrow_ones_and_is_remembered(highlevel_sandbox_factory: Any,
                                                                           tmp_path: Path) -> None:
    h = Harness(highlevel_sandbox_factory(contacts_per_location=(100,), index_lag_s=0.2, max_event_window_days=90),
                tmp_path)
    first = sync(h)
    loaded_equals_truth(h)
    reads = event_reads(h)
    refused = [r for r in reads if r["status"] == 422]
    assert len(refused) == 1  # the first wide request; the rest of the run reads narrow windows
    assert all(span_ms(r) <= NARROW_MS for r in reads if r["status"] == 200)
    warnings = first.locations[0].warnings
    assert any("window was refused (HTTP 422)" in w for w in warnings), warnings
    assert h.state("appointments")["wide_refused"][h.big]["reason"] == "HTTP 422"

    h.sb.clear_requests()
    sync(h)  # remembered: no wide request, no refusal
    assert event_reads(h) and all(r["status"] == 200 and span_ms(r) <= NARROW_MS for r in event_reads(h))
    loaded_equals_truth(h)


def test_a_long_wide_answer_is_read_again_in_narrow_windows(highlevel_sandbox_factory: Any, tmp_path: Path) -> None:
    # an answer silently cut at 200 events: the wide windows hold more (600 appointments within 200
    # days of now), the 90-day ones fewer
    h = Harness(highlevel_sandbox_factory(contacts_per_location=(100,), index_lag_s=0.2, calendars_per_location=1,
                                          appointments_per_calendar=600, max_events_per_answer=200), tmp_path)
    sync(h)
    reads = event_reads(h)
    wide = [r for r in reads if span_ms(r) > NARROW_MS]
    starts = [ms_of(e["startTime"]) for e in h.sb.truth(h.big, "events")]
    held = [sum(int(r["query"]["startTime"]) <= t < int(r["query"]["endTime"]) for t in starts) for r in wide]
    assert max(held) > 200  # a wide answer really was cut short
    assert len(reads) > len(wide)  # and, after a long answer, narrow ones
    loaded_equals_truth(h)
