"""LocationCreate starts a reachable location's first sync; an agency-level UserCreate refreshes the
users of the (reachable) sub-accounts it lists; appointment events note the ids to read by id."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from highlevel_sync.auth_cli import save_grant
from highlevel_sync.installs import InstallRegistry
from highlevel_sync.webhook_runs import can_reach
from sources.highlevel.config import validate
from sources.highlevel.oauth import OAuthApp
from sources.highlevel.tokenstore import FileTokenStore
from sources.highlevel.webhooks.events import parse_event
from sources.highlevel.webhooks.inbox import Inbox
from sources.highlevel.webhooks.processor import FIRST_SYNC_RESOURCES, Processor

from .conftest import example


def dirty(inbox: Inbox) -> set[tuple[str, str]]:
    return {(row[0], row[1]) for row in inbox._conn.execute("SELECT location_id, resource FROM dirty")}


def test_location_create_queues_a_first_sync_of_everything_when_reachable(inbox: Inbox) -> None:
    asked: list[str] = []

    def reachable(location_id: str) -> bool:
        asked.append(location_id)
        return location_id == "ve9EPM428h8vShlRW1KT"

    processor = Processor(inbox, reachable=reachable)
    inbox.accept(parse_event(example("LocationCreate.json", webhookId="l1")))
    inbox.accept(parse_event(example("LocationCreate.json", webhookId="l2", id="OtherAgencyLoc001")))
    assert processor.process_pending() == 2
    assert asked == ["ve9EPM428h8vShlRW1KT", "OtherAgencyLoc001"]
    assert dirty(inbox) == {("ve9EPM428h8vShlRW1KT", resource) for resource in FIRST_SYNC_RESOURCES}
    assert {"contacts", "appointments", "users", "locations"} <= set(FIRST_SYNC_RESOURCES)
    assert "deletions" not in FIRST_SYNC_RESOURCES


def test_agency_user_create_refreshes_users_of_its_reachable_locations(inbox: Inbox) -> None:
    processor = Processor(inbox, reachable=lambda location_id: location_id != "NotOurs")
    inbox.accept(parse_event(example("UserCreate.agency-user.json", webhookId="u1",
                                     locations=["ve9EPM428h8vShlRW1KT", "L2", "NotOurs", 7, ""])))
    inbox.accept(parse_event(example("UserCreate.json", webhookId="u2")))  # location level: as before
    assert processor.process_pending() == 2
    assert dirty(inbox) == {("ve9EPM428h8vShlRW1KT", "users"), ("L2", "users")}


def test_agency_user_create_in_an_envelope_without_locations_marks_nothing(inbox: Inbox) -> None:
    processor = Processor(inbox)
    inbox.accept(parse_event({"type": "UserCreate", "webhookId": "u3",
                              "data": {"companyId": "C1", "id": "U1", "locations": ["L9"]}}))
    inbox.accept(parse_event({"type": "UserCreate", "webhookId": "u4", "companyId": "C1", "id": "U2"}))
    assert processor.process_pending() == 2
    assert dirty(inbox) == {("L9", "users")}


def test_a_failing_reachability_check_is_retried(inbox: Inbox) -> None:
    calls: list[str] = []

    def flaky(location_id: str) -> bool:
        calls.append(location_id)
        if len(calls) == 1:
            raise OSError("token store on a network share went away")
        return True

    processor = Processor(inbox, reachable=flaky)
    inbox.accept(parse_event(example("LocationCreate.json", webhookId="l1")))
    assert processor.process_pending() == 0
    assert "reachability" in (processor.last_error or "")
    assert processor.process_pending() == 1
    assert ("ve9EPM428h8vShlRW1KT", "contacts") in dirty(inbox)


def test_appointment_create_and_update_note_the_id_to_read(inbox: Inbox) -> None:
    processor = Processor(inbox)
    inbox.accept(parse_event(example("AppointmentCreate.json", webhookId="a1")))
    inbox.accept(parse_event(example("AppointmentUpdate.json", webhookId="a2", type="AppointmentUpdate")))
    inbox.accept(parse_event(example("ContactUpdate.json", webhookId="c1")))  # contacts are found by listing
    processor.process_pending()
    assert [(c.resource, c.id, c.location_id) for c in inbox.pending_changes()] == [
        ("appointments", "0007BWpSzSwfiuSl0tR2", "0007BWpSzSwfiuSl0tR2")]


def test_can_reach_with_a_private_integration_token_is_its_own_location_only(tmp_path: Path) -> None:
    config = validate({"private_integration_token": "pit-x", "location_ids": ["Loc1"],
                       "token_store": str(tmp_path / "tokens.json")})
    assert can_reach("Loc1", config)
    assert not can_reach("Loc2", config)


def test_can_reach_without_credentials_is_no(tmp_path: Path) -> None:
    assert not can_reach("Loc1", validate({"token_store": str(tmp_path / "missing.json")}))


def test_can_reach_with_an_agency_token_is_where_the_app_is_installed(
    highlevel_sandbox_factory: Any, tmp_path: Path
) -> None:
    sb = highlevel_sandbox_factory(contacts_per_location=(10, 10, 10), index_lag_s=0.0)
    store = FileTokenStore(tmp_path / "tokens.json")
    app = OAuthApp(sb.base_url, sb.client_id, sb.client_secret)
    with store.lock():
        save_grant(store, app.exchange_code(sb.auth_code("Company"), redirect_uri="http://127.0.0.1/cb",
                                            user_type="Company"))
    config = validate({"base_url": sb.base_url, "client_id": sb.client_id, "client_secret": sb.client_secret,
                       "token_store": str(store.path), "max_attempts": 1})
    installed, removed, gone_by_webhook = sb.location_ids
    sb.uninstall(removed)
    assert can_reach(installed, config)
    assert installed in store.load().locations  # minted now, ready for the first sync
    assert not can_reach(removed, config)
    assert not can_reach("NoSuchLocation0001", config)
    InstallRegistry(store.path).mark_uninstalled(gone_by_webhook)  # an AppUninstall webhook came
    assert not can_reach(gone_by_webhook, config)
