"""Every published example payload parses and dispatches; doc bugs are handled through the alias table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sources.highlevel import RESOURCE_NAMES
from sources.highlevel.webhooks.events import ACTIONS, ALIASES, RESOURCES, classify, parse_event, parse_timestamp
from sources.highlevel.webhooks.inbox import Inbox
from sources.highlevel.webhooks.processor import SYNC_RESOURCES

from .conftest import EXAMPLES

# file → (resource, action). Unknowns are kept as ("unknown", "other").
EXPECTED: dict[str, tuple[str, str]] = {
    "AppInstall.json": ("app", "install"),
    "AppInstall.agency.json": ("app", "install"),
    "AppInstall.location-non-whitelabeled.json": ("app", "install"),
    "AppUninstall.json": ("app", "uninstall"),
    "AppUninstall.agency.json": ("app", "uninstall"),
    # The docs' Update/Delete examples are byte-identical to Create (type "AppointmentCreate").
    "AppointmentCreate.json": ("appointments", "create"),
    "AppointmentUpdate.json": ("appointments", "create"),
    "AppointmentDelete.json": ("appointments", "create"),
    "AssociationCreate.json": ("unknown", "other"),
    "AssociationUpdate.json": ("unknown", "other"),
    "AssociationDelete.json": ("unknown", "other"),
    "CampaignStatusUpdate.json": ("unknown", "other"),
    "ContactCreate.json": ("contacts", "create"),
    "ContactUpdate.json": ("contacts", "update"),
    "ContactDelete.json": ("contacts", "delete"),
    "ContactTagUpdate.json": ("contacts", "update"),
    "ContactDndUpdate.json": ("contacts", "update"),
    "ConversationUnreadWebhook.json": ("conversations", "update"),
    "InboundMessage.json": ("messages", "create"),
    "InboundMessage.call.json": ("messages", "create"),  # says "OutboundMessage"
    "InboundMessage.email.json": ("messages", "create"),
    "InboundMessage.voicemail.json": ("messages", "create"),
    "OutboundMessage.json": ("messages", "create"),
    "OutboundMessage.call-and-voicemail.json": ("messages", "create"),
    "OutboundMessage.email.json": ("messages", "create"),
    "OutboundMessage.workflow-voicemail.json": ("messages", "create"),
    # Invoice*, Price*, Product*, Record*... examples carry no type: revenue ones are recognised by shape
    # (test_revenue_events.py), a change unless the payload says delete (InvoiceDelete: status "delete")
    "InvoiceCreate.json": ("invoices", "update"),
    "InvoiceUpdate.json": ("invoices", "update"),
    "InvoiceDelete.json": ("invoices", "delete"),
    "InvoicePaid.json": ("invoices", "update"),
    "InvoicePartiallyPaid.json": ("invoices", "update"),
    "InvoiceSent.json": ("invoices", "update"),
    "InvoiceVoid.json": ("invoices", "update"),
    "LCEmailStats.json": ("unknown", "other"),
    "LocationCreate.json": ("locations", "create"),
    "LocationUpdate.json": ("locations", "update"),
    "NoteCreate.json": ("notes", "create"),
    "NoteUpdate.json": ("notes", "update"),
    "NoteDelete.json": ("notes", "delete"),
    "ObjectSchemaCreate.json": ("unknown", "other"),
    "ObjectSchemaUpdate.json": ("unknown", "other"),
    "OpportunityCreate.json": ("opportunities", "create"),
    "OpportunityUpdate.json": ("opportunities", "update"),
    "OpportunityDelete.json": ("opportunities", "delete"),
    "OpportunityStageUpdate.json": ("opportunities", "update"),
    "OpportunityStatusUpdate.json": ("opportunities", "update"),
    "OpportunityMonetaryValueUpdate.json": ("opportunities", "update"),
    "OpportunityAssignedToUpdate.json": ("opportunities", "update"),
    "OrderCreate.json": ("orders", "create"),
    "OrderStatusUpdate.json": ("orders", "update"),
    "PlanChange.json": ("app", "other"),
    "PriceCreate.json": ("product_prices", "update"),
    "PriceUpdate.json": ("product_prices", "update"),  # "type": "one_time" is the price type, not an event
    "PriceDelete.json": ("product_prices", "update"),  # deletes are never guessed from shape alone
    "ProductCreate.json": ("products", "update"),
    "ProductUpdate.json": ("products", "update"),
    "ProductDelete.json": ("products", "update"),
    "ProviderOutboundMessage.json": ("unknown", "other"),  # custom providers only; "type": "SMS"
    "ProviderOutboundMessage.email.json": ("unknown", "other"),
    "RecordCreate.json": ("unknown", "other"),
    "RecordUpdate.json": ("unknown", "other"),
    "RecordDelete.json": ("unknown", "other"),
    "RelationCreate.json": ("unknown", "other"),
    "RelationDelete.json": ("unknown", "other"),
    "TaskCreate.json": ("tasks", "create"),
    "TaskComplete.json": ("tasks", "update"),
    "TaskDelete.json": ("tasks", "delete"),
    "UserCreate.json": ("users", "create"),
    "UserCreate.agency-user.json": ("users", "create"),
}


def example_files() -> list[Path]:
    return sorted(p for p in EXAMPLES.glob("*.json") if p.name != "index.json")


def load(name: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((EXAMPLES / name).read_text())
    return payload


def test_the_table_covers_every_published_example() -> None:
    index = json.loads((EXAMPLES / "index.json").read_text())
    indexed = {ex["file"] for event in index["events"].values() for ex in event["examples"]}
    assert {p.name for p in example_files()} == indexed == set(EXPECTED)


@pytest.mark.parametrize("path", example_files(), ids=lambda p: p.name)
def test_every_example_parses_and_dispatches(path: Path) -> None:
    payload = json.loads(path.read_text())
    event = parse_event(payload)
    assert (event.resource, event.action) == EXPECTED[path.name]
    assert event.resource in (*RESOURCES, "unknown") and event.action in ACTIONS
    assert event.payload is payload
    assert event.webhook_id is None  # no published example carries one (CONTRACT §8 trap 15)
    if event.resource in SYNC_RESOURCES and payload.get("locationId"):
        assert event.location_id == payload["locationId"]


def test_ids_are_extracted_from_each_shape() -> None:
    appointment = parse_event(load("AppointmentCreate.json"))
    assert (appointment.location_id, appointment.record_id) == ("0007BWpSzSwfiuSl0tR2", "0007BWpSzSwfiuSl0tR2")
    call = parse_event(load("InboundMessage.call.json"))
    assert (call.type, call.record_id, call.location_id) == ("OutboundMessage", "tyW42xCD0HQpb3hhfLcx",
                                                             "0d48aEf7q67DAu134bpy")
    assert parse_event(load("InboundMessage.json")).record_id is None  # the SMS example has no messageId
    assert parse_event(load("InboundMessage.email.json")).record_id == "sddfDSF3G56GHG"
    location = parse_event(load("LocationUpdate.json"))
    assert location.location_id == location.record_id == "ve9EPM428h8vShlRW1KT"
    install = parse_event(load("AppInstall.agency.json"))
    assert (install.location_id, install.company_id) == (None, "otg8dTQqGLh3Q6iQI55w")
    contact = parse_event(load("ContactDelete.json"))
    assert (contact.location_id, contact.record_id) == ("ve9EPM428h8vShlRW1KT", "nmFmQEsNgz6AVpgLVUJ0")


def test_envelope_shape_is_unwrapped() -> None:
    flat = load("ContactDelete.json")
    envelope = {"type": "ContactDelete", "timestamp": "2025-01-01T00:00:00.000Z", "webhookId": "wh-1",
                "data": {k: v for k, v in flat.items() if k != "type"}}
    event = parse_event(envelope)
    assert (event.resource, event.action, event.location_id, event.record_id) == (
        "contacts", "delete", "ve9EPM428h8vShlRW1KT", "nmFmQEsNgz6AVpgLVUJ0")
    assert event.webhook_id == "wh-1"
    assert event.timestamp == parse_timestamp("2025-01-01T00:00:00Z")
    appointment = parse_event({"type": "AppointmentDelete", "webhookId": "w",
                               "data": {"appointment": {"id": "a1", "locationId": "L9"}}})
    assert (appointment.action, appointment.record_id, appointment.location_id) == ("delete", "a1", "L9")


def test_mislabelled_appointments_use_content_cues() -> None:
    base = load("AppointmentCreate.json")
    updated = {**base, "appointment": {**base["appointment"], "dateUpdated": "2023-09-26T10:00:00+05:30"}}
    deleted = {**base, "appointment": {**base["appointment"], "deleted": True}}
    status_deleted = {**base, "appointment": {**base["appointment"], "appointmentStatus": "Deleted"}}
    assert parse_event(updated).action == "update"
    assert parse_event(deleted).action == "delete"
    assert parse_event(status_deleted).action == "delete"
    # Correctly labelled events are trusted as labelled.
    assert parse_event({**updated, "type": "AppointmentDelete"}).action == "delete"
    assert parse_event({**base, "type": "AppointmentUpdate"}).action == "update"


@pytest.mark.parametrize(("raw", "expected"), [
    ("INSTALL", ("app", "install")), ("install", ("app", "install")), ("UNINSTALL", ("app", "uninstall")),
    ("PLAN_CHANGE", ("app", "other")), ("ConversationUnreadUpdate", ("conversations", "update")),
    ("UserUpdate", ("users", "update")),  # undocumented member of a known family: update, harmless
    ("ContactTagDelete", ("unknown", "other")),  # deletes are never guessed
    ("InvoiceCreate", ("invoices", "create")), ("InvoiceReminderUpdate", ("invoices", "update")),
    ("InvoiceArchive", ("unknown", "other")), ("", ("unknown", "other")), (None, ("unknown", "other")),
])
def test_classify(raw: str | None, expected: tuple[str, str]) -> None:
    assert classify(raw, {}) == expected


def test_every_alias_maps_to_known_names_and_sync_resources_exist() -> None:
    for resource, action in ALIASES.values():
        assert resource in RESOURCES and action in ACTIONS
    assert {r for names in SYNC_RESOURCES.values() for r in names} <= set(RESOURCE_NAMES)


@pytest.mark.parametrize("payload", [
    {}, {"type": 5}, {"type": ["x"]}, {"data": "not a dict", "type": "ContactCreate"},
    {"type": "ContactCreate", "locationId": {"x": 1}, "id": True}, {"type": "ContactCreate", "id": "x" * 10_000},
    {"type": "ContactCreate", "locationId": "\ud800"}, {"timestamp": "yesterday"}, {"timestamp": float("nan")},
    {"appointment": "x", "type": "AppointmentCreate"},
])
def test_garbage_never_raises(payload: dict[str, Any]) -> None:
    event = parse_event(payload)
    assert event.action in ACTIONS


@pytest.mark.parametrize(("value", "iso"), [
    ("2025-02-10T08:26:05.961Z", "2025-02-10T08:26:05.961000+00:00"),
    ("2025-02-10T13:56:05.961+05:30", "2025-02-10T08:26:05.961000+00:00"),
    ("2025-02-10T08:26:05", "2025-02-10T08:26:05+00:00"),
    (1714032441, "2024-04-25T08:07:21+00:00"), (1714032441000, "2024-04-25T08:07:21+00:00"),
    ("1714032441", "2024-04-25T08:07:21+00:00"),
])
def test_parse_timestamp(value: object, iso: str) -> None:
    stamp = parse_timestamp(value)
    assert stamp is not None and stamp.isoformat() == iso


@pytest.mark.parametrize("value", ["soon", True, [1], {"a": 1}, float("inf"), "nan", 1e300])
def test_parse_timestamp_rejects_non_times(value: object) -> None:
    with pytest.raises(ValueError):
        parse_timestamp(value)


def test_unknown_events_are_kept_and_counted(tmp_path: Path) -> None:
    """Without a webhookId, byte-identical bodies are one delivery (the docs reuse examples, e.g. Appointment*)."""
    inbox = Inbox(tmp_path / "inbox.sqlite")
    stored = {path.name: inbox.accept(parse_event(json.loads(path.read_text())), path.read_bytes())
              for path in example_files()}
    distinct = {path.read_bytes() for path in example_files()}
    assert sum(stored.values()) == len(distinct) < len(stored)
    assert not stored["AppointmentUpdate.json"] and not stored["AppointmentDelete.json"]
    counts = inbox.counts()
    assert counts["events"] == len(distinct)
    assert counts["events_unknown"] == sum(1 for name, ok in stored.items() if ok and EXPECTED[name][1] == "other")
    untyped = {p.read_bytes() for p in example_files() if "type" not in json.loads(p.read_text())}
    assert counts["events_by_type"]["<none>"] == len(untyped) > 0
    assert counts["events_by_type"]["one_time"] >= 1  # Price examples: kept under their odd type
    assert counts["events_by_type"]["INSTALL"] == 3
    inbox.close()
