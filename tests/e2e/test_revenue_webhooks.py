"""Invoice, Product and Price webhooks reach the warehouse: an old invoice paid today is read by id, a
deleted product leaves with its prices, a changed price is read again, a deleted invoice leaves with
its line items; and a receiver-triggered run syncs exactly the resources the events named."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from sources.highlevel.endpoints import LISTS
from sources.highlevel.normalize import to_utc
from sources.highlevel.webhooks import Inbox, InProcessTrigger, WebhookConfig
from sources.highlevel.webhooks.events import parse_event
from sources.highlevel.webhooks.processor import Processor
from sources.highlevel.webhooks.server import Receiver
from tests.webhooks.conftest import ThreadServer

from .conftest import Harness

REVENUE = list(LISTS)


@pytest.fixture
def h(highlevel_sandbox_factory: Any, tmp_path: Path) -> Harness:
    sb = highlevel_sandbox_factory(contacts_per_location=(60, 20, 10), revenue_per_location=(60, 20, 10),
                                   index_lag_s=0.2)
    return Harness(sb, tmp_path)


def deliver(h: Harness, inbox: Inbox, event_type: str, record: dict[str, Any]) -> None:
    """What the receiver does with a delivery the sandbox would send: store it, apply it."""
    assert inbox.accept(parse_event(h.sb.webhooks.event(event_type, h.big, record)))
    Processor(inbox).process_pending()


def truth_of(h: Harness, family: str, record_id: str) -> dict[str, Any]:
    return next(r for r in h.sb.truth(h.big, family) if r["_id"] == record_id)


def invoice_row(h: Harness, invoice_id: str) -> list[tuple[Any, ...]]:
    return h.query("select status, total, amount_paid, amount_due, updated_at from highlevel.invoices where id = ?",
                   invoice_id)


def test_webhooks_in_the_inbox_reach_the_next_plain_run(h: Harness, tmp_path: Path) -> None:
    sb, loc = h.sb, h.big
    inbox_path = tmp_path / "inbox.sqlite"
    inbox = Inbox(inbox_path)

    def run() -> None:
        result = h.run(resources=REVENUE, inbox_path=str(inbox_path))
        assert result.ok, [(r.error, r.resource_errors) for r in result.locations]

    run()
    # an invoice issued ~200 days ago paid today: outside every plain run's window, only its webhook names it
    paid = sb.pay_invoice(loc, days_ago=200)
    deliver(h, inbox, "InvoicePaid", truth_of(h, "invoices", paid))
    sb.clear_requests()
    run()
    truth = truth_of(h, "invoices", paid)
    assert truth["status"] == "paid" and truth["amountPaid"] == truth["total"] and truth["amountDue"] == 0
    [(status, total, amount_paid, amount_due, updated_at)] = invoice_row(h, paid)
    assert (status, total, amount_paid, amount_due) == ("paid", float(truth["total"]), float(truth["total"]), 0.0)
    assert to_utc(updated_at) == to_utc(truth["updatedAt"])
    assert len(sb.requests(f"/invoices/{paid}")) == 1  # read by id once
    assert inbox.pending_changes(loc) == []

    # a product deleted: its row and its prices leave, `deletions` says a webhook told
    before = {p["_id"]: p for p in sb.truth(loc, "products")}
    gone = sb.delete_product(loc)
    gone_prices = {r[0] for r in h.query("select id from highlevel.product_prices where product_id = ?", gone)}
    assert gone_prices
    deliver(h, inbox, "ProductDelete", before[gone])
    sb.clear_requests()
    run()
    assert sb.requests(f"/invoices/{paid}") == []  # applied: not read by id again
    assert h.query("select count(*) from highlevel.products where id = ?", gone) == [(0,)]
    assert h.query("select count(*) from highlevel.product_prices where product_id = ?", gone) == [(0,)]
    assert h.query("select detected_by from highlevel.deletions where resource = 'products' and id = ?",
                   gone) == [("webhook",)]
    assert {r[0] for r in h.query("select id from highlevel.deletions where resource = 'product_prices'")} \
        == gone_prices
    assert {r[0] for r in h.query("select id from highlevel.products")} == {p["_id"] for p in sb.truth(loc, "products")}
    assert inbox.pending_deletions(loc) == []

    # a price changed: the product listing is the same, only the PriceUpdate makes the run read prices
    product, price = sb.change_price(loc)
    deliver(h, inbox, "PriceUpdate", truth_of(h, "product_prices", price))
    assert [(c.resource, c.id) for c in inbox.pending_changes(loc)] == [("product_prices", product)]
    sb.clear_requests()
    run()
    assert len(sb.requests(f"/products/{product}/price")) == 1
    assert h.query("select amount from highlevel.product_prices where id = ?", price) == [
        (float(truth_of(h, "product_prices", price)["amount"]),)]
    assert inbox.pending_changes(loc) == []

    # an invoice deleted in HighLevel (the sandbox has no control for it: taken out of its world)
    victim = max(sb.truth(loc, "invoices"), key=lambda r: (len(r["invoiceItems"]), r["_id"]))
    [(parent,)] = h.query("select _dlt_id from highlevel.invoices where id = ?", victim["_id"])
    items = "select count(*) from highlevel.invoices__invoice_items where _dlt_parent_id = ?"
    assert h.query(items, parent) == [(len(victim["invoiceItems"]),)] and victim["invoiceItems"]
    with sb.world.lock:
        del sb.world.locations[loc].extra["invoices"][victim["_id"]]
    deliver(h, inbox, "InvoiceDelete", {**victim, "status": "delete"})
    run()
    assert h.query("select count(*) from highlevel.invoices where id = ?", victim["_id"]) == [(0,)]
    assert h.query(items, parent) == [(0,)]
    assert h.query("select detected_by from highlevel.deletions where resource = 'invoices' and id = ?",
                   victim["_id"]) == [("webhook",)]
    assert h.query("select count(*) from highlevel.invoices__invoice_items")[0][0] == sum(
        len(i["invoiceItems"]) for i in sb.truth(loc, "invoices"))
    assert inbox.pending_deletions(loc) == [] and inbox.pending_changes(loc) == []
    inbox.close()


def test_a_receiver_triggered_run_syncs_the_resources_the_events_named(h: Harness, tmp_path: Path) -> None:
    sb, loc = h.sb, h.big
    inbox_path = str(tmp_path / "inbox.sqlite")
    runs: list[set[str]] = []
    errors: list[Any] = []

    def triggered(location_id: str, resources: set[str]) -> None:
        runs.append(set(resources))
        result = h.run(locations=[location_id], resources=sorted(resources), inbox_path=inbox_path)
        if not result.ok:
            errors.append([(r.error, r.resource_errors) for r in result.locations])

    config = WebhookConfig(ed25519_public_key=sb.webhooks.public_pem(), inbox_path=inbox_path, quiet_s=0.3,
                           max_delay_s=5.0)
    receiver = Receiver(config, InProcessTrigger(triggered)).start()
    server = ThreadServer(receiver.app).start()
    url = f"{server.url}/webhooks/highlevel"

    def wait_runs(n: int) -> None:
        deadline = time.monotonic() + 60
        while len(runs) < n or receiver.debouncer.running:
            assert time.monotonic() < deadline, runs
            time.sleep(0.05)
        assert not errors, errors

    try:
        assert h.run(resources=REVENUE, inbox_path=inbox_path).ok
        sb.clear_requests()
        paid = sb.pay_invoice(loc, days_ago=200, notify=url)
        wait_runs(1)
        assert runs == [{"invoices"}]
        assert invoice_row(h, paid)[0][:4] == ("paid", *(float(truth_of(h, "invoices", paid)[k])
                                                         for k in ("total", "amountPaid", "amountDue")))
        assert len(sb.requests(f"/invoices/{paid}")) == 1

        gone = sb.delete_product(loc, notify=url)
        wait_runs(2)
        assert runs[1] == {"products", "product_prices"}
        assert h.query("select count(*) from highlevel.product_prices where product_id = ?", gone) == [(0,)]
        assert h.query("select detected_by from highlevel.deletions where resource = 'products' and id = ?",
                       gone) == [("webhook",)]

        _, price = sb.change_price(loc, notify=url)
        wait_runs(3)
        assert runs[2] == {"product_prices"}
        assert h.query("select amount from highlevel.product_prices where id = ?", price) == [
            (float(truth_of(h, "product_prices", price)["amount"]),)]
        assert Inbox(inbox_path).pending_changes(loc) == []
    finally:
        server.stop()
        receiver.stop()
