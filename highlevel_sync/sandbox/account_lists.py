"""The account's small lists: campaigns, workflows, tags, custom values, trigger links, businesses.

Shapes follow campaigns.json, workflows.json, locations.json (tags, custom values), links.json and
businesses.json, ids included: workflows have UUIDs, businesses 24-hex ids, the rest HighLevel's
20-character ids. The tags are the ones contacts carry (`data.TAGS`). Sizes shrink with the
location's position (a few dozen rows in the first, a handful in later ones). Seeded from their own
random stream, so adding them changed none of the other seeded data.
"""

from __future__ import annotations

import random
import uuid

from . import data
from .index import Record
from .objects_data import mongo_id
from .world import Location, World

CAMPAIGNS = ("Spring Recall", "New Patient Drip", "Whitening Promo", "Birthday Wishes", "Reactivation",
             "Review Request", "Holiday Hours")
WORKFLOWS = ("Appointment Reminder", "Lead Nurture", "No-show Follow-up", "Invoice Reminder", "Welcome Series",
             "Reactivation", "Review Booster", "Birthday Offer", "Missed Call Text Back", "Referral Thank You",
             "Form Submitted", "Pipeline Stage Alert")
CUSTOM_VALUES = (("Office Phone", "+1 212 555 0100"), ("Booking Link", "https://clinic.example.com/book"),
                 ("Review Link", "https://g.page/r/clinic-review"), ("Owner Name", "Pat Owner"),
                 ("Opening Hours", "Mon-Fri 9:00-17:00"), ("Promo Code", "SMILE10"))
LINKS = (("Book Now", "https://clinic.example.com/book"), ("Pricing", "https://clinic.example.com/pricing"),
         ("Reviews", "https://clinic.example.com/reviews"), ("Whitening Offer", "https://clinic.example.com/offer"),
         ("Newsletter", "https://clinic.example.com/news"))
BUSINESS_NAMES = ("Acme Dental Supply", "Globex", "Initech", "Umbrella Health", "Stark & Sons", "Wayne Clinics",
                  "Hooli", "Vandelay Imports", "Soylent Foods", "Cyberdyne", "Tyrell Labs", "Wonka Sweets")


def seed_account_lists(world: World, loc: Location, index: int) -> None:
    rng = random.Random(f"{world.config.seed}/account-lists/{index}")
    share = 1.0 if index == 0 else 0.5 if index == 1 else 0.25
    lid = loc.id
    campaigns = [{"id": data.make_id(rng), "name": name, "status": "draft" if k % 3 == 2 else "published",
                  "locationId": lid} for k, name in enumerate(CAMPAIGNS[:_n(CAMPAIGNS, share)])]
    workflows = []
    for k, name in enumerate(WORKFLOWS[:_n(WORKFLOWS, share)]):
        created = data.ANCHOR_MS - data.below(rng, data.HISTORY_MS)
        updated = created + data.below(rng, data.ANCHOR_MS - created)
        workflows.append({"id": str(uuid.UUID(int=rng.getrandbits(128), version=4)), "name": name,
                          "status": "draft" if k % 4 == 3 else "published", "version": 1 + data.below(rng, 6),
                          "createdAt": data.iso_ms(created), "updatedAt": data.iso_ms(updated), "locationId": lid})
    tags = [{"id": data.make_id(rng), "name": name, "locationId": lid} for name in data.TAGS]
    custom_values = [{"id": data.make_id(rng), "name": name,
                      "fieldKey": f"{{{{ custom_values.{name.lower().replace(' ', '_')} }}}}", "value": value,
                      "locationId": lid} for name, value in CUSTOM_VALUES[:_n(CUSTOM_VALUES, share)]]
    links = []
    for name, url in LINKS[:_n(LINKS, share)]:
        link_id = data.make_id(rng)
        links.append({"id": link_id, "name": name, "redirectTo": url, "fieldKey": f"{{{{trigger_link.{link_id}}}}}",
                      "locationId": lid})
    n_businesses = 30 if index == 0 else 5 if index == 1 else 2
    businesses = [make_business(rng, lid, k) for k in range(n_businesses)]
    loc.extra.update(campaigns=campaigns, workflows=workflows, tags=tags, custom_values=custom_values, links=links,
                     businesses=businesses)


def _n(names: tuple[object, ...], share: float) -> int:
    return max(1, round(len(names) * share))


def make_business(rng: random.Random, location_id: str, k: int) -> Record:
    """A `BusinessDto` of `GET /businesses/`."""
    created = data.ANCHOR_MS - data.below(rng, data.HISTORY_MS)
    updated = created + data.below(rng, data.ANCHOR_MS - created)
    name = BUSINESS_NAMES[k % len(BUSINESS_NAMES)] + ("" if k < len(BUSINESS_NAMES) else f" {k}")
    slug = name.lower().replace(" & ", "-").replace(" ", "-")
    return {"id": mongo_id(rng, created // 1000), "name": name, "phone": f"+1555030{k:04d}",
            "email": f"office@{slug}.example.com", "website": f"{slug}.example.com",
            "address": f"{1 + data.below(rng, 999)} Market Street", "city": "Springfield",
            "description": "", "state": "IL", "postalCode": "62701", "country": "US", "updatedBy": {},
            "locationId": location_id, "createdBy": {}, "createdAt": data.iso_ms(created),
            "updatedAt": data.iso_ms(updated)}


def rename_tag(world: World, location_id: str) -> str:
    """Rename one tag (as a user does in the settings); returns its id. Tags carry no update time."""
    with world.lock:
        tags = world.locations[location_id].extra["tags"]
        at = data.below(world.rng, len(tags))
        tag = tags[at]
        tags[at] = {**tag, "name": f"{tag['name']}-renamed-{data.make_id(world.rng)[:4].lower()}"}
        return str(tag["id"])
