"""Deterministic seeded data shaped like HighLevel's API responses (OpenAPI specs + CONTRACT §3).

Everything comes from a `random.Random` the caller seeds, so one seed always gives the same
world. Generation is on the hot path of every test and of the 100,000-contact benchmark, so the
primitives avoid the slow parts of `random` (`choices`, `randint`) and `strftime`: one contact
costs a few microseconds.
"""

from __future__ import annotations

import random
import string
import unicodedata
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

Record = dict[str, Any]

ALNUM = string.ascii_letters + string.digits
# byte -> alphanumeric character: an id is 20 random bytes translated in one C call
_ID_TABLE = bytes(ord(ALNUM[b % len(ALNUM)]) for b in range(256))
_EPOCH = datetime(1970, 1, 1)
_EPOCH_UTC = _EPOCH.replace(tzinfo=UTC)
_MS = timedelta(milliseconds=1)
ANCHOR = datetime(2026, 1, 1, tzinfo=UTC)  # seeded history ends here: fixed, so data never depends on the clock
ANCHOR_MS = int(ANCHOR.timestamp() * 1000)
DAY_MS = 86_400_000
HISTORY_MS = 2 * 365 * DAY_MS

# One region per location (cycled): timezones differ per location, as they do across sub-accounts.
REGIONS: tuple[dict[str, Any], ...] = (
    {"timezone": "America/New_York", "city": "New York", "state": "NY", "country": "US", "postalCode": "10001",
     "phone": "+1212555", "street": "Broadway"},
    {"timezone": "Asia/Kolkata", "city": "Bengaluru", "state": "KA", "country": "IN", "postalCode": "560001",
     "phone": "+9180555", "street": "MG Road"},
    {"timezone": "Europe/London", "city": "London", "state": "", "country": "GB", "postalCode": "EC1A 1BB",
     "phone": "+4420555", "street": "High Street"},
    {"timezone": "America/Los_Angeles", "city": "Los Angeles", "state": "CA", "country": "US",
     "postalCode": "90012", "phone": "+1213555", "street": "Sunset Blvd"},
    {"timezone": "Australia/Sydney", "city": "Sydney", "state": "NSW", "country": "AU", "postalCode": "2000",
     "phone": "+6129555", "street": "George Street"},
    {"timezone": "America/Chicago", "city": "Chicago", "state": "IL", "country": "US", "postalCode": "60601",
     "phone": "+1312555", "street": "Michigan Ave"},
)
TIMEZONES = tuple(region["timezone"] for region in REGIONS)
# standard-time UTC offsets in hours, for records that carry the location's offset (appointments)
OFFSETS = {"America/New_York": -5, "Asia/Kolkata": 5.5, "Europe/London": 0, "America/Los_Angeles": -8,
           "Australia/Sydney": 10, "America/Chicago": -6}

FIRST = ("Ava", "Liam", "Noah", "Emma", "Olivia", "Mia", "Arjun", "Priya", "Lucas", "Zoe", "Omar", "Chloe",
         "José", "Siobhán", "Wei", "Aisha")
LAST = ("Smith", "Patel", "Garcia", "Nguyen", "Brown", "Khan", "Rossi", "Müller", "O'Brien", "Kim", "Okafor",
        "Silva")
# names as they appear in email addresses: ASCII letters only ("Müller" -> "muller", "O'Brien" -> "obrien")
SLUGS = {name: "".join(c for c in unicodedata.normalize("NFKD", name).lower() if c.isascii() and c.isalnum())
         for name in (*FIRST, *LAST)}
COMPANIES = ("Acme Dental", "Globex", "Initech", "Umbrella Health", "Stark & Sons", "Wayne Clinics")
TAGS = tuple(f"tag-{name}" for name in ("vip", "lead", "newsletter", "webinar", "trial", "churned", "partner",
                                        "referral", "cold", "warm", "hot", "event", "ebook", "demo", "q1", "q2",
                                        "q3", "q4", "spanish", "enterprise"))
