"""The account's lists as one declarative table, read by one generic reader (`resources/lists.py`).

Forms, surveys, their submissions, invoices, payments and products (and the account lists beside
custom objects) differ only in facts a row of this table states: path, `Version`, paging style,
where the location goes in the query, the id field, the timestamps, the scope, and how the table
stays current. A new list is a new row, not a new module. Facts per endpoint are from the specs
(`apps/*.json`) and CONTRACT §11.

How a list stays current (`freshness`):
- `full`: re-read in full every run; an unchanged listing loads nothing (the run's content digest);
  a record the listing no longer shows was deleted.
- `recent`: records change after creation (paid, refunded, cancelled) and no filter finds the
  changed ones: every run re-reads those created in the last `payments_days_back` days, webhooks
  name older ones (read by id), and the safety-net sweep re-reads everything (and finds deletions).
- `created`: created, rarely changed: incremental on creation time. The filter takes dates, so each
  run re-reads from the day before its cursor (merge on id makes the overlap harmless).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from . import settings

Paging = Literal["skip", "offset", "page", "none"]
Freshness = Literal["full", "recent", "created"]
# where the location goes: each query parameter and its value ("{location_id}" or a constant)
LOCATION_ID = {"locationId": "{location_id}"}
ALT_ID = {"altId": "{location_id}", "altType": "location"}


@dataclass(frozen=True)
class ListEndpoint:
    resource: str  # resource and table name
    path: str  # may name {location_id}
    items_key: str  # the answer's list
    scope: str  # the read scope the endpoint needs
    paging: Paging = "offset"
    limit: int = 100  # the page size sent (the largest the API documents, else 100)
    location: dict[str, str] = field(default_factory=lambda: dict(LOCATION_ID))
    version: str = settings.VERSION_2021_07_28
    id_field: str = "_id"  # the record's id as the API names it; the column is always `id`
    timestamps: tuple[str, ...] = ("createdAt", "updatedAt")
    json_columns: tuple[str, ...] = ()  # kept whole as JSON (free-form answers)
    double_columns: tuple[str, ...] = ()  # amounts: double even when a page holds only integers
    freshness: Freshness = "full"
    created_field: str = "createdAt"  # `recent` and `created`: what startAt/endAt filter on
    by_id: str | None = None  # one record by id ({id}), for the records webhooks name
    by_id_key: str | None = None  # the record's key in that answer (None: the answer is the record)

    def location_params(self, location_id: str) -> dict[str, str]:
        return {name: value.format(location_id=location_id) for name, value in self.location.items()}


AMOUNTS = ("amount", "total", "amountPaid", "amountDue", "amountRefunded", "subtotal")

REVENUE_AND_LEADS: tuple[ListEndpoint, ...] = (
    ListEndpoint("forms", "/forms/", "forms", "forms.readonly", paging="skip", limit=50, id_field="id",
                 timestamps=()),
    ListEndpoint("form_submissions", "/forms/submissions", "submissions", "forms.readonly", paging="page",
                 id_field="id", timestamps=("createdAt",), json_columns=("others",), freshness="created"),
    ListEndpoint("surveys", "/surveys/", "surveys", "surveys.readonly", paging="skip", limit=50, id_field="id",
                 timestamps=()),
    ListEndpoint("survey_submissions", "/surveys/submissions", "submissions", "surveys.readonly", paging="page",
                 id_field="id", timestamps=("createdAt",), json_columns=("others",), freshness="created"),
    ListEndpoint("invoices", "/invoices/", "invoices", "invoices.readonly", location=dict(ALT_ID),
                 timestamps=("createdAt", "updatedAt", "issueDate", "dueDate"), double_columns=AMOUNTS,
                 freshness="recent", created_field="issueDate", by_id="/invoices/{id}"),
    ListEndpoint("orders", "/payments/orders", "data", "payments/orders.readonly",
                 location={"locationId": "{location_id}", "altId": "{location_id}"}, double_columns=AMOUNTS,
                 freshness="recent", by_id="/payments/orders/{id}"),
    ListEndpoint("transactions", "/payments/transactions", "data", "payments/transactions.readonly",
                 location={"locationId": "{location_id}", **ALT_ID}, double_columns=AMOUNTS, freshness="recent",
                 by_id="/payments/transactions/{id}"),
    ListEndpoint("subscriptions", "/payments/subscriptions", "data", "payments/subscriptions.readonly",
                 location=dict(ALT_ID), double_columns=AMOUNTS, freshness="recent",
                 by_id="/payments/subscriptions/{id}"),
    ListEndpoint("products", "/products/", "products", "products.readonly", by_id="/products/{id}"),
)

# product_prices: one list per product (`resources/lists.py` reads it per product)
PRODUCT_PRICES = ListEndpoint("product_prices", "/products/{product_id}/price", "prices",
                              "products/prices.readonly", double_columns=("amount", "compareAtPrice"))

# custom objects' schemas and associations, and the lists that name the rest of the account: small,
# unfiltered, re-read in full (`full`); none of them can be read by id
ACCOUNT_LISTS: tuple[ListEndpoint, ...] = (
    ListEndpoint("object_schemas", "/objects/", "objects", "objects/schema.readonly", paging="none", id_field="id",
                 timestamps=("dateAdded", "dateUpdated")),
    ListEndpoint("associations", "/associations/", "associations", "associations.readonly", paging="skip",
                 id_field="id", timestamps=()),
    ListEndpoint("campaigns", "/campaigns/", "campaigns", "campaigns.readonly", paging="none", id_field="id",
                 timestamps=()),
    ListEndpoint("workflows", "/workflows/", "workflows", "workflows.readonly", paging="none", id_field="id"),
    ListEndpoint("tags", "/locations/{location_id}/tags", "tags", "locations/tags.readonly", paging="none",
                 location={}, id_field="id", timestamps=()),
    ListEndpoint("custom_values", "/locations/{location_id}/customValues", "customValues",
                 "locations/customValues.readonly", paging="none", location={}, id_field="id", timestamps=()),
    ListEndpoint("links", "/links/", "links", "links.readonly", paging="none", id_field="id", timestamps=()),
    ListEndpoint("businesses", "/businesses/", "businesses", "businesses.readonly", paging="skip", id_field="id",
                 json_columns=("createdBy", "updatedBy")),
)

LISTS: dict[str, ListEndpoint] = {spec.resource: spec
                                  for spec in (*REVENUE_AND_LEADS, PRODUCT_PRICES, *ACCOUNT_LISTS)}


def scope_of(resource: str) -> str | None:
    """The read scope a resource needs, None when it needs none of its own (deletions)."""
    spec = LISTS.get(resource)
    return spec.scope if spec is not None else settings.CORE_SCOPES.get(resource)
