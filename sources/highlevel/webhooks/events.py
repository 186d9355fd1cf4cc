"""Parse a verified delivery into a normalised event: which resource, which action, which record.

Dispatch is on the payload's `type` through an alias table, never on anything else the published
docs suggest, because the docs are wrong in known ways (CONTRACT §8 trap 15): the Appointment
Update/Delete examples say "AppointmentCreate", the InboundMessage call example says
"OutboundMessage", app lifecycle events say "INSTALL"/"UNINSTALL", the unread event is
"ConversationUnreadUpdate", and Invoice/Product/Record/... examples carry no type at all (Price
examples even carry the *price* type "one_time"). Anything not recognised becomes action "other":
kept and counted by the inbox, never an exception, so a new event type cannot break the receiver.

Real deliveries carry the event name in `type`. Where a payload has none (or only a price's own
type), the revenue families are recognised by shape where the shape says one thing only (see
`_by_shape`): an invoice, an order, a product or a price. Such an event is a change ("update"), read
again by the sync; a delete is inferred only where the payload says so (an invoice with status
"delete", as the InvoiceDelete example has it). A missed delete costs nothing lasting: the record
read by id answers 404, which the sync treats as a deletion, and the sweep finds the rest.

Both shapes HighLevel documents are accepted: flat payloads and the `{type, timestamp, webhookId,
data: {...}}` envelope of the integration guide.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

RESOURCES = (
    "contacts", "opportunities", "appointments", "messages", "conversations",
    "notes", "tasks", "locations", "users", "app", "invoices", "orders", "products", "product_prices",
    "object_records", "relations",
)
ACTIONS = ("create", "update", "delete", "install", "uninstall", "other")
UNKNOWN_RESOURCE = "unknown"
MAX_TEXT = 256  # ids and types longer than this are garbage, not HighLevel ids

# Lower-cased raw `type` → (resource, action). Every documented event relevant to the sync is here.
ALIASES: dict[str, tuple[str, str]] = {
    "contactcreate": ("contacts", "create"),
    "contactupdate": ("contacts", "update"),
    "contactdelete": ("contacts", "delete"),
    "contacttagupdate": ("contacts", "update"),
    "contactdndupdate": ("contacts", "update"),
    "opportunitycreate": ("opportunities", "create"),
    "opportunityupdate": ("opportunities", "update"),
    "opportunitydelete": ("opportunities", "delete"),
    "opportunitystageupdate": ("opportunities", "update"),
    "opportunitystatusupdate": ("opportunities", "update"),
    "opportunitymonetaryvalueupdate": ("opportunities", "update"),
    "opportunityassignedtoupdate": ("opportunities", "update"),
    "appointmentcreate": ("appointments", "create"),  # refined from content, see _appointment_action
    "appointmentupdate": ("appointments", "update"),
    "appointmentdelete": ("appointments", "delete"),
    "inboundmessage": ("messages", "create"),
    "outboundmessage": ("messages", "create"),
    "conversationunreadupdate": ("conversations", "update"),
    "conversationunreadwebhook": ("conversations", "update"),  # the doc file's name, in case it is ever sent
    "notecreate": ("notes", "create"),
    "noteupdate": ("notes", "update"),
    "notedelete": ("notes", "delete"),
    "taskcreate": ("tasks", "create"),
    "taskcomplete": ("tasks", "update"),
    "taskdelete": ("tasks", "delete"),
    "locationcreate": ("locations", "create"),
    "locationupdate": ("locations", "update"),
    "usercreate": ("users", "create"),
    "invoicecreate": ("invoices", "create"),
    "invoiceupdate": ("invoices", "update"),
    "invoicepaid": ("invoices", "update"),
    "invoicepartiallypaid": ("invoices", "update"),
    "invoicesent": ("invoices", "update"),
    "invoicevoid": ("invoices", "update"),  # a voided invoice stays, with status "void"
    "invoicedelete": ("invoices", "delete"),
    "ordercreate": ("orders", "create"),
    "orderstatusupdate": ("orders", "update"),
    "productcreate": ("products", "create"),
    "productupdate": ("products", "update"),
    "productdelete": ("products", "delete"),
    # a price's record id is the price; the processor turns every Price* into a re-read of its product's prices
    "pricecreate": ("product_prices", "create"),
    "priceupdate": ("product_prices", "update"),
    "pricedelete": ("product_prices", "delete"),
    # custom-object records (no objectKey in the payload) and their relations (the relation's id)
    "recordcreate": ("object_records", "create"),
    "recordupdate": ("object_records", "update"),
    "recorddelete": ("object_records", "delete"),
    "relationcreate": ("relations", "create"),
    "relationdelete": ("relations", "delete"),
    "install": ("app", "install"),
    "appinstall": ("app", "install"),
    "uninstall": ("app", "uninstall"),
    "appuninstall": ("app", "uninstall"),
    "plan_change": ("app", "other"),
    "planchange": ("app", "other"),
}

# Undocumented future events of a known family (e.g. a "UserUpdate") still mark the resource dirty.
# Only create/update are guessed: a guessed delete could tombstone a live record, so deletes must be listed.
_FAMILY = re.compile(r"^(contact|opportunity|appointment|note|task|location|user|conversation|invoice|order|product"
                     r"|price)[a-z]*(create|update)$")
_FAMILY_RESOURCE = {
    "contact": "contacts", "opportunity": "opportunities", "appointment": "appointments", "note": "notes",
    "task": "tasks", "location": "locations", "user": "users", "conversation": "conversations",
    "invoice": "invoices", "order": "orders", "product": "products", "price": "product_prices",
}
# a price's own `type`, which the published Price examples carry where the event name belongs
PRICE_TYPES = frozenset({"one_time", "recurring"})
# records keyed `_id` by the API: their id is that, whatever else the payload carries
UNDERSCORE_ID = frozenset({"invoices", "orders", "products", "product_prices"})


@dataclass(frozen=True)
class WebhookEvent:
    """One delivery, normalised. `payload` is the whole body as received (envelope included)."""

    type: str | None
    resource: str
    action: str
    location_id: str | None
    company_id: str | None
    record_id: str | None
    webhook_id: str | None
    timestamp: datetime | None
    payload: Mapping[str, Any] = field(repr=False)


def parse_event(payload: Mapping[str, Any]) -> WebhookEvent:
    """Normalise a JSON object body; total (never raises) so garbage from a valid signer is still kept."""
    data = payload.get("data")
    body: Mapping[str, Any] = data if isinstance(data, Mapping) else payload
    raw_type = _text(payload.get("type")) or _text(body.get("type"))
    resource, action = classify(raw_type, body)
    appointment = body.get("appointment")
    appt: Mapping[str, Any] = appointment if isinstance(appointment, Mapping) else {}
    location_id = (
        _text(body.get("locationId")) or _text(body.get("location_id")) or _text(appt.get("locationId"))
        or _text(payload.get("locationId"))
        or (_text(body.get("altId")) if body.get("altType") == "location" else None)  # invoices, payments
    )
    if resource == "locations":  # LocationCreate/Update: the record *is* the location
        location_id = location_id or _text(body.get("id"))
    try:
        timestamp = parse_timestamp(payload.get("timestamp"))
    except ValueError:
        timestamp = None
    return WebhookEvent(
        type=raw_type,
        resource=resource,
        action=action,
        location_id=location_id,
        company_id=_text(body.get("companyId")) or _text(payload.get("companyId")),
        record_id=_record_id(resource, body, appt),
        webhook_id=_text(payload.get("webhookId")) or _text(body.get("webhookId")),
        timestamp=timestamp,
        payload=payload,
    )


def classify(raw_type: str | None, body: Mapping[str, Any]) -> tuple[str, str]:
    """(resource, action) for a raw `type`; ("unknown", "other") when it is not one we know.

    Without a `type` (or with only a price's own type in it) the payload's shape decides (`_by_shape`)."""
    if raw_type is None or raw_type.strip().lower() in PRICE_TYPES:
        return _by_shape(body)
    key = raw_type.strip().lower()
    if key in ALIASES:
        resource, action = ALIASES[key]
    elif match := _FAMILY.match(key):
        resource, action = _FAMILY_RESOURCE[match.group(1)], "update"
    else:
        return UNKNOWN_RESOURCE, "other"
    if resource == "appointments":
        appointment = body.get("appointment")
        action = _appointment_action(action, appointment if isinstance(appointment, Mapping) else {})
    return resource, action


def _by_shape(body: Mapping[str, Any]) -> tuple[str, str]:
    """An untyped revenue event, recognised by fields no other published payload has together.

    - an invoice has `invoiceNumber` and an `invoiceItems` list; status "delete" is InvoiceDelete's,
      anything else (draft, sent, paid, void...) a change;
    - a price names its product in `product` and has an `amount` and a `currency`;
    - a product has a `productType` (and no `product`, which would make it a price);
    - an order has a `fulfillmentStatus` and an `amountSummary`.
    All keyed `_id`. Only invoices may be a delete; everything else recognised is an "update" (a
    create has the same effect), and any other shape stays unknown.
    """
    if _text(body.get("_id")) is None:
        return UNKNOWN_RESOURCE, "other"
    if _text(body.get("invoiceNumber")) is not None and isinstance(body.get("invoiceItems"), list):
        status = body.get("status")
        return "invoices", "delete" if isinstance(status, str) and status.strip().lower() == "delete" else "update"
    if _text(body.get("product")) is not None and "amount" in body and "currency" in body:
        return "product_prices", "update"
    if "productType" in body and "product" not in body:
        return "products", "update"
    if "fulfillmentStatus" in body and isinstance(body.get("amountSummary"), Mapping):
        return "orders", "update"
    return UNKNOWN_RESOURCE, "other"


def _appointment_action(labelled: str, appt: Mapping[str, Any]) -> str:
    """Appointment events may be labelled "AppointmentCreate" whatever they are; look at the record.

    A deleted flag or status makes it a delete; a `dateUpdated` differing from `dateAdded` an update.
    The published Update/Delete examples are byte-identical to the Create one, so for them (and any
    real delivery shaped like them) this stays "create": a missed delete is caught by the reconcile
    sweep, and create and update have the same effect (mark appointments dirty).
    """
    if labelled != "create":
        return labelled
    status = appt.get("appointmentStatus")
    if appt.get("deleted") is True or appt.get("isDeleted") is True or (
        isinstance(status, str) and status.lower() == "deleted"
    ):
        return "delete"
    added, updated = appt.get("dateAdded"), appt.get("dateUpdated")
    if isinstance(added, str) and isinstance(updated, str) and added != updated:
        return "update"
    return "create"


def _record_id(resource: str, body: Mapping[str, Any], appt: Mapping[str, Any]) -> str | None:
    if resource == "appointments":
        return _text(appt.get("id")) or _text(body.get("id"))
    if resource == "messages":  # the SMS example has no messageId; emails carry emailMessageId too
        return _text(body.get("messageId")) or _text(body.get("emailMessageId"))
    if resource == "app":
        return None
    if resource in UNDERSCORE_ID:
        return _text(body.get("_id")) or _text(body.get("id"))
    return _text(body.get("id")) or _text(body.get("_id"))


def parse_timestamp(value: Any) -> datetime | None:
    """A delivery `timestamp` as an aware UTC datetime: ISO-8601 text, or epoch seconds / milliseconds.

    None when absent; ValueError when present but not a time (the receiver answers 400).
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("timestamp is a boolean")
    if isinstance(value, str):
        text = value.strip()
        try:
            return _from_epoch(float(text))
        except ValueError:
            pass
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError("timestamp is not ISO-8601") from None
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    if isinstance(value, int | float):
        return _from_epoch(float(value))
    raise ValueError("timestamp is neither text nor a number")


def _from_epoch(seconds: float) -> datetime:
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        raise ValueError("timestamp is not finite")
    if abs(seconds) > 1e11:  # milliseconds (1e11 s is year 5138)
        seconds /= 1000.0
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise ValueError("timestamp out of range") from None


def _text(value: Any) -> str | None:
    """An id-like field as text; None for missing, empty, non-scalar, oversized or unencodable values."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    try:
        text = str(value).strip()
    except ValueError:  # an int too long to print
        return None
    if not text or len(text) > MAX_TEXT:
        return None
    try:
        text.encode("utf-8")  # lone surrogates from "\ud800" escapes cannot be stored
    except UnicodeEncodeError:
        return None
    return text
