"""HighLevel (GoHighLevel / LeadConnector) CRM as a dlt source, one location at a time.

The source is built per location so each location commits its own data and cursors: a failing
sub-account never costs the others their progress. No HTTP happens here; resources ask the
client (`client.py`) for pages.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import dlt
from dlt.extract.resource import DltResource

from . import settings
from .client import HighLevelClient
from .errors import ConfigError
from .resources.calendars import appointments, calendars
from .resources.contacts import contacts
from .resources.context import LocationContext, SyncOptions
from .resources.conversations import conversations, messages, warm
from .resources.deletions import deletions
from .resources.dimensions import custom_fields, locations, users
from .resources.opportunities import opportunities, pipelines

__all__ = ["RESOURCE_NAMES", "LocationContext", "SyncOptions", "highlevel_source", "select_resources",
           "warm_resources"]

RESOURCE_NAMES = settings.RESOURCE_NAMES


@dlt.source(name="highlevel", max_table_nesting=2)
def highlevel_source(
    ctx: LocationContext,
    resources: Sequence[str] | None = None,
) -> Any:
    """All resources of one location, or the `resources` subset (names from RESOURCE_NAMES)."""
    selected = select_resources(resources)
    factories = {
        "contacts": contacts,
        "opportunities": opportunities,
        "pipelines": pipelines,
        "conversations": conversations,
        "messages": messages,
        "calendars": calendars,
        "appointments": appointments,
        "custom_fields": custom_fields,
        "users": users,
        "locations": locations,
        "deletions": deletions,
    }
    built: list[DltResource] = [factories[name](ctx) for name in RESOURCE_NAMES if name in selected]
    return built


def select_resources(names: Sequence[str] | None) -> list[str]:
    """The resources to run (all by default); unknown or empty selections are a ConfigError."""
    selected = [n.strip() for n in names or RESOURCE_NAMES if n.strip()]
    unknown = sorted(set(selected) - set(RESOURCE_NAMES))
    if unknown:
        raise ConfigError(f"unknown resource(s) {', '.join(unknown)}; choose from {', '.join(RESOURCE_NAMES)}")
    if not selected:
        raise ConfigError(f"no resources selected; choose from {', '.join(RESOURCE_NAMES)}")
    return selected


def location_context(
    client: HighLevelClient, location_id: str, company_id: str | None = None, options: SyncOptions | None = None
) -> LocationContext:
    return LocationContext(client=client, location_id=location_id, company_id=company_id,
                           options=options or SyncOptions())


def warm_resources(ctx: LocationContext, names: Sequence[str], pipeline_state: dict[str, Any]) -> None:
    """Start the page streams of upcoming resources that can begin before their extract.

    `pipeline_state` is the pipeline's state as the caller sees it between extracts; each resource
    gets a copy of its own part, to read its cursor from.
    """
    states = pipeline_state.get("sources", {}).get("highlevel", {}).get("resources", {})
    for name in names:
        warm(ctx, name, copy.deepcopy(states.get(name, {})))
