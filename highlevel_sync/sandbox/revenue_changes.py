"""What happens to revenue records after they are created, and their by-id views.

Invoices get paid, orders and transactions refunded, subscriptions cancelled, products deleted,
prices changed, new submissions arrive: each stamped now (`updatedAt`), none moving the record's
creation or issue date, which is all the list endpoints filter on. So an old invoice paid today
is invisible to a client reading "recent" invoices; only a webhook or a full re-read finds it.

By-id answers (`GET /payments/orders/{id}`...) are shaped as their own spec schemas, which differ
from the list items: an order by id has `contactSnapshot`, `amountSummary`, `source` and `items`
instead of the list's flat `contactName`, `sourceType`... An invoice or a product by id is the
list item itself.
"""

from __future__ import annotations

from collections.abc import Callable

from . import data
from .index import Record
from .revenue_data import DETAILS, Seeder, make_submission
from .world import Location, World

ORDER_KEYS = ("_id", "altId", "altType", "contactId", "currency", "amount", "status", "liveMode", "createdAt",
              "updatedAt", "fulfillmentStatus")
TRANSACTION_KEYS = ("_id", "altType", "altId", "contactId", "currency", "amount", "status", "liveMode", "createdAt",
                    "updatedAt", "entityType", "entityId", "chargeId", "chargeSnapshot", "subscriptionId",
                    "ipAddress", "amountRefunded")
SUBSCRIPTION_KEYS = ("_id", "altType", "altId", "contactId", "currency", "amount", "status", "liveMode",
                     "subscriptionId", "subscriptionSnapshot", "ipAddress", "createdAt", "updatedAt")


def _snapshot(record: Record) -> Record:
    first, _, last = record["contactName"].partition(" ")
    return {"id": record["contactId"], "firstName": first, "lastName": last, "email": record["contactEmail"]}


def _entity_source(record: Record) -> Record:
    """The list's flat `entitySource*` fields as the by-id answer nests them."""
    return {"type": record.get("entitySourceType"), "subType": record.get("entitySourceSubType"),
            "id": record.get("entitySourceId"), "name": record.get("entitySourceName"),
            "meta": record.get("entitySourceMeta")}


def detail(loc: Location, family: str, record: Record) -> Record:
    """The by-id answer for a record of `family` (the caller holds the world lock)."""
    extras = loc.extra[DETAILS].get(record["_id"], {})
    if family == "orders":
        return {**{k: record[k] for k in ORDER_KEYS if k in record}, "contactSnapshot": _snapshot(record),
                "amountSummary": {"subtotal": record["subtotal"], "discount": record["discount"]},
                "source": {"type": record["sourceType"], "subType": record["sourceSubType"], "id": record["sourceId"],
                           "name": record["sourceName"], "meta": record["sourceMeta"]},
                "items": [dict(item) for item in extras.get("items", [])], "taxSummary": []}
    provider = {"type": record.get("paymentProviderType"),
                "connectedAccount": {"_id": record.get("paymentProviderConnectedAccount")}}
    if family == "transactions":
        return {**{k: record[k] for k in TRANSACTION_KEYS if k in record}, "contactSnapshot": _snapshot(record),
                "entitySource": _entity_source(record), "paymentProvider": provider, "isParent": False,
                "markAsTest": False}
    if family == "subscriptions":
        return {**{k: record[k] for k in SUBSCRIPTION_KEYS if k in record}, "contactSnapshot": _snapshot(record),
                "entitySource": _entity_source(record), "paymentProvider": provider, "markAsTest": False,
                **extras}
    return dict(record)


def _stamp(record: Record) -> str:
    return data.iso_ms(max(data.now_ms(), data.ms_of(record["updatedAt"]) + 1))


def _choose(world: World, rows: list[Record], created: Callable[[Record], int], days_ago: int | None,
            what: str) -> Record:
    """The row created closest to `days_ago` days ago (ties: lowest id), or any (None)."""
    if not rows:
        raise LookupError(f"no {what} to change in this location")
    rows = sorted(rows, key=lambda r: r["_id"])
    if days_ago is None:
        chosen: Record = data.pick(world.rng, rows)
        return chosen
    target = data.now_ms() - days_ago * data.DAY_MS
    return min(rows, key=lambda r: abs(created(r) - target))


def _created(record: Record) -> int:
    return data.ms_of(record["createdAt"])


