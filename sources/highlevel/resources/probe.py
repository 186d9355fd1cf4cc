"""What probing `POST /opportunities/search` found, per location, and which answers count as a refusal.

The route's shape is unconfirmed (CONTRACT §9): the opportunities resource probes it and falls back
to the documented GET scan. This module keeps the two decisions that must not drift apart: what a
failed probe request means, and how long a finding is trusted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from .. import settings
from ..errors import ApiError, AuthError, HighLevelError, LocationAccessError, RateLimited
from ..normalize import to_iso_z, to_utc

__all__ = ["PROBE_TTL", "ProbeMemory", "Refusal", "Unusable", "refusal_of"]

PROBE_TTL = timedelta(days=1)  # what a probe found holds this long; the API may change, so then probe again


class ProbeMemory:
    """What the probe found for one location: `probe[<location>] = {path, field, reason, at}` in
    the opportunities resource state, so it commits (or not) with the run's rows."""

    def __init__(self, memory: dict[str, Any], location_id: str) -> None:
        self.memory = memory
        self.location_id = location_id

    def recall(self, now: datetime | None = None) -> dict[str, Any] | None:
        """The stored finding while younger than PROBE_TTL; None when missing, stale or malformed."""
        entry = self.memory.get(self.location_id)
        if not isinstance(entry, dict) or entry.get("path") not in ("post", "get"):
            return None
        if entry["path"] == "post" and entry.get("field") not in settings.OPPORTUNITY_UPDATE_FIELDS:
            return None
        try:
            at = to_utc(entry.get("at"))
        except ValueError:
            return None
        if at is None or (now or datetime.now(UTC)) - at >= PROBE_TTL:
            return None
        return entry

    def remember(self, path: str, field: str | None, reason: str) -> None:
        self.memory[self.location_id] = {"path": path, "field": field, "reason": reason,
                                         "at": to_iso_z(datetime.now(UTC))}

    def forget(self) -> None:
        self.memory.pop(self.location_id, None)


class Unusable(ApiError):
    """A 200 from the POST search without an `opportunities` list (an empty body, `{}`)."""


@dataclass(frozen=True)
class Refusal:
    """The POST search on `field` cannot be used. `whole_route`: no other field can help (the route
    itself refused); `lasting`: worth remembering for a day (a 5xx storm is not)."""

    field: str
    reason: str
    whole_route: bool
    lasting: bool = True


def refusal_of(field: str, exc: HighLevelError) -> Refusal | None:
    """What a failed probe request says about the POST search; None: the failure is not the route's
    answer (a bad token, the rate budget, an unreachable server) and fails the resource as anywhere.

    Any other answer is a refusal (DESIGN §4): the GET path reads the same rows. 400 and 422 usually
    name the field, so the next candidate may work; anything else is about the route. One 401 is
    the route's too: "not yet supported by the IAM Service" (CONTRACT §3.2 B).
    """
    if isinstance(exc, LocationAccessError):
        return Refusal(field, "403", whole_route=True)
    if isinstance(exc, AuthError):
        return Refusal(field, "401 IAM", whole_route=True) if "iam service" in str(exc).lower() else None
    if isinstance(exc, Unusable):
        return Refusal(field, "200 without an opportunities list", whole_route=True)
    if not isinstance(exc, ApiError) or isinstance(exc, RateLimited) or exc.status in (None, 401, 429):
        return None
    status = exc.status
    if status < 300:
        return Refusal(field, f"{status} with a non-JSON body", whole_route=True)
    if status >= 500:
        return Refusal(field, str(status), whole_route=True, lasting=False)
    return Refusal(field, str(status), whole_route=status not in (400, 422))