DND_CHANNELS = ("Call", "Email", "SMS", "WhatsApp", "GMB", "FB")
DND_STATUSES = ("active", "inactive", "permanent")
SOURCES = ("website", "facebook", "google ads", "referral", "import", "api")
SESSION_SOURCES = ("Direct traffic", "Paid Search", "Social media", "Organic Search", "Referral")

# Contact custom fields: one per dataType HighLevel offers (custom-fields.json enum), with realistic names.
CONTACT_FIELDS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("Preferred Name", "TEXT", ()),
    ("Intake Notes", "LARGE_TEXT", ()),
    ("Number Of Employees", "NUMERICAL", ()),
    ("Office Phone", "PHONE", ()),
    ("Annual Budget", "MONETORY", ()),
    ("Interests", "CHECKBOX", ("Cleaning", "Whitening", "Implants", "Braces")),
    ("Lead Quality", "SINGLE_OPTIONS", ("Hot", "Warm", "Cold")),
    ("Services Wanted", "MULTIPLE_OPTIONS", ("Consultation", "Follow-up", "Surgery", "Check-up")),
    ("Last Visit", "DATE", ()),
    ("Preferred Contact Method", "RADIO", ("Phone", "Email", "SMS")),
    ("Referral Details", "TEXTBOX_LIST", ("Referrer", "Relationship")),
    ("Insurance Card", "FILE_UPLOAD", ()),
    ("Billing Email", "EMAIL", ()),
)
OPPORTUNITY_FIELDS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("Deal Source", "SINGLE_OPTIONS", ("Inbound", "Outbound", "Partner")),
    ("Budget", "MONETORY", ()),
    ("Close Reason", "TEXT", ()),
)
FIELD_TYPES = tuple(data_type for _, data_type, _ in CONTACT_FIELDS)


# -- primitives ---------------------------------------------------------------------------------

def make_id(rng: random.Random) -> str:
    """An opaque 20-character alphanumeric id, like HighLevel's."""
    return rng.getrandbits(160).to_bytes(20, "big").translate(_ID_TABLE).decode("ascii")


def pick(rng: random.Random, seq: tuple[Any, ...] | list[Any]) -> Any:
    return seq[int(rng.random() * len(seq))]


def below(rng: random.Random, n: int) -> int:
    """A uniform integer in [0, n)."""
    return int(rng.random() * n)


def sample(rng: random.Random, seq: tuple[Any, ...] | list[Any], k: int) -> list[Any]:
    """k distinct elements in random order (`random.sample` without its per-call overhead; k is small)."""
    n = len(seq)
    k = min(k, n)
    if k == 0:
        return []
    taken: list[int] = []
    while len(taken) < k:
        i = int(rng.random() * n)
        if i not in taken:
            taken.append(i)
    return [seq[i] for i in taken]


def iso_ms(ms: int) -> str:
    """ISO-8601 UTC with milliseconds and `Z`, HighLevel's format: `2024-05-02T10:11:12.345Z`."""
    return (_EPOCH + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds") + "Z"


def ms_of(value: str) -> int:
    """Epoch milliseconds of an ISO-8601 timestamp (the inverse of `iso_ms`); exact, no float rounding."""
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH_UTC) // _MS


def iso_offset(ms: int, hours: float) -> str:
    """An ISO timestamp in a location's offset, as calendar events carry them (`+05:30`)."""
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC) + timedelta(hours=hours)
    sign = "+" if hours >= 0 else "-"
    total = abs(int(hours * 60))
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f"{sign}{total // 60:02d}:{total % 60:02d}"


def now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)


def pit_token(rng: random.Random) -> str:
    """A Private Integration Token: `pit-<uuid4>`, as HighLevel issues them."""
    return "pit-" + str(uuid.UUID(int=rng.getrandbits(128), version=4))


# -- locations, users, custom-field definitions -----------------------------------------------

