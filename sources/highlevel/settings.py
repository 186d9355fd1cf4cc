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

# Paging limits enforced by the API
CONTACTS_PAGE_LIMIT_MAX = 500
SEARCH_RESULT_WINDOW = 10_000  # page-number access stops here; searchAfter keeps going
USERS_PAGE_LIMIT = 100

# Incremental behaviour
DEFAULT_OVERLAP = timedelta(minutes=5)  # covers the asynchronous search index lag (seconds) generously

# Rate limits (per app, per location). Used until the first response tells us the real numbers.
DEFAULT_BURST_MAX = 100
DEFAULT_BURST_INTERVAL_MS = 10_000
# Stop before the daily quota is gone so other integrations of the same location keep working.
DEFAULT_DAILY_RESERVE = 200

# HTTP behaviour
DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MAX_ATTEMPTS = 6
DEFAULT_BACKOFF_MAX_S = 30.0

RESOURCE_NAMES = ("contacts", "custom_fields", "users", "locations")
