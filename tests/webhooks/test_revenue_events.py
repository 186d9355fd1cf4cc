"""Invoice, Order, Product and Price webhooks: classified with or without `type`, turned into reads by
id (or a re-read of a product's prices) and tombstones, handed to the run and marked applied after it."""

from __future__ import annotations

from typing import Any, cast

import pytest

from highlevel_sync import deletions
from sources.highlevel.client import HighLevelClient
from sources.highlevel.resources.context import LocationContext
from sources.highlevel.webhooks.events import parse_event
from sources.highlevel.webhooks.inbox import Inbox
from sources.highlevel.webhooks.processor import Processor

from .conftest import example

INVOICE_ID = INVOICE_LOCATION = "6578278e879ad2646715ba9c"  # the examples' altId repeats the _id
ORDER_ID, ORDER_LOCATION = "660ed43bfdf9fc05a0de7a40", "Z4Bxl8J4SaPEPLq9IQ8g"
PRODUCT_ID, PRICE_ID = "655b33a82209e60b6adb87a5", "655b33aa2209e60b6adb87a7"
CATALOGUE_LOCATION = "3SwdhCsvxI8Au3KsPJt6"

# example file -> (resource, action) with the payload as published (mostly untyped), record id, location
UNTYPED: dict[str, tuple[str, str, str, str]] = {
    "InvoiceCreate.json": ("invoices", "update", INVOICE_ID, INVOICE_LOCATION),
    "InvoiceUpdate.json": ("invoices", "update", INVOICE_ID, INVOICE_LOCATION),
    "InvoicePaid.json": ("invoices", "update", INVOICE_ID, INVOICE_LOCATION),
    "InvoicePartiallyPaid.json": ("invoices", "update", INVOICE_ID, INVOICE_LOCATION),
    "InvoiceSent.json": ("invoices", "update", INVOICE_ID, INVOICE_LOCATION),
    "InvoiceVoid.json": ("invoices", "update", INVOICE_ID, INVOICE_LOCATION),  # stays, status void
    "InvoiceDelete.json": ("invoices", "delete", INVOICE_ID, INVOICE_LOCATION),  # its status says "delete"
    "OrderCreate.json": ("orders", "create", ORDER_ID, ORDER_LOCATION),  # the Order examples are typed
    "OrderStatusUpdate.json": ("orders", "update", ORDER_ID, ORDER_LOCATION),
    "ProductCreate.json": ("products", "update", PRODUCT_ID, CATALOGUE_LOCATION),
    "ProductUpdate.json": ("products", "update", PRODUCT_ID, CATALOGUE_LOCATION),
    "ProductDelete.json": ("products", "update", PRODUCT_ID, CATALOGUE_LOCATION),  # no delete from shape alone
    "PriceCreate.json": ("product_prices", "update", PRICE_ID, CATALOGUE_LOCATION),
    "PriceUpdate.json": ("product_prices", "update", PRICE_ID, CATALOGUE_LOCATION),  # "type": "one_time"
    "PriceDelete.json": ("product_prices", "update", PRICE_ID, CATALOGUE_LOCATION),
}
# the event name in `type`, as real deliveries carry it
TYPED: dict[str, tuple[str, str]] = {
    "InvoiceCreate": ("invoices", "create"), "InvoiceUpdate": ("invoices", "update"),
    "InvoicePaid": ("invoices", "update"), "InvoicePartiallyPaid": ("invoices", "update"),
    "InvoiceSent": ("invoices", "update"), "InvoiceVoid": ("invoices", "update"),
    "InvoiceDelete": ("invoices", "delete"), "OrderCreate": ("orders", "create"),
    "OrderStatusUpdate": ("orders", "update"), "ProductCreate": ("products", "create"),
    "ProductUpdate": ("products", "update"), "ProductDelete": ("products", "delete"),
    "PriceCreate": ("product_prices", "create"), "PriceUpdate": ("product_prices", "update"),
    "PriceDelete": ("product_prices", "delete"),
}


@pytest.mark.parametrize("name", sorted(UNTYPED))
def test_published_examples_are_classified_by_type_or_shape(name: str) -> None:
    resource, action, record_id, location_id = UNTYPED[name]
    event = parse_event(example(name))
    assert (event.resource, event.action, event.record_id, event.location_id) == (
        resource, action, record_id, location_id)


@pytest.mark.parametrize("event_type", sorted(TYPED))
def test_the_event_name_in_type_decides(event_type: str) -> None:
    payload = example(f"{event_type}.json", type=event_type)
    event = parse_event(payload)
    assert (event.resource, event.action) == TYPED[event_type]
    assert event.record_id == UNTYPED[f"{event_type}.json"][2]
    # the integration guide's envelope: the same
    envelope = {"type": event_type, "webhookId": "w1", "data": {k: v for k, v in payload.items() if k != "type"}}
    assert (parse_event(envelope).resource, parse_event(envelope).action) == TYPED[event_type]


def test_shapes_are_recognised_only_when_unambiguous() -> None:
    invoice = example("InvoicePaid.json")
    assert parse_event({k: v for k, v in invoice.items() if k != "invoiceItems"}).resource == "unknown"
    assert parse_event({k: v for k, v in invoice.items() if k != "_id"}).resource == "unknown"
    # a price without its product is not recognisable as a price, nor as a product
    price = {k: v for k, v in example("PriceCreate.json").items() if k != "product"}
    assert parse_event(price).resource == "unknown"
    # an event type we do not know is not second-guessed by shape
    assert (parse_event(example("InvoicePaid.json", type="InvoiceArchived")).resource,
            parse_event(example("InvoicePaid.json", type="InvoiceArchived")).action) == ("unknown", "other")
    # a location named by altId only when altType says it is a location
    assert parse_event(example("InvoicePaid.json", altType="company")).location_id is None


