"""Deletes reach the warehouse (webhook or sweep), and an update webhook triggers a run that loads it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from sources.highlevel.webhooks import Inbox, InProcessTrigger, WebhookConfig
from sources.highlevel.webhooks.server import Receiver
from tests.webhooks.conftest import ThreadServer

from .conftest import Harness

RESOURCES = ["contacts", "custom_fields"]


class Hooked:
    def __init__(self, h: Harness, tmp: Path) -> None:
        self.h = h
        self.inbox_path = tmp / "inbox.sqlite"
        self.runs: list[tuple[str, set[str]]] = []
        config = WebhookConfig(ed25519_public_key=h.sb.webhooks.public_pem(), inbox_path=str(self.inbox_path),
                               quiet_s=1.5, max_delay_s=5.0)
        self.receiver = Receiver(config, InProcessTrigger(self.triggered)).start()
        self.server = ThreadServer(self.receiver.app).start()
        self.url = f"{self.server.url}/webhooks/highlevel"

    def triggered(self, location_id: str, resources: set[str]) -> None:
        self.runs.append((location_id, set(resources)))
        result = self.sync(resources=sorted(resources & {"contacts", "opportunities", "appointments"}) or RESOURCES)
        if not result.ok:
            raise RuntimeError(str([r.error for r in result.locations]))

    def sync(self, **kw: Any) -> Any:
        kw.setdefault("resources", RESOURCES)
        return self.h.run(inbox_path=str(self.inbox_path), **kw)

    def wait_runs(self, n: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.runs) < n and time.monotonic() < deadline:
            time.sleep(0.1)
        self.receiver.debouncer.wait_idle(timeout)
        assert len(self.runs) >= n, self.runs

    def close(self) -> None:
        self.server.stop()
        self.receiver.stop()


@pytest.fixture
def hooked(small_harness: Harness, tmp_path: Path) -> Any:
    hooked = Hooked(small_harness, tmp_path)
    yield hooked
    hooked.close()


def counts(h: Harness, contact_ids: list[str]) -> tuple[int, int, int]:
    marks = ",".join("?" * len(contact_ids))
    contacts = h.query(f"select count(*) from highlevel.contacts where id in ({marks})", *contact_ids)[0][0]
    tags = h.query(f"select count(*) from highlevel.contacts__tags where contact_id in ({marks})", *contact_ids)[0][0]
    values = h.query(f"select count(*) from highlevel.contact_custom_field_values where contact_id in ({marks})",
                     *contact_ids)[0][0]
    return contacts, tags, values


def test_delete_webhooks_remove_rows_children_and_values(hooked: Hooked) -> None:
    h = hooked.h
    assert hooked.sync().ok
    victims = h.sb.delete_contacts(h.big, 4, notify=hooked.url)  # each delivered twice
    # pick victims that had children, so the cascade is really tested
    assert sum(counts(h, victims)[1:]) > 0
    hooked.wait_runs(1)
    assert counts(h, victims) == (0, 0, 0)
    rows = h.query("select id, resource, detected_by from highlevel.deletions order by id")
    assert rows == [(v, "contacts", "webhook") for v in sorted(victims)]
    assert Inbox(hooked.inbox_path).pending_deletions() == []  # all marked applied after the load
    assert len(h.contact_ids()) == len(h.sb.truth_contacts(h.big))
    assert len(hooked.runs) == 1  # 8 deliveries (4 duplicated), one debounced run


def test_update_webhook_triggers_a_run_that_loads_the_change(hooked: Hooked) -> None:
    h = hooked.h
    assert hooked.sync().ok
    changed = h.sb.update_contacts(h.big, 3, notify=hooked.url)
    hooked.wait_runs(1)
    truth = {c["id"]: c for c in h.sb.truth_contacts(h.big)}
    for contact_id in changed:
        assert h.query("select email from highlevel.contacts where id = ?", contact_id) == [
            (truth[contact_id]["email"],)]
    assert hooked.runs[0] == (h.big, {"contacts"})


def test_reconcile_sweep_finds_deletions_no_webhook_reported(small_harness: Harness, tmp_path: Path) -> None:
    h = small_harness
    inbox = tmp_path / "inbox.sqlite"
    Inbox(inbox).close()  # a receiver once ran here
    assert h.run(resources=RESOURCES, inbox_path=str(inbox)).ok
    gone = h.sb.delete_contacts(h.big, 5)  # silently: webhooks get lost
    h.sb.wait_for_index()
    assert h.run(resources=RESOURCES, inbox_path=str(inbox)).ok
    assert counts(h, gone)[0] == 5  # polling alone cannot see deletions
    h.sb.clear_requests()
    result = h.run(resources=RESOURCES, inbox_path=str(inbox), reconcile=True)
    assert result.ok
    assert counts(h, gone) == (0, 0, 0)
    assert h.contact_ids() == h.truth_ids()
    swept = h.query("select id, detected_by from highlevel.deletions order by id")
    assert swept == [(g, "sweep") for g in sorted(gone)]
    assert {d.id for d in Inbox(inbox).pending_deletions()} == set()
    # cost: one search request per 500 contacts (1,195 contacts -> 3)
    assert h.search_requests(h.big) == -(-len(h.sb.truth_contacts(h.big)) // 500)
