"""Deterministic seeded data shaped like HighLevel's API responses (OpenAPI specs + contract notes)."""

from __future__ import annotations

import random
import string
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

ALNUM = string.ascii_letters + string.digits
ANCHOR = datetime(2026, 1, 1, tzinfo=UTC)  # seeded history ends here: always in the past
HISTORY_MS = 2 * 365 * 86_400_000
TIMEZONES = ("America/New_York", "Asia/Kolkata", "Europe/London", "America/Los_Angeles", "Australia/Sydney")
OFFSETS = {"America/New_York": -5, "Asia/Kolkata": 5.5, "Europe/London": 0, "America/Los_Angeles": -8,
           "Australia/Sydney": 11}
FIRST = ("Ava", "Liam", "Noah", "Emma", "Olivia", "Mia", "Arjun", "Priya", "Lucas", "Zoe", "Omar", "Chloe")
LAST = ("Smith", "Patel", "Garcia", "Nguyen", "Brown", "Khan", "Rossi", "Müller", "O'Brien", "Kim")
TAGS = tuple(f"tag-{name}" for name in ("vip", "lead", "newsletter", "webinar", "trial", "churned", "partner",
                                        "referral", "cold", "warm", "hot", "event", "ebook", "demo", "q1", "q2",
                                        "q3", "q4", "spanish", "enterprise"))
DND_CHANNELS = ("Call", "Email", "SMS", "WhatsApp", "GMB", "FB")
SOURCES = ("website", "facebook", "google ads", "referral", "import", "api")
# Every contact custom-field dataType HighLevel's UI offers.
FIELD_TYPES = ("TEXT", "LARGE_TEXT", "NUMERICAL", "PHONE", "MONETORY", "CHECKBOX", "SINGLE_OPTIONS",
               "MULTIPLE_OPTIONS", "DATE", "RADIO", "TEXTBOX_LIST", "FILE_UPLOAD", "EMAIL")
OPTIONS = ("alpha", "beta", "gamma", "delta")


def make_id(rng: random.Random) -> str:
    return "".join(rng.choices(ALNUM, k=20))


def iso_ms(ms: int) -> str:
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def iso_offset(ms: int, hours: float) -> str:
    """An ISO timestamp in a location's offset, as calendar events carry them (`+05:30`)."""
    tz = timedelta(hours=hours)
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC) + tz
    sign = "+" if hours >= 0 else "-"
    total = abs(int(hours * 60))
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f"{sign}{total // 60:02d}:{total % 60:02d}"


def now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)


def make_location(rng: random.Random, company_id: str, index: int) -> dict[str, Any]:
    location_id = make_id(rng)
    timezone = TIMEZONES[index % len(TIMEZONES)]
    return {
        "id": location_id, "companyId": company_id, "name": f"Sandbox Clinic {index + 1}",
        "domain": f"clinic{index + 1}.example.com", "address": f"{10 + index} Main Street", "city": "Springfield",
        "state": "IL", "country": "US", "postalCode": "62701", "website": f"https://clinic{index + 1}.example.com",
        "timezone": timezone, "firstName": "Pat", "lastName": "Owner", "email": f"owner{index + 1}@example.com",
        "phone": f"+1555010{index:04d}",
        "business": {"name": f"Sandbox Clinic {index + 1}", "address": f"{10 + index} Main Street",
                     "city": "Springfield", "state": "IL", "country": "US", "postalCode": "62701",
                     "website": f"https://clinic{index + 1}.example.com", "timezone": timezone,
                     "logoUrl": None},
        "social": {"facebookUrl": "", "googlePlus": "", "linkedIn": "", "foursquare": "", "twitter": "",
                   "yelp": "", "instagram": "", "youtube": "", "pinterest": "", "blogRss": "", "googlePlacesId": ""},
        "settings": {"allowDuplicateContact": False, "allowDuplicateOpportunity": False,
                     "allowFacebookNameMerge": False, "disableContactTimezone": False},
        "reseller": {},
    }


def make_users(rng: random.Random, company_id: str, location_id: str, n: int) -> list[dict[str, Any]]:
    users = []
    for i in range(n):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        users.append({
            "id": make_id(rng), "name": f"{first} {last}", "firstName": first, "lastName": last,
            "email": f"{first.lower()}.{i}.{location_id[:4].lower()}@example.com", "phone": f"+1555020{i:04d}",
            "extension": "", "permissions": {"campaignsEnabled": True, "contactsEnabled": True,
                                             "opportunitiesEnabled": True, "conversationsEnabled": True},
            "scopes": "", "roles": {"type": "account", "role": "admin" if i == 0 else "user",
                                    "locationIds": [location_id], "restrictSubAccount": False},
            "deleted": False, "lcPhone": {}, "platformLanguage": "en_US", "companyId": company_id,
        })
    return users


def make_custom_fields(rng: random.Random, location_id: str) -> list[dict[str, Any]]:
    fields = []
    for position, data_type in enumerate(FIELD_TYPES):
        name = data_type.lower().replace("_", " ")
        fields.append(_field(rng, location_id, f"Contact {name}", f"contact.{data_type.lower()}_field", data_type,
                             position, "contact"))
    for position, (name, data_type) in enumerate((("Deal source", "SINGLE_OPTIONS"), ("Budget", "MONETORY"),
                                                  ("Close reason", "TEXT"))):
        key = "opportunity." + name.lower().replace(" ", "_")
        fields.append(_field(rng, location_id, name, key, data_type, position, "opportunity"))
    return fields


