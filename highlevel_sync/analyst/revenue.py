"""`contact_revenue`: what each contact paid, per currency, from invoices and transactions.

Invoices say what was billed and paid (`amount_paid`, partial payments included); transactions say
what was collected and given back (`amount_refunded`). A refunded transaction keeps its amount and
changes its status, so money collected is every transaction that went through (succeeded or later
refunded), less what was refunded. Amounts stay in the API's units; currencies are never mixed.
Built only from the tables the dataset has (a token without the invoices scope still gets the
transactions side).
"""

from __future__ import annotations

from .catalog import Catalog
from .views import View

COLLECTED = "('succeeded', 'refunded', 'partially_refunded')"


def _invoices(catalog: Catalog) -> str:
    col = lambda name, sql_type: catalog.column("i", "invoices", name, sql_type)  # noqa: E731
    return (f"SELECT {col('contact_details__id', 'VARCHAR')} AS contact_id, i.location_id, "
            f"{col('currency', 'VARCHAR')} AS currency, "
            f"SUM(COALESCE({col('amount_paid', 'DOUBLE PRECISION')}, 0)) AS invoices_paid_total, "
            f"COUNT(CASE WHEN {col('status', 'VARCHAR')} = 'paid' THEN 1 END) AS invoices_paid, "
            f"SUM(COALESCE({col('amount_due', 'DOUBLE PRECISION')}, 0)) AS invoices_due_total "
            f"FROM {catalog.table('invoices')} AS i GROUP BY 1, 2, 3")


def _transactions(catalog: Catalog) -> str:
    col = lambda name, sql_type: catalog.column("t", "transactions", name, sql_type)  # noqa: E731
    went_through = f"{col('status', 'VARCHAR')} IN {COLLECTED}"
    return (f"SELECT {col('contact_id', 'VARCHAR')} AS contact_id, t.location_id, "
            f"{col('currency', 'VARCHAR')} AS currency, "
            f"SUM(CASE WHEN {went_through} THEN COALESCE({col('amount', 'DOUBLE PRECISION')}, 0) ELSE 0 END) "
            f"- SUM(COALESCE({col('amount_refunded', 'DOUBLE PRECISION')}, 0)) AS net_collected, "
            f"SUM(COALESCE({col('amount_refunded', 'DOUBLE PRECISION')}, 0)) AS refunded, "
            f"COUNT(CASE WHEN {went_through} THEN 1 END) AS payments, "
            f"MIN(CASE WHEN {went_through} THEN {col('created_at', 'TIMESTAMP WITH TIME ZONE')} END) "
            "AS first_payment_at, "
            f"MAX(CASE WHEN {went_through} THEN {col('created_at', 'TIMESTAMP WITH TIME ZONE')} END) "
            "AS last_payment_at "
            f"FROM {catalog.table('transactions')} AS t GROUP BY 1, 2, 3")


EMPTY_INVOICES = ("SELECT CAST(NULL AS VARCHAR) AS contact_id, CAST(NULL AS VARCHAR) AS location_id, "
                  "CAST(NULL AS VARCHAR) AS currency, CAST(NULL AS DOUBLE PRECISION) AS invoices_paid_total, "
                  "CAST(NULL AS BIGINT) AS invoices_paid, CAST(NULL AS DOUBLE PRECISION) AS invoices_due_total "
                  "WHERE 1 = 0")
EMPTY_TRANSACTIONS = ("SELECT CAST(NULL AS VARCHAR) AS contact_id, CAST(NULL AS VARCHAR) AS location_id, "
                      "CAST(NULL AS VARCHAR) AS currency, CAST(NULL AS DOUBLE PRECISION) AS net_collected, "
                      "CAST(NULL AS DOUBLE PRECISION) AS refunded, CAST(NULL AS BIGINT) AS payments, "
                      "CAST(NULL AS TIMESTAMP WITH TIME ZONE) AS first_payment_at, "
                      "CAST(NULL AS TIMESTAMP WITH TIME ZONE) AS last_payment_at WHERE 1 = 0")


def revenue_views(catalog: Catalog) -> list[View]:
    has_invoices, has_transactions = catalog.has("invoices"), catalog.has("transactions")
    if not (has_invoices or has_transactions):
        return []
    invoices = _invoices(catalog) if has_invoices else EMPTY_INVOICES
    transactions = _transactions(catalog) if has_transactions else EMPTY_TRANSACTIONS
    sql = ("SELECT COALESCE(i.contact_id, t.contact_id) AS contact_id, COALESCE(i.location_id, t.location_id) "
           "AS location_id, COALESCE(i.currency, t.currency) AS currency, "
           "COALESCE(i.invoices_paid_total, 0) AS invoices_paid_total, COALESCE(i.invoices_paid, 0) AS invoices_paid, "
           "COALESCE(i.invoices_due_total, 0) AS invoices_due_total, COALESCE(t.net_collected, 0) AS net_collected, "
           "COALESCE(t.refunded, 0) AS refunded, COALESCE(t.payments, 0) AS payments, t.first_payment_at, "
           f"t.last_payment_at FROM ({invoices}) AS i FULL OUTER JOIN ({transactions}) AS t "
           "ON t.contact_id = i.contact_id AND t.location_id = i.location_id AND t.currency = i.currency "
           "WHERE COALESCE(i.contact_id, t.contact_id) IS NOT NULL")
    return [View("contact_revenue", sql, "per contact and currency: invoices paid, net collected, first and "
                 "last payment")]