def make_location(rng: random.Random, company_id: str, index: int) -> Record:
    """`GET /locations/{id}`'s `location` object (GetLocationByIdSchema)."""
    region = REGIONS[index % len(REGIONS)]
    number = index + 1
    name = f"Sandbox Clinic {number}"
    site = f"https://clinic{number}.example.com"
    address = f"{10 + index} {region['street']}"
    place = {"address": address, "city": region["city"], "state": region["state"], "country": region["country"],
             "postalCode": region["postalCode"]}
    location_id = make_id(rng)
    return {
        "id": location_id, "companyId": company_id, "name": name, "domain": f"clinic{number}.example.com",
        **place, "logoUrl": f"https://files.example.com/locationPhotos/{location_id}.jpeg", "website": site,
        "timezone": region["timezone"], "firstName": "Pat", "lastName": f"Owner{number}",
        "email": f"owner{number}@clinic{number}.example.com", "phone": f"{region['phone']}{1000 + index:04d}",
        "business": {"name": name, **place, "website": site, "timezone": region["timezone"],
                     "logoUrl": f"https://files.example.com/locationPhotos/{location_id}.jpeg"},
        "social": {key: "" for key in ("facebookUrl", "googlePlus", "linkedIn", "foursquare", "twitter", "yelp",
                                       "instagram", "youtube", "pinterest", "blogRss", "googlePlacesId")},
        "settings": {"allowDuplicateContact": False, "allowDuplicateOpportunity": False,
                     "allowFacebookNameMerge": False, "disableContactTimezone": False},
        "reseller": {},
    }


PERMISSIONS = ("campaignsEnabled", "campaignsReadOnly", "contactsEnabled", "workflowsEnabled", "workflowsReadOnly",
               "triggersEnabled", "funnelsEnabled", "websitesEnabled", "opportunitiesEnabled",
               "dashboardStatsEnabled", "bulkRequestsEnabled", "appointmentsEnabled", "reviewsEnabled",
               "onlineListingsEnabled", "phoneCallEnabled", "conversationsEnabled", "assignedDataOnly",
               "adwordsReportingEnabled", "membershipEnabled", "facebookAdsReportingEnabled",
               "attributionsReportingEnabled", "settingsEnabled", "tagsEnabled", "leadValueEnabled",
               "marketingEnabled", "agentReportingEnabled", "botService", "socialPlanner", "bloggingEnabled",
               "invoiceEnabled", "affiliateManagerEnabled", "contentAiEnabled", "refundsEnabled",
               "recordPaymentEnabled", "cancelSubscriptionEnabled", "paymentsEnabled", "communitiesEnabled",
               "exportPaymentsEnabled")
RESTRICTED = frozenset({"campaignsReadOnly", "workflowsReadOnly", "assignedDataOnly", "botService"})


def make_users(rng: random.Random, company_id: str, location_id: str, n: int) -> list[Record]:
    """`GET /users/search` rows (UserSchema); the first user of a location is its admin."""
    users = []
    for i in range(n):
        first, last = pick(rng, FIRST), pick(rng, LAST)
        admin = i == 0
        users.append({
            "id": make_id(rng), "name": f"{first} {last}", "firstName": first, "lastName": last,
            "email": f"{SLUGS[first]}.{SLUGS[last]}.{i}@{location_id[:6].lower()}.example.com",
            "phone": f"+1555020{i:04d}", "extension": "",
            # admins: everything, nothing read-only; users: the same, some restricted to their own data
            "permissions": {name: name not in RESTRICTED or (name == "assignedDataOnly" and not admin and i % 2 == 1)
                            for name in PERMISSIONS},
            "scopes": "", "roles": {"type": "account", "role": "admin" if admin else "user",
                                    "locationIds": [location_id], "restrictSubAccount": False},
            "deleted": False, "lcPhone": {}, "platformLanguage": "en_US", "companyId": company_id,
        })
    return users


def make_custom_fields(rng: random.Random, location_id: str) -> list[Record]:
    """`GET /locations/{id}/customFields` rows: every contact dataType plus a few opportunity fields."""
    fields = [_field(rng, location_id, name, data_type, options, position, "contact")
              for position, (name, data_type, options) in enumerate(CONTACT_FIELDS)]
    fields += [_field(rng, location_id, name, data_type, options, position, "opportunity")
               for position, (name, data_type, options) in enumerate(OPPORTUNITY_FIELDS)]
    return fields


