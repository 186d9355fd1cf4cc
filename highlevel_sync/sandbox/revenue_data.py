"""Revenue and lead capture of the sandbox world: forms, surveys and their submissions, invoices,
orders, transactions, subscriptions, products and prices (forms.json, surveys.json, invoices.json,
payments.json, products.json).

Shapes are the specs' list items: submissions and forms keyed `id`, everything else `_id` (24 hex
digits, a Mongo ObjectId whose first 8 digits are its creation second); invoice dates
`YYYY-MM-DD`, every other time ISO `Z` (submissions to the second, as the spec's examples).
Amounts are numbers in the currency's major unit; a location bills mostly in its own currency and
now and then in EUR, so totals must be kept per currency.

History is seeded relative to the start of the current UTC day, not the fixed anchor the CRM
families use: `GET /forms/submissions` answers only the last month unless asked otherwise, and an
invoice "issued last week" must exist whenever a test runs. Same seed and same day, same data.
Each location draws from its own random stream, so adding these families shifted no other data.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

from . import data
from .index import Record
from .world import Location, World

DAY_MS = data.DAY_MS
HISTORY_MS = (2 * 365 + 60) * DAY_MS  # a little over two years
CURRENCIES = {"US": "USD", "IN": "INR", "GB": "GBP", "AU": "AUD"}
OTHER_CURRENCY = "EUR"
FORM_NAMES = ("Contact Us", "Book a Visit", "Free Quote", "Newsletter", "Callback Request", "Insurance Check")
SURVEY_NAMES = ("Patient Satisfaction", "Service Feedback", "Intake Questionnaire", "Net Promoter")
PRODUCT_NAMES = ("Cleaning", "Whitening Kit", "Consultation", "Care Plan", "Night Guard", "X-Ray", "Gift Card")
PRODUCT_TYPES = ("SERVICE", "PHYSICAL", "DIGITAL")
CARDS = ("visa", "mastercard", "amex", "discover")
# the families and the `loc.extra` key each one lives under (also the names `Sandbox.truth` takes)
FAMILIES = ("forms", "form_submissions", "surveys", "survey_submissions", "invoices", "orders", "transactions",
            "subscriptions", "products", "product_prices")
DETAILS = "revenue_details"  # record id -> what only its by-id answer carries (order items, cancellation)


def object_id(rng: random.Random, ms: int) -> str:
    """A Mongo ObjectId: 4 bytes of creation seconds, 8 random bytes, as 24 hex digits."""
    return f"{ms // 1000:08x}{rng.getrandbits(64):016x}"


def day_of(ms: int) -> str:
    return data.iso_ms(ms)[:10]


def start_of_today_ms() -> int:
    return data.now_ms() // DAY_MS * DAY_MS


class Seeder:
    """What every maker needs: the location, its random stream, its contacts and currency."""

    def __init__(self, world: World, loc: Location, index: int, rng: random.Random | None = None) -> None:
        self.rng = rng or random.Random(f"{world.config.seed}/revenue/{index}")
        self.loc = loc
        self.end = start_of_today_ms()  # seeded history ends before today
        self.contact_ids = sorted(loc.contacts.truth)
        self.user_ids = [u["id"] for u in loc.users]
        self.currency = CURRENCIES.get(loc.record["country"], "USD")

    def when(self, span_ms: int = HISTORY_MS) -> int:
        return self.end - 1 - data.below(self.rng, span_ms)

    def money(self) -> str:
        return OTHER_CURRENCY if self.rng.random() < 0.1 else self.currency

    def contact(self) -> Record:
        """The contact's id and, as the payment records repeat them, name and email."""
        if not self.contact_ids:
            return {"id": data.make_id(self.rng), "firstName": None, "lastName": None, "email": None, "phone": None}
        return self.loc.contacts.truth[data.pick(self.rng, self.contact_ids)]  # read only


