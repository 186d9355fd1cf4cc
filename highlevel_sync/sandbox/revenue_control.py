"""The `Sandbox`'s controls for revenue and lead capture: people paying, refunding, cancelling,
editing the catalogue and filling in forms while a client syncs (revenue_changes.py).

With `notify` (a receiver URL) a change also delivers its signed webhook, built like every other
event (webhooks.py: the record's fields flat, plus `type`, `locationId`, `timestamp`,
`webhookId`), with the fields of the published examples: InvoicePaid carries the invoice,
OrderStatusUpdate the order as its by-id answer has it, ProductDelete the product as it was,
PriceUpdate the price. In a Price* delivery `type` is the event name, so the price's own `type`
(one_time / recurring) is not in it: a receiver must read the price. Refunded transactions and
cancelled subscriptions have no documented event; only a re-read finds them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import revenue_changes as changes

if TYPE_CHECKING:
    from .webhooks import WebhookEmitter
    from .world import World

# what the control API's POST /__sandbox__/revenue may call
ACTIONS = ("add_submissions", "pay_invoice", "refund_order", "refund_transaction", "cancel_subscription",
           "delete_product", "change_price")


class RevenueControls:
    world: World
    webhooks: WebhookEmitter

    def _deliver(self, url: str | None, event_type: str, location_id: str, record: dict[str, Any]) -> None:
        if url:
            self.webhooks.deliver(url, self.webhooks.event(event_type, location_id, record))

    def add_submissions(self, location_id: str, n: int, kind: str = "form") -> list[str]:
        """n new submissions (kind "form" or "survey") of random forms or surveys, created now."""
        return [str(s["id"]) for s in changes.add_submissions(self.world, location_id, n, kind)]

    def pay_invoice(self, location_id: str, days_ago: int, notify: str | None = None) -> str:
        """Pay in full the unpaid invoice issued closest to `days_ago` days ago (every location has
        one issued 3-10 and one 150-250 days ago); with `notify` also deliver InvoicePaid."""
        invoice = changes.pay_invoice(self.world, location_id, days_ago)
        self._deliver(notify, "InvoicePaid", location_id, invoice)
        return str(invoice["_id"])

    def refund_order(self, location_id: str, notify: str | None = None, days_ago: int | None = None) -> str:
        """Refund a completed order (any, or the one created closest to `days_ago` days ago); with
        `notify` also deliver OrderStatusUpdate. Its transaction is left as it was."""
        order = changes.refund_order(self.world, location_id, days_ago)
        self._deliver(notify, "OrderStatusUpdate", location_id, order)
        return str(order["_id"])

    def refund_transaction(self, location_id: str, days_ago: int | None = None) -> str:
        """Refund a succeeded transaction in full (`amountRefunded`, status refunded)."""
        return str(changes.refund_transaction(self.world, location_id, days_ago)["_id"])

    def cancel_subscription(self, location_id: str, days_ago: int | None = None) -> str:
        return str(changes.cancel_subscription(self.world, location_id, days_ago)["_id"])

    def delete_product(self, location_id: str, notify: str | None = None) -> str:
        """Delete a product and its prices; with `notify` also deliver ProductDelete (no Price*)."""
        product = changes.delete_product(self.world, location_id)
        self._deliver(notify, "ProductDelete", location_id, product)
        return str(product["_id"])

    def change_price(self, location_id: str, notify: str | None = None) -> tuple[str, str]:
        """Raise one price by 10 %; with `notify` also deliver PriceUpdate. Returns (product, price)."""
        price = changes.change_price(self.world, location_id)
        self._deliver(notify, "PriceUpdate", location_id, price)
        return str(price["product"]), str(price["_id"])