def _field(rng: random.Random, location_id: str, name: str, data_type: str, options: tuple[str, ...],
           position: int, model: str) -> Record:
    files = data_type == "FILE_UPLOAD"
    return {"id": make_id(rng), "name": name, "fieldKey": f"{model}.{name.lower().replace(' ', '_')}",
            "placeholder": name, "dataType": data_type, "position": position * 50,
            "picklistOptions": list(options), "picklistImageOptions": [], "isAllowedCustomOption": False,
            "isMultiFileAllowed": files, "maxFileLimit": 2 if files else 0, "locationId": location_id,
            "model": model}


def custom_value(rng: random.Random, data_type: str, options: list[str] | tuple[str, ...] = ()) -> Any:
    """A value typed the way the API returns it for `data_type` (numbers, lists, objects, epoch ms)."""
    options = options or ("alpha", "beta", "gamma", "delta")
    if data_type == "NUMERICAL":
        return below(rng, 10_000)
    if data_type == "MONETORY":
        return round(rng.random() * 50_000, 2)
    if data_type in ("CHECKBOX", "MULTIPLE_OPTIONS"):
        return sample(rng, tuple(options), 1 + below(rng, min(3, len(options))))
    if data_type in ("SINGLE_OPTIONS", "RADIO"):
        return pick(rng, tuple(options))
    if data_type == "DATE":
        return (ANCHOR_MS - below(rng, HISTORY_MS)) // DAY_MS * DAY_MS
    if data_type == "TEXTBOX_LIST":
        return {label: f"{pick(rng, FIRST)} {below(rng, 99)}" for label in options}
    if data_type == "FILE_UPLOAD":
        name = f"card-{below(rng, 10**6)}.pdf"
        return {str(uuid.UUID(int=rng.getrandbits(128), version=4)): {
            "url": f"https://files.example.com/{name}",
            "meta": {"fieldname": "file", "originalname": name, "mimetype": "application/pdf",
                     "size": 1 + below(rng, 10**6)}}}
    if data_type == "PHONE":
        return f"+1555{1_000_000 + below(rng, 9_000_000)}"
    if data_type == "EMAIL":
        return f"billing{below(rng, 10**6)}@example.org"
    if data_type == "LARGE_TEXT":
        return "Line one\nline two with ünïcode, quotes \" and commas, "
    return f"{pick(rng, FIRST)} {below(rng, 10**6)}"


# -- contacts -----------------------------------------------------------------------------------

def contact_times(rng: random.Random, n: int) -> list[tuple[int, int]]:
    """(dateAdded, dateUpdated) pairs over the seeded history; every 997th shares the previous
    contact's dateUpdated millisecond, because ties exist in reality and cursors must survive them."""
    pairs: list[tuple[int, int]] = []
    for i in range(n):
        added = ANCHOR_MS - 600_000 - below(rng, HISTORY_MS)
        updated = added + below(rng, min(90 * DAY_MS, ANCHOR_MS - 600_000 - added))
        if i % 997 == 1:
            updated = pairs[-1][1]
            added = min(added, updated)
        pairs.append((added, updated))
    return pairs