def _issued(record: Record) -> int:
    return data.ms_of(record["issueDate"] + "T12:00:00Z")


def add_submissions(world: World, location_id: str, n: int, kind: str) -> list[Record]:
    """n new submissions of random forms (kind "form") or surveys ("survey"), created now."""
    if kind not in ("form", "survey"):
        raise ValueError(f"kind must be 'form' or 'survey', not {kind!r}")
    with world.lock:
        loc = world.locations[location_id]
        seeder = Seeder(world, loc, 0, world.rng)
        parents = sorted(loc.extra[f"{kind}s"].values(), key=lambda r: r["id"])
        added = [make_submission(seeder, kind, data.pick(world.rng, parents), data.now_ms()) for _ in range(n)]
        loc.extra[f"{kind}_submissions"].update((s["id"], s) for s in added)
        return [dict(s) for s in added]


def _replace(loc: Location, family: str, record: Record) -> Record:
    loc.extra[family][record["_id"]] = record
    return dict(record)


def pay_invoice(world: World, location_id: str, days_ago: int) -> Record:
    """Pay in full the unpaid invoice issued closest to `days_ago` days ago."""
    with world.lock:
        loc = world.locations[location_id]
        unpaid = [r for r in loc.extra["invoices"].values() if r["status"] not in ("paid", "void")]
        invoice = dict(_choose(world, unpaid, _issued, days_ago, "unpaid invoice"))
        invoice.update(status="paid", amountPaid=invoice["total"], amountDue=0, updatedAt=_stamp(invoice))
        return _replace(loc, "invoices", invoice)


def refund_order(world: World, location_id: str, days_ago: int | None = None) -> Record:
    """Refund a completed order; returns its by-id view (what an OrderStatusUpdate carries)."""
    with world.lock:
        loc = world.locations[location_id]
        done = [r for r in loc.extra["orders"].values() if r["status"] == "completed"]
        order = dict(_choose(world, done, _created, days_ago, "completed order"))
        order.update(status="refunded", updatedAt=_stamp(order))
        _replace(loc, "orders", order)
        return detail(loc, "orders", order)


def refund_transaction(world: World, location_id: str, days_ago: int | None = None) -> Record:
    """Refund a succeeded charge in full (`amountRefunded`); no webhook exists for this."""
    with world.lock:
        loc = world.locations[location_id]
        paid = [r for r in loc.extra["transactions"].values() if r["status"] == "succeeded"]
        txn = dict(_choose(world, paid, _created, days_ago, "succeeded transaction"))
        txn.update(status="refunded", amountRefunded=txn["amount"], updatedAt=_stamp(txn),
                   chargeSnapshot={**txn["chargeSnapshot"], "status": "refunded"})
        return _replace(loc, "transactions", txn)


def cancel_subscription(world: World, location_id: str, days_ago: int | None = None) -> Record:
    """Cancel an active subscription; no webhook exists for this."""
    with world.lock:
        loc = world.locations[location_id]
        active = [r for r in loc.extra["subscriptions"].values() if r["status"] == "active"]
        sub = dict(_choose(world, active, _created, days_ago, "active subscription"))
        stamp = _stamp(sub)
        sub.update(status="canceled", subscriptionSnapshot={"status": "canceled"}, updatedAt=stamp)
        loc.extra[DETAILS][sub["_id"]] = {"canceledAt": stamp}
        return _replace(loc, "subscriptions", sub)


def delete_product(world: World, location_id: str) -> Record:
    """Delete a product and its prices; returns the product as it was (a ProductDelete carries it)."""
    with world.lock:
        loc = world.locations[location_id]
        product = _choose(world, list(loc.extra["products"].values()), _created, None, "product")
        del loc.extra["products"][product["_id"]]
        prices = loc.extra["product_prices"]
        for price_id in [k for k, p in prices.items() if p["product"] == product["_id"]]:
            del prices[price_id]
        return dict(product)


def change_price(world: World, location_id: str) -> Record:
    """Raise one price by 10 %; the product itself is not touched."""
    with world.lock:
        loc = world.locations[location_id]
        price = dict(_choose(world, list(loc.extra["product_prices"].values()), _created, None, "price"))
        price.update(amount=round(price["amount"] * 1.1, 2), updatedAt=_stamp(price))
        return _replace(loc, "product_prices", price)
