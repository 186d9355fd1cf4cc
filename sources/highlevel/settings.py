"""Constants of the HighLevel API v2 and of this source's defaults.

Values here come from the official OpenAPI specs and the API contract notes; keeping them in one
leaf module means a changed limit or header is a one-line edit.
"""

from __future__ import annotations

from datetime import timedelta

DEFAULT_BASE_URL = "https://services.leadconnectorhq.com"

# The `Version` header is mandatory and differs per endpoint family. Never send "v3": it changes
# paths and payload shapes.
VERSION_2021_07_28 = "2021-07-28"  # contacts, opportunities, users, locations, custom fields, oauth minting
VERSION_2021_04_15 = "2021-04-15"  # conversations, messages, calendars, events

# Paths
CONTACTS_SEARCH = "/contacts/search"
LOCATION = "/locations/{location_id}"
LOCATION_CUSTOM_FIELDS = "/locations/{location_id}/customFields"
USERS_SEARCH = "/users/search"
OPPORTUNITIES_SEARCH = "/opportunities/search"  # GET (snake_case params) and POST (advanced search)
PIPELINES = "/opportunities/pipelines"
CONVERSATIONS_SEARCH = "/conversations/search"
MESSAGES_EXPORT = "/conversations/messages/export"
CALENDARS = "/calendars/"
CALENDAR_EVENTS = "/calendars/events"
APPOINTMENT = "/calendars/events/appointments/{event_id}"  # one appointment by id, any date
TASKS_SEARCH = "/locations/{location_id}/tasks/search"  # POST, skip/limit in the body (locations family)
CONTACT_NOTES = "/contacts/{contact_id}/notes"  # GET, every note of one contact, unpaged (contacts family)
CONTACT_TASK = "/contacts/{contact_id}/tasks/{task_id}"  # GET, one task by id (contacts family)

# Paging limits enforced by the API
CONTACTS_PAGE_LIMIT_MAX = 500
SEARCH_RESULT_WINDOW = 10_000  # page-number access stops here; searchAfter keeps going
USERS_PAGE_LIMIT = 100
OPPORTUNITIES_POST_LIMIT = 500
OPPORTUNITIES_GET_LIMIT = 100
CONVERSATIONS_LIMIT = 100
MESSAGES_EXPORT_LIMIT = 500
TASKS_SEARCH_LIMIT = 100  # the spec gives a default (25), no maximum; 100 is what other skip/limit reads use
# Candidate names for the undocumented update-time field of POST /opportunities/search, tried in order.
OPPORTUNITY_UPDATE_FIELDS = ("date_updated", "updatedAt", "updated_at")

# Appointments: no change filter exists, so windows by appointment time. The longest window the
# API takes is unconfirmed (CONTRACT §9): one wide window per calendar is tried first (the default
# rolling window fits in one), and a refusal falls back to narrow windows, remembered a day. The
# endpoint does not page: a wide answer with APPOINTMENT_SPLIT_AT events or more is read again in
# narrow windows, in case the API caps an answer silently.
APPOINTMENT_BACKFILL_WINDOW = timedelta(days=90)
APPOINTMENT_WIDE_WINDOW = timedelta(days=400)
APPOINTMENT_SPLIT_AT = 100
APPOINTMENT_LOOKBACK = timedelta(days=30)
APPOINTMENT_LOOKAHEAD = timedelta(days=365)
APPOINTMENT_DEFAULT_HISTORY = timedelta(days=3 * 365)  # first-run backfill when start_date is unset

# Incremental behaviour
# contacts per extract: memory grows with an extract's size, so a huge location is read and loaded
# in chunks, each committing its position (a killed backfill continues there). Not smaller: every
# later chunk merges into a bigger table, which cost 11% (25k chunks) of a 100k-contact first load.
DEFAULT_CHUNK_ROWS = 100_000
DEFAULT_OVERLAP = timedelta(minutes=5)  # covers the asynchronous search index lag (seconds) generously

# Notes have no bulk reader: one request per contact. A run reads the notes of at most this many
# contacts per location (the rest wait for the next run), so a backfill never spends a location's
# daily quota (200,000) on notes: 1,000 is half a percent of it, under two minutes at the burst limit.
DEFAULT_NOTES_MAX_REQUESTS = 1_000

# Locations fetched side by side. Each has its own budget (100 requests / 10 s), and HighLevel
# answers in hundreds of milliseconds, so a location's run is mostly waiting: many at once keep the
# machine busy. Their reads share one pool (DEFAULT_MAX_PARALLEL_READS) and one cap on requests in
# flight (DEFAULT_MAX_REQUESTS_IN_FLIGHT), so this bounds waiting coordinators, not work.
DEFAULT_MAX_PARALLEL_LOCATIONS = 64