class ContactFactory:
    """Makes one location's contacts as `POST /contacts/search` returns them (~35 fields,
    CONTRACT §3.1; `searchAfter` is added per response).

    Read-only parts that real contacts repeat (default DND settings, the location's forms and
    campaigns as attribution sources) are built once and shared between contacts: 100,000
    contacts build in about two seconds and take far less memory. This is safe because nothing
    in the sandbox changes a stored record in place: updates copy the record and replace fields.
    """

    def __init__(self, location: Record, fields: list[Record], users: list[Record]) -> None:
        self.location_id: str = location["id"]
        self.region = next((r for r in REGIONS if r["timezone"] == location["timezone"]), REGIONS[0])
        self.fields = [f for f in fields if f["model"] == "contact"]
        self.user_ids = [u["id"] for u in users]
        palette = random.Random(self.location_id)  # from the location id: the same for every seed run
        forms = [make_id(palette) for _ in range(4)]
        self.attribution_sources = [
            {"url": f"https://clinic.example.com/landing/{page}", "campaign": campaign, "utmSource": source,
             "utmMedium": medium, "sessionSource": session, "medium": "form", "mediumId": forms[page % len(forms)]}
            for page in range(4) for campaign, source, medium, session in (
                ("spring", "google", "cpc", "Paid Search"), ("newsletter", "email", "email", "Referral"),
                ("", "", "", "Direct traffic"), ("launch", "facebook", "social", "Social media"))]
        self.attributions = {s: [{"utmSessionSource": s, "isFirst": True, "medium": "form"}] for s in SESSION_SOURCES}
        self.last_sources = {s: {"sessionSource": s, "medium": "form"} for s in SESSION_SOURCES}

    def make(self, rng: random.Random, added_ms: int, updated_ms: int) -> Record:
        region = self.region
        contact_id = make_id(rng)
        roll = rng.random()
        first = pick(rng, FIRST) if roll > 0.03 else None  # a few contacts have no name at all
        last = pick(rng, LAST) if roll > 0.06 else None
        name = " ".join(part for part in (first, last) if part) or None
        handle = f"{SLUGS.get(first or '', 'contact')}.{contact_id[:6].lower()}"
        email = None if rng.random() < 0.08 else f"{handle}@example.com"
        dnd = rng.random() < 0.1
        local = rng.random() < 0.8
        attribution = pick(rng, self.attribution_sources)
        return {
            "id": contact_id, "locationId": self.location_id, "firstName": first, "lastName": last,
            "contactName": name.lower() if name else None, "email": email,
            "phone": None if rng.random() < 0.05 else f"{region['phone']}{1000 + below(rng, 9000)}",
            "phoneLabel": "Mobile", "companyName": pick(rng, COMPANIES) if rng.random() < 0.6 else None,
            "address": f"{1 + below(rng, 999)} {region['street']}" if local else None,
            "city": region["city"] if local else None, "state": region["state"] if local else None,
            "postalCode": region["postalCode"] if local else None, "country": region["country"],
            "website": f"https://{contact_id[:8].lower()}.example.net" if rng.random() < 0.2 else None,
            "timezone": region["timezone"] if local else pick(rng, TIMEZONES),
            "type": "customer" if rng.random() < 0.3 else "lead", "source": pick(rng, SOURCES),
            "tags": sample(rng, TAGS, below(rng, 6)), "dnd": dnd,
            "dndSettings": _dnd_settings(rng) if dnd else DND_OFF, "inboundDndSettings": INBOUND_DND_OFF,
            "assignedTo": pick(rng, self.user_ids) if self.user_ids and rng.random() < 0.7 else None,
            "followers": sample(rng, self.user_ids, below(rng, 3)),
            "businessId": None if rng.random() < 0.95 else make_id(rng), "businessName": None,
            "customFields": [{"id": f["id"], "value": custom_value(rng, f["dataType"], f["picklistOptions"])}
                             for f in sample(rng, self.fields, below(rng, 5))],
            "attributions": self.attributions[attribution["sessionSource"]],
            "attributionSource": attribution,
            "lastAttributionSource": self.last_sources[pick(rng, SESSION_SOURCES)],
            "dateAdded": iso_ms(added_ms), "dateUpdated": iso_ms(updated_ms),
            "dateOfBirth": None if rng.random() < 0.5 else (ANCHOR_MS - (18 + below(rng, 62)) * 365 * DAY_MS
                                                             - below(rng, 365) * DAY_MS),
            "validEmail": None if email is None else rng.random() < 0.9,
        }


DND_OFF = {ch: {"status": "inactive", "message": "", "code": ""} for ch in DND_CHANNELS}
INBOUND_DND_OFF = {"all": {"status": "inactive", "message": ""}}


def _dnd_settings(rng: random.Random) -> Record:
    return {ch: {"status": pick(rng, DND_STATUSES), "message": "", "code": ""} for ch in DND_CHANNELS}
