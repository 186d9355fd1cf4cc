"""Appointments outside the rolling window: `--reconcile` re-reads the whole horizon (corrections
land, vanished ones are deleted with detected_by = sweep), webhooks get them read by id whatever
their date, and the window is configurable."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sources.highlevel import settings
from sources.highlevel.webhooks import Inbox, InProcessTrigger, WebhookConfig
from sources.highlevel.webhooks.server import Receiver
from tests.webhooks.conftest import ThreadServer

from .conftest import Harness

RESOURCES = ["calendars", "appointments"]
DAY_MS = 86_400_000


def ms(value: Any) -> int:
    return int(datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp() * 1000)


def now_ms() -> int:
    return int(time.time() * 1000)


@pytest.fixture
def h(highlevel_sandbox_factory: Any, tmp_path: Path) -> Harness:
    return Harness(highlevel_sandbox_factory(contacts_per_location=(100,), index_lag_s=0.2), tmp_path)


def sync(h: Harness, **kw: Any) -> Any:
    kw.setdefault("resources", RESOURCES)
    result = h.run(**kw)
    assert result.ok, [r.error for r in result.locations]
    return result


def old_events(h: Harness, n: int) -> list[dict[str, Any]]:
    """n appointments that started 60 to 200 days ago: outside the default 30-day look-back."""
    cutoff = now_ms() - 60 * DAY_MS
    return [e for e in h.sb.truth(h.big, "events") if ms(e["startTime"]) < cutoff][:n]


def titles(h: Harness, *ids: str) -> dict[str, str]:
    marks = ",".join("?" * len(ids))
    return dict(h.query(f"select id, title from highlevel.appointments where id in ({marks})", *ids))


def deletions(h: Harness) -> list[tuple[Any, ...]]:
    """(id, resource, detected_by) rows; none while the table does not exist (nothing deleted yet)."""
    tables = {r[0] for r in h.query("select table_name from information_schema.tables")}
    if "deletions" not in tables:
        return []
    return h.query("select id, resource, detected_by from highlevel.deletions order by id")


def appointment_ids(h: Harness) -> list[str]:
    return [r[0] for r in h.query("select id from highlevel.appointments where location_id = ? order by id", h.big)]


def test_reconcile_lands_old_corrections_and_deletes_vanished_appointments(h: Harness) -> None:
    sync(h)
    assert appointment_ids(h) == sorted(e["id"] for e in h.sb.truth(h.big, "events"))
    corrected, vanished = old_events(h, 2)
    recent = next(e for e in h.sb.truth(h.big, "events") if abs(ms(e["startTime"]) - now_ms()) < 20 * DAY_MS)
    h.sb.edit_appointment(h.big, corrected["id"], title="Corrected title")
    h.sb.delete_appointment(h.big, vanished["id"])
    h.sb.delete_appointment(h.big, recent["id"])
    moved = next(e for e in h.sb.truth(h.big, "events") if ms(e["startTime"]) > now_ms() + 100 * DAY_MS)
    far = now_ms() + 500 * DAY_MS  # beyond the look-ahead: unlisted, but not deleted
    h.sb.edit_appointment(h.big, moved["id"], startTime=datetime.fromtimestamp(far / 1000, UTC).isoformat())

    sync(h)  # a plain run re-reads only the rolling window: polling cannot see these
    assert titles(h, corrected["id"]) == {corrected["id"]: corrected["title"]}
    assert vanished["id"] in appointment_ids(h)

    h.sb.clear_requests()
    sync(h, reconcile=True)
    assert titles(h, corrected["id"]) == {corrected["id"]: "Corrected title"}
    truth = sorted(e["id"] for e in h.sb.truth(h.big, "events"))
    assert appointment_ids(h) == truth
    assert deletions(h) == sorted(
        [(vanished["id"], "appointments", "sweep"), (recent["id"], "appointments", "sweep")])
    assert h.query("select epoch_ms(start_time) from highlevel.appointments where id = ?", moved["id"]) == [(far,)]
    # cost: every (wide, the sandbox takes them) window of the horizon per calendar, plus one read by
    # id per unlisted appointment
    horizon = settings.APPOINTMENT_DEFAULT_HISTORY + settings.APPOINTMENT_LOOKAHEAD
    windows = -(-horizon // settings.APPOINTMENT_WIDE_WINDOW)
    calendars = len(h.sb.truth(h.big, "calendars"))
    assert len([r for r in h.sb.requests("/calendars/events") if r["path"] == "/calendars/events"]) == (
        windows * calendars)
    by_id = sorted(r["path"].rsplit("/", 1)[1] for r in h.sb.requests("/calendars/events/appointments/"))
    assert by_id == sorted([vanished["id"], recent["id"], moved["id"]])

    h.sb.clear_requests()
    sync(h, reconcile=True)  # nothing new: no deletion twice, nothing read by id
    assert len(deletions(h)) == 2
    assert h.sb.requests("/calendars/events/appointments/") == []


def test_a_sweep_leaves_appointments_it_could_not_have_listed(h: Harness) -> None:
    """Appointments of a calendar that no longer exists are unreachable, not proven deleted."""
    sync(h)
    calendar = h.sb.truth(h.big, "calendars")[0]["id"]
    with h.sb.world.lock:
        location = h.sb.world.locations[h.big]
        location.extra["calendars"] = [c for c in location.extra["calendars"] if c["id"] != calendar]
    before = appointment_ids(h)
    sync(h, reconcile=True)
    assert appointment_ids(h) == before
    assert deletions(h) == []


class Hooked:
    """The webhook receiver in a thread, its trigger syncing appointments through the harness."""

    def __init__(self, h: Harness, tmp: Path) -> None:
        self.h = h
        self.inbox_path = tmp / "inbox.sqlite"
        self.runs: list[set[str]] = []
        config = WebhookConfig(ed25519_public_key=h.sb.webhooks.public_pem(), inbox_path=str(self.inbox_path),
                               quiet_s=0.5, max_delay_s=5.0)
        self.receiver = Receiver(config, InProcessTrigger(self.triggered)).start()
        self.server = ThreadServer(self.receiver.app).start()
        self.url = f"{self.server.url}/webhooks/highlevel"

    def triggered(self, location_id: str, resources: set[str]) -> None:
        self.runs.append(set(resources))
        sync(self.h, resources=sorted(resources), inbox_path=str(self.inbox_path))

    def wait_runs(self, n: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.runs) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.receiver.debouncer.wait_idle(timeout)
        assert len(self.runs) >= n, self.runs

    def close(self) -> None:
        self.server.stop()
        self.receiver.stop()


def test_appointment_webhooks_get_old_appointments_read_by_id(h: Harness, tmp_path: Path) -> None:
    hooked = Hooked(h, tmp_path)
    try:
        sync(h, inbox_path=str(hooked.inbox_path))
        event = old_events(h, 1)[0]
        h.sb.clear_requests()
        h.sb.edit_appointment(h.big, event["id"], notify=hooked.url, title="Moved to room 2")
        hooked.wait_runs(1)
        assert hooked.runs == [{"appointments"}]
        assert titles(h, event["id"]) == {event["id"]: "Moved to room 2"}
        reads = h.sb.requests("/calendars/events/appointments/")
        assert [r["path"] for r in reads] == [f"/calendars/events/appointments/{event['id']}"]
        assert all(r["status"] == 200 for r in reads)
        assert Inbox(hooked.inbox_path).pending_changes() == []  # applied after the load
        h.sb.clear_requests()
        sync(h, inbox_path=str(hooked.inbox_path))  # the next run does not read it again
        assert h.sb.requests("/calendars/events/appointments/") == []
    finally:
        hooked.close()


def test_a_webhook_for_an_appointment_deleted_since_is_skipped(h: Harness, tmp_path: Path) -> None:
    inbox_path = tmp_path / "inbox.sqlite"
    sync(h, inbox_path=str(inbox_path))
    event = old_events(h, 1)[0]
    inbox = Inbox(inbox_path)
    inbox.record_change("appointments", event["id"], h.big)
    inbox.record_change("appointments", "noSuchAppointment01", h.big)
    h.sb.delete_appointment(h.big, event["id"])
    sync(h, inbox_path=str(inbox_path))
    assert inbox.pending_changes() == []  # not found is an answer: never asked again
    assert event["id"] in appointment_ids(h)  # only a delete webhook or the sweep removes it
    inbox.close()


def test_the_rolling_window_is_configurable(h: Harness) -> None:
    config = {"appointments_days_back": 10, "appointments_days_ahead": 20}
    sync(h, config=config)
    h.sb.clear_requests()
    before = datetime.now(UTC)
    sync(h, config=config)
    windows = [(int(r["query"]["startTime"]), int(r["query"]["endTime"])) for r in h.sb.requests("/calendars/events")
               if r["path"] == "/calendars/events"]
    assert windows
    start, end = min(w[0] for w in windows), max(w[1] for w in windows)
    expected_start = (before - timedelta(days=10)).timestamp() * 1000
    expected_end = (before + timedelta(days=20)).timestamp() * 1000
    assert abs(start - expected_start) < 60_000 and abs(end - expected_end) < 60_000