def accept(inbox: Inbox, payload: dict[str, Any]) -> None:
    assert inbox.accept(parse_event(payload))


def dirty(inbox: Inbox) -> set[tuple[str, str]]:
    return {(row[0], row[1]) for row in inbox._conn.execute("SELECT location_id, resource FROM dirty")}


def test_changes_are_noted_for_reads_by_id_and_deletes_leave_tombstones(inbox: Inbox) -> None:
    accept(inbox, example("InvoicePaid.json", type="InvoicePaid", webhookId="1"))
    accept(inbox, example("OrderStatusUpdate.json", webhookId="2"))
    accept(inbox, example("ProductUpdate.json", type="ProductUpdate", webhookId="3"))
    accept(inbox, example("InvoiceDelete.json", _id="inv-gone", webhookId="4", timestamp="2026-01-02T03:04:05Z"))
    accept(inbox, example("ProductDelete.json", _id="prod-gone", type="ProductDelete", webhookId="5"))
    assert Processor(inbox, clock=lambda: 7.0).process_pending() == 5
    assert {(c.resource, c.id, c.location_id) for c in inbox.pending_changes()} == {
        ("invoices", INVOICE_ID, INVOICE_LOCATION), ("orders", ORDER_ID, ORDER_LOCATION),
        ("products", PRODUCT_ID, CATALOGUE_LOCATION)}
    assert [(d.key, d.deleted_at, d.detected_by) for d in inbox.pending_deletions()] == [
        (("invoices", "inv-gone", INVOICE_LOCATION), "2026-01-02T03:04:05.000000Z", "webhook"),
        (("products", "prod-gone", CATALOGUE_LOCATION), inbox.pending_deletions()[1].deleted_at, "webhook")]
    # a product's prices come and go with it: product events also make its prices stale
    assert dirty(inbox) == {(INVOICE_LOCATION, "invoices"), (ORDER_LOCATION, "orders"),
                            (CATALOGUE_LOCATION, "products"), (CATALOGUE_LOCATION, "product_prices")}


@pytest.mark.parametrize("event_type", [None, "PriceCreate", "PriceUpdate", "PriceDelete"])
def test_every_price_event_rereads_its_products_prices_and_deletes_no_row(inbox: Inbox, event_type: str | None
                                                                          ) -> None:
    extra = {"type": event_type} if event_type else {}
    accept(inbox, example("PriceDelete.json", webhookId="p1", **extra))
    Processor(inbox, clock=lambda: 1.0).process_pending()
    assert [(c.resource, c.id, c.location_id) for c in inbox.pending_changes()] == [
        ("product_prices", PRODUCT_ID, CATALOGUE_LOCATION)]  # keyed by the product, not the price
    assert inbox.pending_deletions() == []
    assert dirty(inbox) == {(CATALOGUE_LOCATION, "product_prices")}


def context(location_id: str) -> LocationContext:
    return LocationContext(cast(HighLevelClient, None), location_id)


def test_the_run_gets_the_changes_of_the_lists_it_syncs_and_marks_exactly_those_applied(inbox: Inbox) -> None:
    loc = "L1"
    inbox.record_change("invoices", "i1", loc)
    inbox.record_change("invoices", "i2", loc)
    inbox.record_change("product_prices", "prod1", loc)
    inbox.record_change("orders", "o1", loc)  # not synced by this run: stays pending
    inbox.record_change("invoices", "elsewhere", "L2")
    inbox.record_deletion("invoices", "i9", loc, "2026-01-01T00:00:00.000000Z", detected_by="webhook")
    ctx = context(loc)
    deletions.prepare(ctx, inbox, None, False, ["invoices", "product_prices", "deletions"])
    assert {r: set(c) for r, c in ctx.changed_records.items()} == {"invoices": {"i1", "i2"},
                                                                  "product_prices": {"prod1"}}
    assert ctx.deleted_ids("invoices") == {"i9"}
    inbox.record_change("invoices", "i2", loc)  # changed again while the run read it: read again next run
    deletions.commit(ctx, inbox)
    assert sorted((c.resource, c.id, c.location_id) for c in inbox.pending_changes()) == [
        ("invoices", "elsewhere", "L2"), ("invoices", "i2", loc), ("orders", "o1", loc)]
    assert inbox.pending_deletions() == []


def test_a_failed_resource_keeps_its_changes_and_tombstones_pending(inbox: Inbox) -> None:
    loc = "L1"
    inbox.record_change("invoices", "i1", loc)
    inbox.record_change("orders", "o1", loc)
    inbox.record_deletion("invoices", "i9", loc, "2026-01-01T00:00:00.000000Z", detected_by="webhook")
    ctx = context(loc)
    deletions.prepare(ctx, inbox, None, False, ["invoices", "orders", "deletions"])
    deletions.forget(ctx, "invoices")
    deletions.commit(ctx, inbox)
    assert [(c.resource, c.id) for c in inbox.pending_changes()] == [("invoices", "i1")]
    assert [d.key for d in inbox.pending_deletions()] == [("invoices", "i9", loc)]
