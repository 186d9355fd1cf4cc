"""Who a bearer token is: the registry every API request is authenticated against.

One entry per token, whatever issued it: a Private Integration Token (static, scoped to one
location, never expires) or an OAuth access token (company or location, expiring). Issuers add
entries; the gateway only looks them up, so a new kind of token needs no change there.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

READ_SCOPES = frozenset({"contacts.readonly", "opportunities.readonly", "conversations.readonly",
                         "conversations/message.readonly", "calendars.readonly", "calendars/groups.readonly",
                         "calendars/events.readonly", "users.readonly", "locations.readonly",
                         "locations/customFields.readonly", "locations/tasks.readonly",
                         # custom objects and the account's small lists (routes_objects.py, routes_lists.py)
                         "objects/schema.readonly", "objects/record.readonly", "associations.readonly",
                         "associations/relation.readonly", "campaigns.readonly", "workflows.readonly",
                         "locations/tags.readonly", "locations/customValues.readonly", "links.readonly",
                         "businesses.readonly",
                         # revenue and lead capture (routes_revenue.py)
                         "forms.readonly", "surveys.readonly", "invoices.readonly", "payments/orders.readonly",
                         "payments/transactions.readonly", "payments/subscriptions.readonly", "products.readonly",
                         "products/prices.readonly"})


@dataclass(frozen=True)
class TokenInfo:
    kind: str  # "pit" | "oauth"
    user_type: str  # "Location" | "Company"
    company_id: str
    location_id: str | None = None  # set for location-scoped tokens
    scopes: frozenset[str] = READ_SCOPES
    expires_at: float | None = None  # wall-clock seconds; None = never (PITs)

    def expired(self, now: float | None = None) -> bool:
        return self.expires_at is not None and (time.time() if now is None else now) >= self.expires_at


class TokenRegistry:
    """token -> TokenInfo. Reads are single dict lookups (safe from the server thread)."""

    def __init__(self) -> None:
        self._tokens: dict[str, TokenInfo] = {}

    def add(self, token: str, info: TokenInfo) -> str:
        self._tokens[token] = info
        return token

    def lookup(self, token: str) -> TokenInfo | None:
        return self._tokens.get(token)

    def revoke(self, token: str) -> None:
        self._tokens.pop(token, None)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._tokens))

    def __contains__(self, token: object) -> bool:
        return token in self._tokens

    def __len__(self) -> int:
        return len(self._tokens)