def _field(rng: random.Random, location_id: str, name: str, key: str, data_type: str, position: int,
           model: str) -> dict[str, Any]:
    has_options = data_type in ("SINGLE_OPTIONS", "MULTIPLE_OPTIONS", "RADIO", "CHECKBOX")
    return {"id": make_id(rng), "name": name, "fieldKey": key, "placeholder": name, "dataType": data_type,
            "position": position, "picklistOptions": list(OPTIONS) if has_options else [],
            "picklistImageOptions": [], "isAllowedCustomOption": False,
            "isMultiFileAllowed": data_type == "FILE_UPLOAD",
            "maxFileLimit": 2 if data_type == "FILE_UPLOAD" else 0, "locationId": location_id, "model": model}


def custom_value(rng: random.Random, data_type: str) -> Any:
    if data_type in ("NUMERICAL",):
        return rng.randint(0, 10_000)
    if data_type == "MONETORY":
        return round(rng.uniform(0, 50_000), 2)
    if data_type in ("CHECKBOX", "MULTIPLE_OPTIONS"):
        return rng.sample(OPTIONS, rng.randint(1, 3))
    if data_type in ("SINGLE_OPTIONS", "RADIO"):
        return rng.choice(OPTIONS)
    if data_type == "DATE":
        return ANCHOR_MS - rng.randint(0, HISTORY_MS)
    if data_type == "TEXTBOX_LIST":
        return {"option_a": f"note {rng.randint(1, 99)}", "option_b": ""}
    if data_type == "FILE_UPLOAD":
        return {str(uuid.UUID(int=rng.getrandbits(128))): {"url": "https://files.example.com/f.pdf",
                                                           "meta": {"name": "f.pdf", "size": rng.randint(1, 10**6)}}}
    if data_type == "PHONE":
        return f"+1555{rng.randint(1000000, 9999999)}"
    if data_type == "EMAIL":
        return f"alt{rng.randint(1, 10**6)}@example.org"
    if data_type == "LARGE_TEXT":
        return "Line one\nline two with ünïcode, quotes \" and commas"
    return f"text {rng.randint(1, 10**6)}"


ANCHOR_MS = int(ANCHOR.timestamp() * 1000)


def make_contact(rng: random.Random, location_id: str, fields: list[dict[str, Any]], users: list[dict[str, Any]],
                 added_ms: int, updated_ms: int) -> dict[str, Any]:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    contact_id = make_id(rng)
    contact_fields = [f for f in fields if f["model"] == "contact"]
    chosen = rng.sample(contact_fields, rng.randint(0, 4))
    dnd = rng.random() < 0.1
    return {
        "id": contact_id, "locationId": location_id, "firstName": first, "lastName": last,
        "contactName": f"{first} {last}".lower(), "email": f"{first.lower()}.{contact_id[:6].lower()}@example.com",
        "phone": f"+1555{rng.randint(1000000, 9999999)}", "phoneLabel": "mobile", "companyName": rng.choice(
            ("Acme", "Globex", "Initech", None)), "address": f"{rng.randint(1, 999)} Oak Ave", "city": "Springfield",
        "state": "IL", "postalCode": "62701", "country": "US", "website": None,
        "timezone": rng.choice(TIMEZONES), "type": rng.choice(("lead", "customer")), "source": rng.choice(SOURCES),
        "tags": rng.sample(TAGS, rng.randint(0, 5)), "dnd": dnd,
        "dndSettings": {ch: {"status": rng.choice(("active", "inactive", "permanent")) if dnd else "inactive",
                             "message": "", "code": ""} for ch in DND_CHANNELS},
        "inboundDndSettings": {"all": {"status": "inactive", "message": ""}},
        "assignedTo": rng.choice(users)["id"] if users and rng.random() < 0.7 else None,
        "followers": [u["id"] for u in rng.sample(users, min(len(users), rng.randint(0, 2)))],
        "businessId": None, "businessName": None,
        "customFields": [{"id": f["id"], "value": custom_value(rng, f["dataType"])} for f in chosen],
        "attributions": [{"utmSessionSource": "Direct traffic", "isFirst": True, "medium": "form"}],
        "attributionSource": {"url": "https://example.com/landing", "campaign": "spring", "utmSource": "google",
                              "utmMedium": "cpc", "sessionSource": "Paid Search", "medium": "form",
                              "mediumId": make_id(rng)},
        "lastAttributionSource": {"sessionSource": "Direct traffic", "medium": "form"},
        "dateAdded": iso_ms(added_ms), "dateUpdated": iso_ms(updated_ms),
        "dateOfBirth": None if rng.random() < 0.5 else ANCHOR_MS - rng.randint(18, 80) * 31_557_600_000,
        "validEmail": rng.random() < 0.9,
    }


def contact_times(rng: random.Random, n: int) -> list[tuple[int, int]]:
    """(dateAdded, dateUpdated) pairs over the seeded history; a few share one millisecond."""
    pairs: list[tuple[int, int]] = []
    for i in range(n):
        added = ANCHOR_MS - rng.randint(0, HISTORY_MS)
        updated = added + rng.randint(0, min(90 * 86_400_000, ANCHOR_MS - added))
        if i % 997 == 1 and pairs:  # ties exist in reality: same dateUpdated millisecond
            updated = pairs[-1][1]
            added = min(added, updated)
        pairs.append((added, updated))
    return pairs


def pit_token(rng: random.Random) -> str:
    return "pit-" + str(uuid.UUID(int=rng.getrandbits(128), version=4))
