"""Forms, surveys, invoices, payments and products: paging, the submissions' last-month default,
limits, by-id answers, scopes, and changes that no list filter can see."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from highlevel_sync.sandbox import Sandbox, SandboxConfig
from highlevel_sync.sandbox.routes_revenue import same_day_last_month
from highlevel_sync.sandbox.world import World

from .conftest import Api

EXAMPLES = Path(__file__).resolve().parents[3] / "shared" / "highlevel-api" / "webhook-examples"
NOT_AUTHORIZED = {"statusCode": 401, "message": "The token is not authorized for this scope.", "error": "Unauthorized"}
FAMILIES = ("forms", "form_submissions", "surveys", "survey_submissions", "invoices", "orders", "transactions",
            "subscriptions", "products", "product_prices")


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    """Read-only: a big location (250 invoices, 500 form submissions...) and a small one."""
    config = SandboxConfig(contacts_per_location=(300, 40), revenue_per_location=(250, 3), rate_limit_max=None,
                           object_records_per_location=())
    with Sandbox(config) as sandbox:
        yield sandbox


def key(row: dict[str, Any]) -> str:
    return str(row["id"] if "id" in row else row["_id"])


def walk_offset(api: Api, path: str, rows_key: str, limit: int, skip_name: str = "offset",
                **params: Any) -> tuple[list[dict[str, Any]], int]:
    """Every row, `limit` at a time, until a short page; returns (rows, requests)."""
    rows: list[dict[str, Any]] = []
    requests = 0
    while True:
        response = api.get(path, limit=limit, **{skip_name: len(rows)}, **params)
        requests += 1
        assert response.status_code == 200, response.text
        page = response.json()[rows_key]
        rows += page
        if len(page) < limit:
            return rows, requests


def walk_pages(api: Api, path: str, **params: Any) -> tuple[list[dict[str, Any]], int]:
    """Every submission, following `meta.nextPage`; returns (rows, requests)."""
    rows: list[dict[str, Any]] = []
    page: int | None = 1
    requests = 0
    while page is not None:
        response = api.get(path, page=page, limit=100, **params)
        requests += 1
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["meta"]["currentPage"] == page and body["meta"]["total"] >= len(rows) + len(body["submissions"])
        rows += body["submissions"]
        page = body["meta"]["nextPage"]
    return rows, requests


def read_everything(sb: Sandbox, loc: str) -> dict[str, tuple[list[dict[str, Any]], int]]:
    api = Api(sb, loc)
    alt = {"altId": loc, "altType": "location"}
    read = {
        "forms": walk_offset(api, "/forms/", "forms", 50, "skip", locationId=loc),
        "surveys": walk_offset(api, "/surveys/", "surveys", 50, "skip", locationId=loc),
        "form_submissions": walk_pages(api, "/forms/submissions", locationId=loc, startAt="2000-01-01"),
        "survey_submissions": walk_pages(api, "/surveys/submissions", locationId=loc, startAt="2000-01-01"),
        "invoices": walk_offset(api, "/invoices/", "invoices", 100, **alt),
        "orders": walk_offset(api, "/payments/orders", "data", 100, altId=loc),
        "transactions": walk_offset(api, "/payments/transactions", "data", 100, **alt),
        "subscriptions": walk_offset(api, "/payments/subscriptions", "data", 100, **alt),
        "products": walk_offset(api, "/products/", "products", 100, locationId=loc),
    }
    prices: list[dict[str, Any]] = []
    for product in read["products"][0]:
        prices += walk_offset(api, f"/products/{product['_id']}/price", "prices", 100, locationId=loc)[0]
    read["product_prices"] = (prices, len(read["products"][0]))
    return read


def test_every_list_pages_to_exactly_the_truth(sb: Sandbox) -> None:
    big, small = sb.location_ids
    read = read_everything(sb, big)
    for family in FAMILIES:
        rows, _ = read[family]
        assert sorted(rows, key=key) == sb.truth(big, family), family
        assert len({key(r) for r in rows}) == len(rows), family
    pages = {family: requests for family, (_, requests) in read.items()}
    assert pages["forms"] == pages["surveys"] == 2  # 62 each, 50 a page
    assert pages["form_submissions"] == 5 and pages["survey_submissions"] == 3
    assert pages["invoices"] == pages["orders"] == 3 and pages["transactions"] >= 5 and pages["subscriptions"] == 2
    few = read_everything(sb, small)
    for family in FAMILIES:
        assert sorted(few[family][0], key=key) == sb.truth(small, family), family
        assert 1 <= len(few[family][0]) <= 12, family


def test_shapes_follow_the_specs(sb: Sandbox) -> None:
    loc = sb.location_ids[0]
    submission = sb.truth(loc, "form_submissions")[0]
    assert set(submission) == {"id", "contactId", "createdAt", "formId", "name", "email", "others"}
    assert submission["createdAt"].endswith(".000Z") and "eventData" in submission["others"]
    assert {s["formId"] for s in sb.truth(loc, "form_submissions")} <= {f["id"] for f in sb.truth(loc, "forms")}
    invoices = sb.truth(loc, "invoices")
    assert {"_id", "status", "total", "amountPaid", "amountDue", "currency", "contactDetails", "issueDate", "dueDate",
            "invoiceItems", "createdAt", "updatedAt", "altId", "altType"} <= set(invoices[0])
    assert all(len(i["issueDate"]) == 10 and i["invoiceItems"] and "_id" in i["invoiceItems"][0] for i in invoices)
    assert {"USD", "EUR"} <= {i["currency"] for i in invoices}
    for invoice in invoices:
        assert invoice["amountPaid"] + invoice["amountDue"] == pytest.approx(invoice["total"])
    issued = sorted(i["issueDate"] for i in invoices)
    assert issued[0] < (datetime.now(UTC) - timedelta(days=700)).date().isoformat()
    transactions = sb.truth(loc, "transactions")
    assert {"amountRefunded", "entityId", "entityType", "status"} <= set(transactions[0])
    subscription_ids = {s["subscriptionId"] for s in sb.truth(loc, "subscriptions")}
    charges = [t for t in transactions if t["entityType"] == "subscription"]
    assert charges and {t["subscriptionId"] for t in charges} <= subscription_ids
    refunded = [t for t in transactions if t["status"] == "refunded"]
    assert refunded and all(t["amountRefunded"] == t["amount"] for t in refunded)
    product_ids = {p["_id"] for p in sb.truth(loc, "products")}
    assert {p["product"] for p in sb.truth(loc, "product_prices")} == product_ids


def test_submissions_default_to_the_last_month(sb: Sandbox) -> None:
    loc = sb.location_ids[0]
    api = Api(sb, loc)
    since = same_day_last_month(datetime.now(UTC).date()).isoformat() + "T00:00:00.000Z"
    for kind in ("form", "survey"):
        truth = sb.truth(loc, f"{kind}_submissions")
        recent = sorted((s for s in truth if s["createdAt"] >= since), key=key)
        rows, _ = walk_pages(api, f"/{kind}s/submissions", locationId=loc)
        assert sorted(rows, key=key) == recent and 0 < len(recent) < len(truth) - 100
        assert [r["createdAt"] for r in rows] == sorted((r["createdAt"] for r in rows), reverse=True)
    one_day = sb.truth(loc, "form_submissions")[7]["createdAt"][:10]
    body = api.get("/forms/submissions", locationId=loc, startAt=one_day, endAt=one_day, limit=100).json()
    assert body["submissions"] and {s["createdAt"][:10] for s in body["submissions"]} == {one_day}
    assert body["meta"] == {"total": len(body["submissions"]), "currentPage": 1, "nextPage": None, "prevPage": None}
    form_id = sb.truth(loc, "forms")[0]["id"]
    only = walk_pages(api, "/forms/submissions", locationId=loc, startAt="2000-01-01", formId=form_id)[0]
    assert only and {s["formId"] for s in only} == {form_id}
    assert api.get("/forms/submissions", locationId=loc, startAt="01/02/2025").status_code == 422


@pytest.mark.parametrize(("path", "params", "message"), [
    ("/forms/", {"limit": 51}, "limit must not be greater than 50"),
    ("/surveys/", {"limit": 51}, "limit must not be greater than 50"),
    ("/forms/submissions", {"limit": 101}, "limit must not be greater than 100"),
    ("/surveys/submissions", {"limit": 101}, "limit must not be greater than 100"),
    ("/invoices/", {"altType": "location", "limit": 101, "offset": 0}, "limit must not be greater than 100"),
    ("/invoices/", {"altType": "location", "offset": 0}, "limit should not be empty"),
    ("/invoices/", {"altType": "location", "limit": 10}, "offset should not be empty"),
    ("/invoices/", {"limit": 10, "offset": 0}, "altType must be one of the following values: location"),
    ("/payments/orders", {"limit": 101}, "limit must not be greater than 100"),
    ("/payments/transactions", {"altType": "location", "limit": 101}, "limit must not be greater than 100"),
    ("/payments/transactions", {}, "altType must be one of the following values: location"),
    ("/payments/subscriptions", {"altType": "location", "limit": 101}, "limit must not be greater than 100"),
    ("/products/", {"limit": 101}, "limit must not be greater than 100"),
])
def test_over_limit_and_missing_params_answer_422(sb: Sandbox, path: str, params: dict[str, Any],
                                                  message: str) -> None:
    loc = sb.location_ids[0]
    where = {"altId": loc} if path.startswith(("/invoices", "/payments")) else {"locationId": loc}
    response = Api(sb, loc).get(path, **where, **params)
    assert response.status_code == 422
    assert response.json() == {"statusCode": 422, "message": [message], "error": "Unprocessable Entity"}


def test_limits_at_the_maximum_are_served(sb: Sandbox) -> None:
    loc = sb.location_ids[0]
    api = Api(sb, loc)
    assert len(api.get("/forms/", locationId=loc, limit=50).json()["forms"]) == 50
    page = api.get("/forms/submissions", locationId=loc, limit=100, startAt="2000-01-01").json()
    assert len(page["submissions"]) == 100 and page["meta"]["nextPage"] == 2
    default = api.get("/payments/orders", altId=loc).json()
    assert len(default["data"]) == 10 and default["totalCount"] == 250
    products = api.get("/products/", locationId=loc).json()
    assert len(products["products"]) == 10 and products["total"] == [{"total": 25}]


def strip(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "traceId"}


def test_by_id_endpoints(sb: Sandbox) -> None:
    loc = sb.location_ids[0]
    api = Api(sb, loc)
    alt = {"altId": loc, "altType": "location"}
    invoice = sb.truth(loc, "invoices")[3]
    assert strip(api.get(f"/invoices/{invoice['_id']}", **alt).json()) == invoice
    assert api.get(f"/invoices/{invoice['_id']}", altId=loc).status_code == 422
    product = sb.truth(loc, "products")[2]
    assert strip(api.get(f"/products/{product['_id']}", locationId=loc).json()) == product
    order = next(o for o in sb.truth(loc, "orders") if o["sourceType"] == "website")
    got = api.get(f"/payments/orders/{order['_id']}", altId=loc).json()
    for name in ("_id", "altId", "status", "amount", "currency", "contactId", "createdAt", "updatedAt"):
        assert got[name] == order[name], name
    assert got["source"]["type"] == "website" and got["amountSummary"]["subtotal"] == order["amount"]
    assert len(got["items"]) == order["totalProducts"] and "contactName" not in got
    assert got["contactSnapshot"]["email"] == order["contactEmail"]
    for family, path in (("transactions", "/payments/transactions/"), ("subscriptions", "/payments/subscriptions/")):
        record = sb.truth(loc, family)[5]
        got = api.get(path + record["_id"], **alt).json()
        for name in ("_id", "status", "amount", "currency", "contactId", "createdAt", "updatedAt"):
            assert got[name] == record[name], (family, name)
        assert got["entitySource"]["type"] == record["entitySourceType"]
        assert api.get(path + record["_id"], altId=loc).status_code == 422
    for path, params in (("/invoices/000000000000000000000000", alt), ("/payments/orders/nope", {"altId": loc}),
                         ("/payments/transactions/nope", alt), ("/payments/subscriptions/nope", alt),
                         ("/products/nope", {"locationId": loc})):
        missing = api.get(path, **params)
        assert missing.status_code == 404 and missing.json()["statusCode"] == 404, path
    other = sb.location_ids[1]
    assert api.get(f"/invoices/{invoice['_id']}", altId=other, altType="location").status_code == 403


def test_version_header_is_enforced(sb: Sandbox) -> None:
    loc = sb.location_ids[0]
    for version, message in ((None, "Version header was not found"), ("2021-04-15", "not supported")):
        api = Api(sb, loc, version=version)
        for path, params in (("/forms/", {"locationId": loc}), ("/payments/orders", {"altId": loc}),
                             ("/products/", {"locationId": loc})):
            response = api.get(path, **params)
            assert response.status_code == 400 and message in response.json()["message"], path


class Receiver:
    """A webhook receiver on loopback that checks each delivery's Ed25519 signature."""

    def __init__(self, sb: Sandbox) -> None:
        loaded = load_pem_public_key(sb.webhooks.public_pem().encode())
        assert isinstance(loaded, Ed25519PublicKey)
        public: Ed25519PublicKey = loaded
        bodies: list[dict[str, Any]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                public.verify(base64.b64decode(self.headers["X-GHL-Signature"]), raw)
                bodies.append(json.loads(raw))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.bodies = bodies
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"


def example_keys(name: str) -> set[str]:
    return set(json.loads((EXAMPLES / f"{name}.json").read_text()))


@pytest.fixture
def fresh(highlevel_sandbox_factory: Any) -> Sandbox:
    sandbox: Sandbox = highlevel_sandbox_factory(contacts_per_location=(300, 40), revenue_per_location=(60, 3),
                                                 rate_limit_max=None, object_records_per_location=())
    return sandbox


def test_a_paid_invoice_shows_its_new_status_via_list_and_by_id(fresh: Sandbox) -> None:
    loc = fresh.location_ids[0]
    api, hook = Api(fresh, loc), Receiver(fresh)
    alt = {"altId": loc, "altType": "location"}
    for days_ago, tolerance in ((7, 5), (200, 50)):
        target = (datetime.now(UTC) - timedelta(days=days_ago)).date()
        before = {i["_id"]: i for i in fresh.truth(loc, "invoices")}
        invoice_id = fresh.pay_invoice(loc, days_ago, notify=hook.url)
        old, new = before[invoice_id], api.get(f"/invoices/{invoice_id}", **alt).json()
        assert old["status"] not in ("paid", "void") and new["status"] == "paid"
        assert new["amountPaid"] == new["total"] == old["total"] and new["amountDue"] == 0
        assert new["updatedAt"] > old["updatedAt"] and new["issueDate"] == old["issueDate"]
        assert abs((datetime.fromisoformat(new["issueDate"]).date() - target).days) <= tolerance
        listed = walk_offset(api, "/invoices/", "invoices", 100, startAt=new["issueDate"], endAt=new["issueDate"],
                             **alt)[0]
        assert strip(new) in listed and [i for i in listed if i["_id"] == invoice_id] == [strip(new)]
        assert strip(new) in fresh.truth(loc, "invoices")
        delivered = hook.bodies[-1]
        assert delivered["type"] == "InvoicePaid" and delivered["locationId"] == loc
        assert delivered["_id"] == invoice_id and delivered["status"] == "paid"
        assert example_keys("InvoicePaid") <= set(delivered)
    paid = walk_offset(api, "/invoices/", "invoices", 100, status="paid", **alt)[0]
    assert {i["status"] for i in paid} == {"paid"} and len(paid) == sum(
        i["status"] == "paid" for i in fresh.truth(loc, "invoices"))


def test_changes_show_in_reads_and_send_example_shaped_webhooks(fresh: Sandbox) -> None:
    loc = fresh.location_ids[0]
    api, hook = Api(fresh, loc), Receiver(fresh)
    alt = {"altId": loc, "altType": "location"}
    order_id = fresh.refund_order(loc, notify=hook.url, days_ago=300)
    assert api.get(f"/payments/orders/{order_id}", altId=loc).json()["status"] == "refunded"
    assert hook.bodies[-1]["type"] == "OrderStatusUpdate" and example_keys("OrderStatusUpdate") <= set(hook.bodies[-1])
    txn_id = fresh.refund_transaction(loc)
    txn = next(t for t in fresh.truth(loc, "transactions") if t["_id"] == txn_id)
    assert txn["status"] == "refunded" and txn["amountRefunded"] == txn["amount"]
    assert txn in walk_offset(api, "/payments/transactions", "data", 100, **alt)[0]
    sub_id = fresh.cancel_subscription(loc)
    sub = api.get(f"/payments/subscriptions/{sub_id}", **alt).json()
    assert sub["status"] == "canceled" and sub["canceledAt"] == sub["updatedAt"]
    product_id, price_id = fresh.change_price(loc, notify=hook.url)
    price = next(p for p in api.get(f"/products/{product_id}/price", locationId=loc).json()["prices"]
                 if p["_id"] == price_id)
    assert hook.bodies[-1]["type"] == "PriceUpdate" and hook.bodies[-1]["amount"] == price["amount"]
    optional = {"recurring", "compareAtPrice", "availableQuantity"}  # one-time prices without stock have none
    assert example_keys("PriceUpdate") - optional <= set(hook.bodies[-1])
    deleted = fresh.delete_product(loc, notify=hook.url)
    assert api.get(f"/products/{deleted}", locationId=loc).status_code == 404
    assert strip(api.get(f"/products/{deleted}/price", locationId=loc).json()) == {"prices": [], "total": 0}
    assert deleted not in {p["_id"] for p in walk_offset(api, "/products/", "products", 100, locationId=loc)[0]}
    assert hook.bodies[-1]["type"] == "ProductDelete" and example_keys("ProductDelete") <= set(hook.bodies[-1])
    added = fresh.add_submissions(loc, 3, kind="survey")
    recent = walk_pages(api, "/surveys/submissions", locationId=loc)[0]
    assert set(added) <= {s["id"] for s in recent} and recent[0]["id"] in added


def test_revoked_scope_answers_401_with_highlevels_text(fresh: Sandbox) -> None:
    loc, other = fresh.location_ids
    refresh = fresh.grant("Location", loc)
    fresh.revoke_scopes(loc, ["invoices.readonly", "contacts.readonly"])
    token = httpx.post(f"{fresh.base_url}/oauth/token", data={
        "client_id": fresh.client_id, "client_secret": fresh.client_secret, "grant_type": "refresh_token",
        "refresh_token": refresh}).json()["access_token"]
    alt = {"altId": loc, "altType": "location", "limit": 10, "offset": 0}
    for api in (Api(fresh, loc), Api(fresh, loc, token=token)):
        for path, params in (("/invoices/", alt), (f"/invoices/{fresh.truth(loc, 'invoices')[0]['_id']}", alt),
                             ("/contacts/", {"locationId": loc})):
            response = api.get(path, **params)
            assert response.status_code == 401 and response.json() == NOT_AUTHORIZED, path
        assert api.get("/payments/orders", altId=loc).status_code == 200
        assert api.get("/forms/", locationId=loc).status_code == 200
    assert Api(fresh, other).get("/invoices/", altId=other, altType="location", limit=10, offset=0).status_code == 200
    control = httpx.post(f"{fresh.base_url}/__sandbox__/scopes",
                         json={"locationId": other, "revoke": ["forms.readonly"]})
    assert control.status_code == 200
    assert Api(fresh, other).get("/forms/", locationId=other).json() == NOT_AUTHORIZED
    assert Api(fresh, other).get("/surveys/", locationId=other).status_code == 200


def test_control_api_mirrors_the_revenue_changes(fresh: Sandbox) -> None:
    loc = fresh.location_ids[0]
    answer = httpx.post(f"{fresh.base_url}/__sandbox__/revenue",
                        json={"locationId": loc, "action": "pay_invoice", "days_ago": 7})
    assert answer.status_code == 200
    invoice_id = answer.json()["result"]
    truth = httpx.get(f"{fresh.base_url}/__sandbox__/truth/invoices", params={"locationId": loc}).json()["invoices"]
    assert next(i for i in truth if i["_id"] == invoice_id)["status"] == "paid"
    bad = httpx.post(f"{fresh.base_url}/__sandbox__/revenue", json={"locationId": loc, "action": "drop_tables"})
    assert bad.status_code == 400


def test_seeding_is_deterministic_and_leaves_the_other_families_alone() -> None:
    config = SandboxConfig(contacts_per_location=(200, 30), object_records_per_location=())
    one, two = World(config), World(config)
    other = World(SandboxConfig(contacts_per_location=(200, 30), revenue_per_location=(40, 9),
                                object_records_per_location=()))
    for loc in one.locations:
        for family in FAMILIES:
            assert one.locations[loc].extra[family] == two.locations[loc].extra[family], family
        assert one.locations[loc].contacts.truth == other.locations[loc].contacts.truth
        assert one.locations[loc].extra["opportunities"].truth == other.locations[loc].extra["opportunities"].truth