# Requests in flight at once, all locations together. HighLevel answers in hundreds of milliseconds,
# so a location's budget (100 / 10 s) needs several requests in flight to be used at all; the
# per-location governor keeps each location within its budget whatever this allows.
DEFAULT_MAX_REQUESTS_IN_FLIGHT = 128
# Time slices a long search walk (contacts) is read in, side by side (slices.py): at 500 ms a page,
# five in flight fill a location's budget; more cover skew (one slice holding most rows)
DEFAULT_SEARCH_SLICES = 16
# Resource reads running at once, all locations together (each one a thread that mostly waits).
DEFAULT_MAX_PARALLEL_READS = 128

# The safety-net sweep: a plain run also re-reads in full (deletions, old corrections) each location
# whose last sweep is older than this, spread over the period by a stable hash of the location id.
DEFAULT_SWEEP_EVERY_HOURS = 24.0
# Payments records change after creation (paid, refunded) with no change filter: a run re-reads
# the ones created in this window; older changes arrive by webhook or sweep.
DEFAULT_PAYMENTS_DAYS_BACK = 30
# Relations have no bulk reader either: one request per custom-object record, capped like notes.
DEFAULT_RELATIONS_MAX_REQUESTS = 1_000
# Custom objects: the record search's page (the spec names no maximum; 100 is what the API takes)
OBJECTS = "/objects/{key}/records/search"  # POST, searchAfter paging
OBJECT_RECORD = "/objects/{key}/records/{id}"  # GET, one record, the token's location
OBJECT_FIELDS = "/custom-fields/object-key/{key}"  # GET, a custom object's field definitions
RECORD_RELATIONS = "/associations/relations/{id}"  # GET, skip/limit, one record's relations
OBJECT_RECORDS_PAGE_LIMIT = 100
RELATIONS_PAGE_LIMIT = 100

# Rate limits (per app, per location). Used until the first response tells us the real numbers.
DEFAULT_BURST_MAX = 100
DEFAULT_BURST_INTERVAL_MS = 10_000
# Stop before the daily quota is gone so other integrations of the same location keep working.
DEFAULT_DAILY_RESERVE = 200

# HTTP behaviour
DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MAX_ATTEMPTS = 6  # per request, token calls included (retries.py)
DEFAULT_BACKOFF_BASE_S = 0.5  # first backoff; doubles per failure up to DEFAULT_BACKOFF_MAX_S
DEFAULT_BACKOFF_MAX_S = 30.0

RESOURCE_NAMES = (
    "contacts",
    "notes",  # right after contacts: it reads the notes of the contacts that read just changed
    "opportunities",
    "pipelines",
    "conversations",
    "messages",
    "calendars",
    "appointments",
    "tasks",
    "custom_fields",
    "users",
    "locations",
    # revenue and lead capture: rows of the declarative list table (endpoints.py)
    "forms",
    "form_submissions",
    "surveys",
    "survey_submissions",
    "invoices",
    "orders",
    "transactions",
    "subscriptions",
    "products",
    "product_prices",
    # custom objects and the account's lists (endpoints.ACCOUNT_LISTS, resources/objects.py, relations.py)
    "object_schemas",
    "object_records",
    "associations",
    "relations",  # after object_records: it reads the relations of the records that read changed
    "campaigns",
    "workflows",
    "tags",
    "custom_values",
    "links",
    "businesses",
    "deletions",  # last: it records what the others' sweeps found
)
# the read scope each core resource needs (docs/Scopes.md); the lists name theirs in endpoints.py
CORE_SCOPES = {
    "contacts": "contacts.readonly", "notes": "contacts.readonly", "opportunities": "opportunities.readonly",
    "pipelines": "opportunities.readonly", "conversations": "conversations.readonly",
    "messages": "conversations/message.readonly", "calendars": "calendars.readonly",
    "appointments": "calendars/events.readonly", "tasks": "locations/tasks.readonly",
    "custom_fields": "locations/customFields.readonly", "users": "users.readonly", "locations": "locations.readonly",
    "object_records": "objects/record.readonly", "relations": "associations/relation.readonly",
}
# selected only when asked for (`--resources ...,notes` or `sync_notes = true`): a request per contact
# (relations: `sync_relations`, a request per custom-object record)
OPT_IN_RESOURCES = ("notes", "relations")
DEFAULT_RESOURCES = tuple(name for name in RESOURCE_NAMES if name not in OPT_IN_RESOURCES)
