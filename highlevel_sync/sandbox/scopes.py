"""Which OAuth scope each API route needs (docs/Scopes.md and each operation's `security` in the
specs), and taking scopes away from a location's tokens.

The gateway checks the table for every route, so a route added later needs one line here, not a
check in its handler. A token without the scope gets HighLevel's 401 "The token is not authorized
for this scope." (CONTRACT §5, issue #217): a missing scope, not an expired token, so a client
must not refresh and retry. Paths not in the table (the OAuth endpoints) need no read scope.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .oauth import OAuthState
    from .world import World

NOT_AUTHORIZED = "The token is not authorized for this scope."

# first match wins: more specific paths first
ROUTE_SCOPES: tuple[tuple[re.Pattern[str], str], ...] = tuple((re.compile(pattern), scope) for pattern, scope in (
    (r"^/contacts/", "contacts.readonly"),
    (r"^/locations/[^/]+/customFields", "locations/customFields.readonly"),
    (r"^/locations/[^/]+/tasks/", "locations/tasks.readonly"),
    (r"^/locations/[^/]+/?$", "locations.readonly"),
    (r"^/users/", "users.readonly"),
    (r"^/opportunities/", "opportunities.readonly"),
    (r"^/conversations/messages", "conversations/message.readonly"),
    (r"^/conversations/", "conversations.readonly"),
    (r"^/calendars/events", "calendars/events.readonly"),
    (r"^/calendars/", "calendars.readonly"),
    (r"^/forms/", "forms.readonly"),
    (r"^/surveys/", "surveys.readonly"),
    (r"^/invoices/", "invoices.readonly"),
    (r"^/payments/orders", "payments/orders.readonly"),
    (r"^/payments/transactions", "payments/transactions.readonly"),
    (r"^/payments/subscriptions", "payments/subscriptions.readonly"),
    (r"^/products/[^/]+/price", "products/prices.readonly"),
    (r"^/products/", "products.readonly"),
    (r"^/objects/[^/]+/records", "objects/record.readonly"),
    (r"^/objects/", "objects/schema.readonly"),
    (r"^/custom-fields/", "locations/customFields.readonly"),
    (r"^/associations/relations/", "associations/relation.readonly"),
    (r"^/associations/", "associations.readonly"),
    (r"^/locations/[^/]+/tags", "locations/tags.readonly"),
    (r"^/locations/[^/]+/customValues", "locations/customValues.readonly"),
    (r"^/campaigns/", "campaigns.readonly"),
    (r"^/workflows/", "workflows.readonly"),
    (r"^/links/", "links.readonly"),
    (r"^/businesses/", "businesses.readonly"),
))


def required_scope(path: str) -> str | None:
    for pattern, scope in ROUTE_SCOPES:
        if pattern.match(path):
            return scope
    return None


def revoke(world: World, oauth: OAuthState, location_id: str, scopes: set[str] | frozenset[str]) -> None:
    """Take `scopes` from the location's PIT, its OAuth access tokens, and the grants (refresh
    tokens, unused codes) that would mint more of them: as if the install was re-approved without
    them. Company tokens keep theirs."""
    with world.lock:
        for token in world.tokens:
            info = world.tokens.lookup(token)
            if info is not None and info.location_id == location_id:
                world.tokens.add(token, replace(info, scopes=info.scopes - scopes))
        for grant in (*oauth.refresh_tokens.values(), *oauth.codes.values()):
            if grant.location_id == location_id:
                grant.scopes = grant.scopes - scopes
