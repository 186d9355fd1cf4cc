"""Revenue and lead capture end to end: forms, surveys, submissions, invoices, payments, products.

Each table equals the sandbox's truth (ids exactly once, values, UTC timestamps); changes reach
the warehouse the way the README says: recent payment changes on the next plain run, old ones and
deletions in the sweep; a token without a scope skips that table and nothing else.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from sources.highlevel.endpoints import LISTS
from sources.highlevel.normalize import to_utc

from .conftest import Harness

REVENUE = list(LISTS)
# per table: (API field, column) pairs checked value by value against the truth
CHECKED: dict[str, list[tuple[str, str]]] = {
    "forms": [("name", "name")],
    "form_submissions": [("formId", "form_id"), ("contactId", "contact_id"), ("name", "name"), ("email", "email"),
                         ("createdAt", "created_at")],
    "surveys": [("name", "name")],
    "survey_submissions": [("surveyId", "survey_id"), ("contactId", "contact_id"), ("createdAt", "created_at")],
    "invoices": [("status", "status"), ("total", "total"), ("amountPaid", "amount_paid"), ("amountDue", "amount_due"),
                 ("currency", "currency"), ("issueDate", "issue_date"), ("dueDate", "due_date"),
                 ("updatedAt", "updated_at")],
    "orders": [("status", "status"), ("amount", "amount"), ("currency", "currency"), ("contactId", "contact_id"),
               ("createdAt", "created_at"), ("updatedAt", "updated_at")],
    "transactions": [("status", "status"), ("amount", "amount"), ("amountRefunded", "amount_refunded"),
                     ("contactId", "contact_id"), ("entityId", "entity_id"), ("entityType", "entity_type"),
                     ("createdAt", "created_at")],
    "subscriptions": [("status", "status"), ("amount", "amount"), ("contactId", "contact_id"),
                      ("createdAt", "created_at")],
    "products": [("name", "name"), ("updatedAt", "updated_at")],
    "product_prices": [("product", "product_id"), ("amount", "amount"), ("currency", "currency"), ("type", "type")],
}
TIMESTAMPS = {"created_at", "updated_at", "issue_date", "due_date"}


def expected(value: Any, column: str) -> Any:
    if column in TIMESTAMPS:
        return to_utc(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def assert_table_matches_truth(h: Harness, table: str, locations: list[str]) -> None:
    checked = CHECKED[table]
    columns = ", ".join(["id", "location_id", *(column for _, column in checked)])
    rows = h.query(f"select {columns} from highlevel.{table}")
    ids = Counter(row[0] for row in rows)
    assert all(n == 1 for n in ids.values()), f"{table}: duplicates {[i for i, n in ids.items() if n > 1][:3]}"
    loaded = {row[0]: row for row in rows}
    truth = {str(r.get("_id") or r["id"]): (loc, r) for loc in locations for r in h.sb.truth(loc, table)}
    assert set(loaded) == set(truth), f"{table}: {len(set(truth) - set(loaded))} missing, " \
                                      f"{len(set(loaded) - set(truth))} unexpected"
    for record_id, (location_id, record) in truth.items():
        row = loaded[record_id]
        assert row[1] == location_id
        for i, (field, column) in enumerate(checked, start=2):
            value = row[i]
            if isinstance(value, datetime):
                value = value.astimezone(UTC)
            assert value == expected(record.get(field), column), f"{table} {record_id} {column}"


def test_first_run_loads_every_record_once_with_values_and_utc_times(harness: Harness) -> None:
    h = harness
    locations = h.sb.location_ids
    result = h.run(locations=locations, resources=REVENUE)
    assert result.ok, [r.error for r in result.locations]
    for table in CHECKED:
        assert_table_matches_truth(h, table, locations)
    # the big location's lists need several pages: paging is exercised, not only one answer
    big = h.sb.location_ids[0]
    assert len(h.sb.truth(big, "form_submissions")) > 100 and len(h.sb.truth(big, "invoices")) > 100
    # submissions older than a month are there: the API's default window would have dropped them
    month_ago = datetime.now(UTC) - timedelta(days=31)
    old = [s for s in h.sb.truth(big, "form_submissions") if to_utc(s["createdAt"]) < month_ago]
    assert len(old) > 100
    # invoice line items are a child table of their invoice
    items = h.query("select count(*) from highlevel.invoices__invoice_items")[0][0]
    assert items == sum(len(i["invoiceItems"]) for loc in locations for i in h.sb.truth(loc, "invoices"))
    (column_type,) = h.query("select data_type from information_schema.columns where table_name = 'invoices' "
                             "and column_name = 'issue_date'")[0]
    assert column_type.startswith("TIMESTAMP")


def test_a_no_change_run_costs_at_most_two_requests_per_list_and_loads_nothing(harness: Harness) -> None:
    h = harness
    small = h.sb.location_ids[1]  # every list fits one page there
    assert h.run(locations=[small], resources=REVENUE).ok
    assert h.run(locations=[small], resources=REVENUE).ok  # the recent windows' digests settle
    h.sb.clear_requests()
    result = h.run(locations=[small], resources=REVENUE)
    assert result.ok
    by_path = Counter(r["path"] for r in h.sb.requests())
    assert all(n <= 2 for n in by_path.values()), by_path
    assert not any("/price" in path for path in by_path), "prices are read only when products changed"
    assert sum(result.locations[0].rows.values()) == 0


def test_changes_reach_the_next_run_and_the_sweep(harness: Harness) -> None:
    h = harness
    loc = h.sb.location_ids[0]
    assert h.run(resources=REVENUE).ok
    new = h.sb.add_submissions(loc, 5)
    recent = h.sb.pay_invoice(loc, days_ago=7)
    old = h.sb.pay_invoice(loc, days_ago=200)  # no webhook: only the sweep can see it
    refunded = h.sb.refund_order(loc, days_ago=5)
    gone = h.sb.delete_product(loc)
    assert h.run(resources=REVENUE).ok
    assert set(new) <= {r[0] for r in h.query("select id from highlevel.form_submissions")}
    status = dict(h.query("select id, status from highlevel.invoices where id in (?, ?)", recent, old))
    assert status[recent] == "paid" and status[old] != "paid"
    assert h.query("select status from highlevel.orders where id = ?", refunded) == [("refunded",)]
    assert h.query("select count(*) from highlevel.products where id = ?", gone) == [(0,)]
    assert h.query("select detected_by from highlevel.deletions where resource = 'products' and id = ?",
                   gone) == [("sweep",)]

    assert h.run(resources=REVENUE, reconcile=True).ok  # the safety net: everything re-read
    assert h.query("select status from highlevel.invoices where id = ?", old) == [("paid",)]
    for table in CHECKED:
        assert_table_matches_truth(h, table, [loc])


def test_a_due_scheduled_sweep_lands_old_changes_without_reconcile(harness: Harness) -> None:
    h = harness
    loc = h.sb.location_ids[0]
    assert h.run(resources=REVENUE, config={"sweep_every_hours": 24}).ok  # the first run counts as a sweep
    old = h.sb.pay_invoice(loc, days_ago=200)
    _, price = h.sb.change_price(loc)
    assert h.run(resources=REVENUE, config={"sweep_every_hours": 24}).ok  # not due yet
    assert h.query("select status from highlevel.invoices where id = ?", old) != [("paid",)]
    # a period shorter than the time between runs: every run sweeps
    assert h.run(resources=REVENUE, config={"sweep_every_hours": 0.0001}).ok
    assert h.query("select status from highlevel.invoices where id = ?", old) == [("paid",)]
    truth_amount = next(p["amount"] for p in h.sb.truth(loc, "product_prices") if p["_id"] == price)
    assert h.query("select amount from highlevel.product_prices where id = ?", price) == [(truth_amount,)]


def test_a_token_without_a_scope_skips_that_table_with_one_named_warning(harness: Harness) -> None:
    h = harness
    loc = h.sb.location_ids[1]
    h.sb.revoke_scopes(loc, ["invoices.readonly"])
    result = h.run(locations=[loc], resources=None)  # the default resource set
    assert result.ok, result.locations[0].error
    warnings = [w for w in result.locations[0].warnings if "invoices" in w]
    assert warnings == ["invoices skipped: the token lacks the invoices.readonly scope (re-authorise the app "
                        "with it to sync this table)"]
    assert h.query("select count(*) from highlevel.orders")[0][0] == len(h.sb.truth(loc, "orders"))
    assert h.query("select count(*) from information_schema.tables where table_name = 'invoices'") == [(0,)]
    # asked for by name, it fails as any resource does
    named = h.run(locations=[loc], resources=["invoices", "orders"])
    assert not named.ok
    assert "invoices" in named.locations[0].resource_errors
