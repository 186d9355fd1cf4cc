"""Small dimensions (users, locations, custom-field definitions): re-read in full every run.

Custom-field definitions are those of contacts and opportunities (`GET /locations/{id}/customFields`)
and those of each custom object (`GET /custom-fields/object-key/{key}`, the objects from the run's
one schema listing), the object's key in `model` as a contact field has `contact` there.

They have no change timestamps (users and locations lack `dateUpdated`), and they are small.
Each is merged with `merge_key="location_id"`: a run replaces exactly the rows of the location it
read, and never touches other locations' rows, which a plain `replace` would wipe.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dlt

from .. import settings
from ..errors import ApiError, ScopeError
from ..paginators import skip_limit_pages
from .columns import location_key, text
from .context import LocationContext
from .objects import custom_object_keys


@dlt.resource(name="locations", write_disposition="merge", primary_key="id", merge_key="location_id",
              columns={**location_key(), "business__logo_url": text()})
def locations(ctx: LocationContext) -> Iterator[dict[str, Any]]:
    """The sub-account itself (name, timezone, address...)."""
    record = dict(ctx.location())
    record["location_id"] = ctx.location_id
    ctx.report("locations").rows += 1
    yield record


@dlt.resource(name="custom_fields", write_disposition="merge", primary_key="id", merge_key="location_id",
              columns=location_key())
def custom_fields(ctx: LocationContext) -> Iterator[list[dict[str, Any]]]:
    """Custom-field definitions of every model (contact, opportunity, each custom object), `dataType` kept."""
    rows = [{**definition, "locationId": ctx.location_id} for definition in ctx.custom_field_definitions()]
    rows += object_fields(ctx)
    ctx.report("custom_fields").rows += len(rows)
    if rows:
        yield rows


def object_fields(ctx: LocationContext) -> list[dict[str, Any]]:
    """The fields of every custom object, side by side; none when the token cannot list objects
    (`object_schemas` reports that scope once)."""
    try:
        keys = custom_object_keys(ctx)
    except ScopeError:
        return []

    def fetch(key: str) -> list[dict[str, Any]]:
        body = ctx.client.get(settings.OBJECT_FIELDS.format(key=key), version=settings.VERSION_2021_07_28,
                              location_id=ctx.location_id, params={"locationId": ctx.location_id})
        fields = body.get("fields")
        if not isinstance(fields, list):
            raise ApiError(f"location {ctx.location_id}: object fields of {key} answer has no 'fields' list")
        return [{**field, "model": key, "locationId": ctx.location_id} for field in fields]

    return [row for rows in ctx.client.map_pages(fetch, keys) for row in rows]


@dlt.resource(name="users", write_disposition="merge", primary_key=("location_id", "id"),
              merge_key="location_id", columns=location_key())
def users(ctx: LocationContext) -> Iterator[list[dict[str, Any]]]:
    """Users with access to the location; one user appears once per location it belongs to."""
    company_id = ctx.company_id or ctx.location().get("companyId")
    params = {"companyId": company_id, "locationId": ctx.location_id}

    def fetch(query: dict[str, Any]) -> dict[str, Any]:
        return ctx.client.get(
            settings.USERS_SEARCH, version=settings.VERSION_2021_07_28, location_id=ctx.location_id, params=query
        )

    for page in skip_limit_pages(fetch, params, "users", settings.USERS_PAGE_LIMIT):
        rows = [{**user, "locationId": ctx.location_id} for user in page]
        ctx.report("users").rows += len(rows)
        yield rows
