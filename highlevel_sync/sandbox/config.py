"""Sandbox settings: data volume, limits, lag. Defaults mirror HighLevel's documented numbers."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Keep(enum.Enum):
    """The default of run-time setters: "leave this setting as it is" (None means "off")."""

    KEEP = "keep"


KEEP = Keep.KEEP

# What the benchmarks run with (fixed ms per request, ms per returned record): HighLevel answers in
# hundreds of milliseconds, a 500-contact page in about half a second
REALISTIC_LATENCY = (250.0, 0.5)


@dataclass(frozen=True)
class SandboxConfig:
    """Everything that shapes a sandbox. One seed gives the same ids, tokens, data and faults; the
    company id is derived from it. Limits and lag default to HighLevel's documented behaviour."""

    seed: int = 7
    # one location per entry; the first is the big one (> 10,000 so the search window cap matters)
    contacts_per_location: tuple[int, ...] = (12_500, 300, 40)
    users_per_location: int = 5
    opportunities_per_location: tuple[int, ...] | None = None  # default: a fifth of the contacts
    conversations_per_location: tuple[int, ...] | None = None  # default: a tenth of the contacts
    # revenue and lead capture (revenue_data.py): invoices and orders per location, twice as many
    # form submissions, fewer forms, products and subscriptions. Default: a fiftieth of the contacts
    revenue_per_location: tuple[int, ...] | None = None
    messages_per_conversation: int = 4
    appointments_per_calendar: int = 40
    calendars_per_location: int = 2
    # burst limit per location: at most `rate_limit_max` requests in any `rate_limit_interval_ms`
    rate_limit_max: int | None = 100
    rate_limit_interval_ms: int = 10_000
    daily_quota: int | None = 200_000
    # a write becomes visible to search after a lag drawn from [index_lag_s / 2, index_lag_s]
    index_lag_s: float = 2.0
    # OAuth
    access_token_ttl_s: float = 86_399.0
    client_id: str = "6650a1b2c3d4e5f6a7b8c9d0-lx2k9q1s"
    client_secret: str = "sandbox-client-secret"
    # which update-time field POST /opportunities/search honours (None: filters are refused)
    opportunity_update_field: str | None = "date_updated"
    # which message field GET /conversations/messages/export's startDate/endDate filter: unconfirmed
    # (CONTRACT §9), so the client must be right with "dateAdded", "dateUpdated" or None (ignored)
    message_export_date_field: str | None = "dateAdded"
    # GET /calendars/events: the docs name no longest window and no cap on one answer (CONTRACT §9).
    # A number of days refuses longer windows with 422; a number of events silently cuts an answer.
    max_event_window_days: int | None = None
    max_events_per_answer: int | None = None
    # custom objects (objects_data.py): record counts per custom object, one tuple per location in
    # order; locations past the end have none. Default: two of 1,000+ (more than one search page)
    # in the first location, one small one in the second, none in the rest.
    object_records_per_location: tuple[tuple[int, ...], ...] = ((1_200, 1_050), (25,))
    # latency model (latency.py): every API answer, OAuth included, waits this long before it is sent,
    # plus `latency_per_record_ms` per record in it; concurrent requests overlap. 0: loopback speed
    latency_ms: float = 0.0
    latency_per_record_ms: float = 0.0

    def per_location(self, values: tuple[int, ...] | None, divisor: int) -> tuple[int, ...]:
        if values is not None:
            return values
        return tuple(max(1, n // divisor) for n in self.contacts_per_location)