def seed_revenue(world: World, loc: Location, index: int) -> None:
    cfg = world.config
    n = cfg.per_location(cfg.revenue_per_location, 50)[index]
    seed = Seeder(world, loc, index)
    forms = [make_form(seed, FORM_NAMES[k % len(FORM_NAMES)], k) for k in range(max(2, n // 4))]
    surveys = [make_form(seed, SURVEY_NAMES[k % len(SURVEY_NAMES)], k) for k in range(max(1, n // 4))]
    form_subs = [make_submission(seed, "form", data.pick(seed.rng, forms), seed.when()) for _ in range(2 * n)]
    survey_subs = [make_submission(seed, "survey", data.pick(seed.rng, surveys), seed.when()) for _ in range(n)]
    products, prices = [], []
    for k in range(max(2, n // 10)):
        product = make_product(seed, k)
        products.append(product)
        prices += [make_price(seed, product, tier) for tier in range(1 + data.below(seed.rng, 3))]
    # two unpaid invoices at known ages (a week, about half a year): `pay_invoice` needs them everywhere
    week = seed.end - (3 + data.below(seed.rng, 8)) * DAY_MS - data.below(seed.rng, DAY_MS)
    half_year = seed.end - (150 + data.below(seed.rng, 100)) * DAY_MS - data.below(seed.rng, DAY_MS)
    issued = sorted([week, half_year] + [seed.when() for _ in range(max(0, n - 2))])
    invoices = [make_invoice(seed, prices, number + 1001, stamp, "sent" if stamp in (week, half_year) else None)
                for number, stamp in enumerate(issued)]
    orders, transactions, details = [], [], {}
    for _ in range(n):
        order, items = make_order(seed, prices)
        orders.append(order)
        details[order["_id"]] = {"items": items}
        if order["status"] in ("completed", "refunded") or (order["status"] == "pending" and seed.rng.random() < 0.5):
            transactions.append(make_transaction(seed, order, "order", data.ms_of(order["createdAt"]) + 2_000))
    subscriptions = []
    recurring = [p for p in prices if p["type"] == "recurring"] or prices
    for _ in range(max(1, n // 2)):
        subscription = make_subscription(seed, data.pick(seed.rng, recurring))
        subscriptions.append(subscription)
        start = data.ms_of(subscription["createdAt"])
        canceled = subscription["status"] == "canceled"
        details[subscription["_id"]] = {"canceledAt": subscription["updatedAt"]} if canceled else {}
        stop = data.ms_of(subscription["updatedAt"]) if canceled else seed.end
        for charge in range(3):
            if start + charge * 30 * DAY_MS < stop:
                transactions.append(make_transaction(seed, subscription, "subscription",
                                                     start + charge * 30 * DAY_MS + 5_000))
    loc.extra.update({name: {(r.get("id") or r["_id"]): r for r in rows} for name, rows in (
        ("forms", forms), ("surveys", surveys), ("form_submissions", form_subs), ("survey_submissions", survey_subs),
        ("products", products), ("product_prices", prices), ("invoices", invoices), ("orders", orders),
        ("transactions", transactions), ("subscriptions", subscriptions))})
    loc.extra[DETAILS] = details


def make_form(seed: Seeder, name: str, k: int) -> Record:
    """A form or a survey (`FormsParams`, `GetSurveysSchema`): only id, name and location."""
    return {"id": data.make_id(seed.rng), "name": name if k < len(FORM_NAMES) else f"{name} {k + 1}",
            "locationId": seed.loc.id}


def make_submission(seed: Seeder, kind: str, parent: Record, created_ms: int) -> Record:
    created_ms -= created_ms % 1000
    contact = seed.contact()
    name = " ".join(p for p in (contact["firstName"], contact["lastName"]) if p) or "Anonymous"
    domain = seed.loc.record["domain"]
    others = {
        "full_name": name, "email": contact["email"], "phone": contact["phone"],
        "eventData": {"source": data.pick(seed.rng, data.SESSION_SOURCES), "medium": kind, "mediumId": parent["id"],
                      "parentId": parent["id"], "parentName": parent["name"], "type": "page-visit",
                      "domain": domain, "version": "v3", "timestamp": created_ms,
                      "page": {"url": f"https://{domain}/{kind}s/{parent['id']}", "title": parent["name"]},
                      "contactSessionIds": None},
        "fieldsOriSequance": ["full_name", "email", "phone"],
    }
    if seed.rng.random() < 0.5:
        others["message"] = f"Please call me back, ref {1 + data.below(seed.rng, 10**6)}"
        others["fieldsOriSequance"].append("message")
    return {"id": str(uuid.UUID(int=seed.rng.getrandbits(128), version=4)), "contactId": contact["id"],
            "createdAt": data.iso_ms(created_ms), f"{kind}Id": parent["id"], "name": name, "email": contact["email"],
            "others": others}


def make_product(seed: Seeder, k: int) -> Record:
    created = seed.when()
    name = PRODUCT_NAMES[k % len(PRODUCT_NAMES)]
    if k >= len(PRODUCT_NAMES):
        name += f" {k // len(PRODUCT_NAMES) + 1}"
    updated = created + data.below(seed.rng, seed.end - created)
    product_id = object_id(seed.rng, created)
    return {"_id": product_id, "description": f"{name} at {seed.loc.record['name']}", "variants": [], "medias": [],
            "locationId": seed.loc.id, "name": name, "productType": data.pick(seed.rng, PRODUCT_TYPES),
            "availableInStore": seed.rng.random() < 0.7,
            "userId": data.pick(seed.rng, seed.user_ids) if seed.user_ids else None,
            "createdAt": data.iso_ms(created), "updatedAt": data.iso_ms(updated),
            "statementDescriptor": name[:10].upper(), "image": f"https://files.example.com/products/{product_id}.png",
            "collectionIds": [], "isTaxesEnabled": False, "taxes": [], "slug": name.lower().replace(" ", "-")}


def make_price(seed: Seeder, product: Record, tier: int) -> Record:
    created = data.ms_of(product["createdAt"]) + tier * 1000
    recurring = seed.rng.random() < 0.35
    price = {"_id": object_id(seed.rng, created), "membershipOffers": [], "variantOptionIds": [],
             "locationId": seed.loc.id, "product": product["_id"], "userId": product["userId"],
             "name": ("Monthly" if recurring else "Standard") + (f" tier {tier + 1}" if tier else ""),
             "type": "recurring" if recurring else "one_time", "currency": seed.currency,
             "amount": round(15 + seed.rng.random() * 485, 2), "createdAt": data.iso_ms(created),
             "updatedAt": data.iso_ms(created), "trackInventory": False, "allowOutOfStockPurchases": True}
    if recurring:
        price["recurring"] = {"interval": "month", "intervalCount": 1}
    return price


def make_invoice(seed: Seeder, prices: list[Record], number: int, created: int, status: str | None) -> Record:
    """`GetInvoiceResponseDto`; `status` None draws one (older invoices are mostly paid)."""
    rng, loc = seed.rng, seed.loc.record
    if status is None:
        roll = rng.random()
        status = ("paid" if roll < 0.55 else "sent" if roll < 0.75 else "partially_paid" if roll < 0.83 else
                  "void" if roll < 0.9 else "draft" if roll < 0.96 else "payment_processing")
    contact, currency = seed.contact(), seed.money()
    items = []
    for _ in range(1 + data.below(rng, 3)):
        price = data.pick(rng, prices)
        items.append({"taxes": [], "_id": data.make_id(rng), "productId": price["product"], "priceId": price["_id"],
                      "currency": currency, "name": price["name"], "qty": 1 + data.below(rng, 3),
                      "amount": price["amount"]})
    total = round(sum(item["qty"] * item["amount"] for item in items), 2)
    paid = total if status == "paid" else round(total / 2, 2) if status == "partially_paid" else 0
    changed = created + (data.below(rng, min(30 * DAY_MS, seed.end - created)) if paid else 60_000)
    name = " ".join(p for p in (contact["firstName"], contact["lastName"]) if p) or "Customer"
    return {
        "_id": object_id(rng, created), "status": status, "liveMode": True, "amountPaid": paid, "altId": seed.loc.id,
        "altType": "location", "name": f"Invoice {number}",
        "businessDetails": {"name": loc["name"], "address": {"addressLine1": loc["address"], "city": loc["city"],
                                                             "state": loc["state"], "countryCode": loc["country"],
                                                             "postalCode": loc["postalCode"]},
                            "phoneNo": loc["phone"], "website": loc["website"]},
        "invoiceNumber": str(number), "currency": currency,
        "contactDetails": {"id": contact["id"], "phoneNo": contact["phone"], "email": contact["email"],
                           "customFields": [], "name": name, "address": {"countryCode": loc["country"]}},
        "issueDate": day_of(created), "dueDate": day_of(created + 30 * DAY_MS), "discount": {"type": "percentage",
                                                                                            "value": 0},
        "invoiceItems": items, "total": total, "title": "INVOICE", "amountDue": round(total - paid, 2),
        "createdAt": data.iso_ms(created), "updatedAt": data.iso_ms(changed),
        "totalSummary": {"subTotal": total, "discount": 0, "tax": 0},
    }


def _payer(seed: Seeder) -> Record:
    contact = seed.contact()
    name = " ".join(p for p in (contact["firstName"], contact["lastName"]) if p) or "Customer"
    return {"contactId": contact["id"], "contactName": name, "contactEmail": contact["email"]}


def make_order(seed: Seeder, prices: list[Record]) -> tuple[Record, list[Record]]:
    """`OrderResponseSchema` (the list's item) and the order's items (only its by-id answer has them)."""
    rng = seed.rng
    created = seed.when()
    chosen = data.sample(rng, prices, 1 + data.below(rng, 2))
    items = [{"name": p["name"], "qty": 1, "product": {"_id": p["product"]},
              "price": {"_id": p["_id"], "name": p["name"], "type": p["type"], "currency": p["currency"],
                        "amount": p["amount"]}} for p in chosen]
    amount = round(sum(p["amount"] for p in chosen), 2)
    roll = rng.random()
    status = "completed" if roll < 0.8 else "pending" if roll < 0.9 else "cancelled" if roll < 0.95 else "refunded"
    store = rng.random() < 0.5
    order = {"_id": object_id(rng, created), "altId": seed.loc.id, "altType": "location", **_payer(seed),
             "currency": seed.currency, "amount": amount, "subtotal": amount, "discount": 0, "status": status,
             "liveMode": True, "totalProducts": len(items), "sourceType": "website" if store else "funnel",
             "sourceName": "Online Store" if store else "Booking Funnel", "sourceId": data.make_id(rng),
             "sourceMeta": {"domain": seed.loc.record["domain"], "pageId": data.make_id(rng)},
             "createdAt": data.iso_ms(created),
             "updatedAt": data.iso_ms(created + (data.below(rng, min(20 * DAY_MS, seed.end - created))
                                                 if status == "refunded" else 4_000)),
             "sourceSubType": "store" if store else "one_step_order_form",
             "fulfillmentStatus": "fulfilled" if status == "completed" and rng.random() < 0.6 else "unfulfilled",
             "onetimeProducts": sum(p["type"] == "one_time" for p in chosen),
             "recurringProducts": sum(p["type"] == "recurring" for p in chosen)}
    return order, items


def make_subscription(seed: Seeder, price: Record) -> Record:
    rng = seed.rng
    created = seed.when()
    canceled = rng.random() < 0.3
    changed = created + data.below(rng, seed.end - created) if canceled else created + 3_000
    status = "canceled" if canceled else "active"
    return {"_id": object_id(rng, created), "altId": seed.loc.id, "altType": "location", **_payer(seed),
            "currency": price["currency"], "amount": price["amount"], "status": status, "liveMode": True,
            "entitySourceType": "funnel", "entitySourceName": "Membership Funnel", "entitySourceId": data.make_id(rng),
            "entitySourceMeta": {"domain": seed.loc.record["domain"]},
            "subscriptionId": "sub_" + data.make_id(rng), "subscriptionSnapshot": {"status": status},
            "paymentProviderType": "stripe", "paymentProviderConnectedAccount": "acct_" + data.make_id(rng)[:16],
            "ipAddress": f"203.0.113.{1 + data.below(rng, 254)}", "createdAt": data.iso_ms(created),
            "updatedAt": data.iso_ms(changed)}


def make_transaction(seed: Seeder, entity: Record, entity_type: str, created: int) -> Record:
    """`TxnResponseSchema`: one charge of an order or a subscription, with the entity's payer.
    A refunded order's charge is refunded in full; a pending order's charge failed."""
    rng = seed.rng
    status = {"refunded": "refunded", "pending": "failed"}.get(entity["status"], "succeeded")
    charge = "ch_" + data.make_id(rng)
    txn = {"_id": object_id(rng, created), "altId": seed.loc.id, "altType": "location",
           "contactId": entity["contactId"], "contactName": entity["contactName"],
           "contactEmail": entity["contactEmail"], "currency": entity["currency"], "amount": entity["amount"],
           "status": status, "liveMode": True, "entityType": entity_type, "entityId": entity["_id"],
           "entitySourceType": entity.get("sourceType", entity.get("entitySourceType")),
           "entitySourceName": entity.get("sourceName", entity.get("entitySourceName")),
           "entitySourceId": entity.get("sourceId", entity.get("entitySourceId")), "entitySourceMeta": {},
           "chargeId": charge, "chargeSnapshot": {"id": charge, "object": "charge", "status": status},
           "paymentProviderType": "stripe", "paymentProviderConnectedAccount": "acct_" + data.make_id(rng)[:16],
           "ipAddress": f"198.51.100.{1 + data.below(rng, 254)}", "createdAt": data.iso_ms(created),
           "updatedAt": data.iso_ms(max(created, data.ms_of(entity["updatedAt"])) if status == "refunded" else created),
           "amountRefunded": entity["amount"] if status == "refunded" else 0,
           "paymentMethod": {"card": {"brand": data.pick(rng, CARDS), "last4": f"{data.below(rng, 10_000):04d}"}},
           "fulfilledAt": data.iso_ms(created)}
    if entity_type == "subscription":
        txn["subscriptionId"] = entity["subscriptionId"]
        txn["entitySourceSubType"] = "subscription"
    else:
        txn["entitySourceSubType"] = entity["sourceSubType"]
    return txn


def iter_family(loc: Location, family: str) -> list[Any]:
    if family not in FAMILIES:
        raise KeyError(f"unknown family {family!r}")
    return list(loc.extra[family].values())
