"""A LocationCreate webhook gives a reachable new location its first sync; an agency-level
UserCreate refreshes the users of the sub-accounts it lists."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sources.highlevel.webhooks import InProcessTrigger, WebhookConfig
from sources.highlevel.webhooks.server import Receiver
from tests.webhooks.conftest import ThreadServer

from .conftest import Harness


def test_location_create_and_agency_user_create_trigger_the_right_runs(
    highlevel_sandbox_factory: Any, tmp_path: Path
) -> None:
    sb = highlevel_sandbox_factory(contacts_per_location=(30, 20, 10), index_lag_s=0.2)
    h = Harness(sb, tmp_path)
    first, new, other = sb.location_ids
    runs: list[tuple[str, set[str]]] = []

    def triggered(location_id: str, resources: set[str]) -> None:
        runs.append((location_id, set(resources)))
        result = h.run(locations=[location_id], resources=sorted(resources), inbox_path=str(tmp_path / "in.sqlite"))
        assert result.ok, [r.error for r in result.locations]

    config = WebhookConfig(ed25519_public_key=sb.webhooks.public_pem(), inbox_path=str(tmp_path / "in.sqlite"),
                           quiet_s=0.3, max_delay_s=5.0)
    receiver = Receiver(config, InProcessTrigger(triggered), reachable=lambda loc: loc != other).start()
    server = ThreadServer(receiver.app).start()
    url = f"{server.url}/webhooks/highlevel"
    try:
        assert h.run(locations=[first]).ok
        sb.webhooks.deliver(url, {"type": "LocationCreate", "id": new, "companyId": sb.company_id,
                                  "name": "New clinic", "webhookId": "loc-1"})
        sb.webhooks.deliver(url, {"type": "LocationCreate", "id": other, "companyId": sb.company_id,
                                  "name": "Not ours", "webhookId": "loc-2"})
        wait_for(lambda: len(runs) >= 1 and not receiver.debouncer.running)
        assert [loc for loc, _ in runs] == [new]
        assert {"contacts", "opportunities", "appointments", "users", "locations"} <= runs[0][1]
        assert sorted(h.contact_ids(new)) == h.truth_ids(new)
        assert h.query("select count(*) from highlevel.locations where id = ?", new) == [(1,)]

        runs.clear()
        sb.webhooks.deliver(url, {"type": "UserCreate", "companyId": sb.company_id, "id": "NewAgencyUser01",
                                  "role": "admin", "locations": [first, other], "webhookId": "user-1"})
        wait_for(lambda: len(runs) >= 1 and not receiver.debouncer.running)
        time.sleep(0.5)  # nothing else follows
        assert runs == [(first, {"users"})]
    finally:
        server.stop()
        receiver.stop()


def wait_for(condition: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
