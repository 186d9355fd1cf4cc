"""The sandbox's state: locations, their records and tokens; ground truth and mutations.

Thread-safe: the server thread reads and the test/control thread mutates, both under `lock`.
Mutations stamp `dateUpdated` with the current time and reach search only after a per-write lag
(see `index.py`); ground truth sees them at once.
"""

from __future__ import annotations

import gc
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from . import data
from .config import SandboxConfig
from .index import IndexedRecords, Record
from .tokens import TokenInfo, TokenRegistry

CONTACT_SORTS = {"dateUpdated": lambda r: data.ms_of(r["dateUpdated"]),
                 "dateAdded": lambda r: data.ms_of(r["dateAdded"])}


@dataclass
class Location:
    record: Record
    users: list[Record]
    custom_fields: list[Record]
    contacts: IndexedRecords
    extra: dict[str, Any] = field(default_factory=dict)  # other resource families (crm.py)

    @property
    def id(self) -> str:
        return str(self.record["id"])

    def fields_of(self, model: str) -> list[Record]:
        return [f for f in self.custom_fields if model == "all" or f["model"] == model]


class World:
    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.lock = threading.RLock()
        self.rng = random.Random(config.seed)  # mutations draw from here: same calls, same changes
        self.company_id = data.make_id(self.rng)
        self.locations: dict[str, Location] = {}
        self.tokens = TokenRegistry()
        self.pits: dict[str, str] = {}  # location id -> its Private Integration Token
        self._lag_rng = random.Random(config.seed + 1)
        # Seeding allocates millions of objects that all stay alive: the cyclic GC would rescan the
        # growing heap again and again (half the generation time) to find nothing.
        collecting = gc.isenabled()
        gc.disable()
        try:
            for index, n_contacts in enumerate(config.contacts_per_location):
                self._seed_location(index, n_contacts)
        finally:
            if collecting:
                gc.enable()
                # One full collection now moves the seeded objects to the oldest generation; left
                # young, the first collections after seeding would each rescan them all and stall
                # whichever request triggered them for a second or more.
                gc.collect()

    def _seed_location(self, index: int, n_contacts: int) -> None:
        rng = random.Random(f"{self.config.seed}/{index}")  # per location: sizes of others don't shift it
        record = data.make_location(rng, self.company_id, index)
        users = data.make_users(rng, self.company_id, record["id"], self.config.users_per_location)
        fields = data.make_custom_fields(rng, record["id"])
        contacts = IndexedRecords(CONTACT_SORTS)
        factory = data.ContactFactory(record, fields, users)
        contacts.seed([factory.make(rng, added, updated) for added, updated in data.contact_times(rng, n_contacts)])
        location = Location(record, users, fields, contacts)
        self.locations[location.id] = location
        from .crm import seed_crm  # the other resource families; imported late (crm builds on World)

        seed_crm(self, location, index)
        token = data.pit_token(rng)
        self.pits[location.id] = token
        self.tokens.add(token, TokenInfo("pit", "Location", self.company_id, location.id))

    # -- lookups ------------------------------------------------------------------------------

    def location(self, location_id: str) -> Location | None:
        return self.locations.get(location_id)

    def lag(self) -> float:
        """This write's index lag: uniform in [index_lag_s / 2, index_lag_s]."""
        return self._lag_rng.uniform(self.config.index_lag_s / 2, self.config.index_lag_s)

    # -- contact mutations (dateUpdated = now) ------------------------------------------------

    def update_contacts(self, location_id: str, n: int) -> list[str]:
        """Change names, email, tags and custom-field values of n contacts. About one in six loses
        all its custom fields and one in six all its tags: consumers must replace, not accumulate."""
        with self.lock:
            loc = self.locations[location_id]
            ids = self.rng.sample(sorted(loc.contacts.truth), min(n, len(loc.contacts.truth)))
            contact_fields = loc.fields_of("contact")
            for contact_id in ids:
                record = dict(loc.contacts.truth[contact_id])
                first, last = data.pick(self.rng, data.FIRST), data.pick(self.rng, data.LAST)
                record.update(firstName=first, lastName=last, contactName=f"{first} {last}".lower(),
                              email=f"changed.{data.make_id(self.rng)[:8].lower()}@example.com", validEmail=True)
                if self.rng.random() < 1 / 6:
                    record["customFields"] = []
                else:
                    chosen = self.rng.sample(contact_fields, 1 + data.below(self.rng, 4))
                    record["customFields"] = [
                        {"id": f["id"], "value": data.custom_value(self.rng, f["dataType"], f["picklistOptions"])}
                        for f in chosen]
                record["tags"] = [] if self.rng.random() < 1 / 6 else self.rng.sample(data.TAGS,
                                                                                     1 + data.below(self.rng, 5))
                stamp = max(data.now_ms(), data.ms_of(record["dateUpdated"]) + 1)
                record["dateUpdated"] = data.iso_ms(stamp)
                loc.contacts.write(contact_id, record, self.lag())
            return ids

    def edit_contact(self, location_id: str, contact_id: str, changes: dict[str, Any]) -> Record:
        """Apply `changes` (API field names) to one contact, as a user's edit in the UI would."""
        with self.lock:
            loc = self.locations[location_id]
            record = {**loc.contacts.truth[contact_id], **changes}
            record["dateUpdated"] = data.iso_ms(max(data.now_ms(), data.ms_of(record["dateUpdated"]) + 1))
            loc.contacts.write(contact_id, record, self.lag())
            return dict(record)

    def create_contacts(self, location_id: str, n: int) -> list[str]:
        with self.lock:
            loc = self.locations[location_id]
            factory = data.ContactFactory(loc.record, loc.custom_fields, loc.users)
            ids = []
            for _ in range(n):
                stamp = data.now_ms()
                record = factory.make(self.rng, stamp, stamp)
                loc.contacts.write(record["id"], record, self.lag())
                ids.append(record["id"])
            return ids

    def delete_contacts(self, location_id: str, n: int) -> list[str]:
        with self.lock:
            loc = self.locations[location_id]
            ids = self.rng.sample(sorted(loc.contacts.truth), min(n, len(loc.contacts.truth)))
            for contact_id in ids:
                loc.contacts.write(contact_id, None, self.lag())
            return ids

    def wait_for_index(self, timeout_s: float = 60.0) -> None:
        """Sleep until every write made so far is visible to search (bounded by `timeout_s`)."""
        deadline = time.monotonic() + timeout_s
        with self.lock:
            indexes = [loc.contacts for loc in self.locations.values()]
            indexes += [x for loc in self.locations.values() for x in loc.extra.values()
                        if isinstance(x, IndexedRecords)]
            until = max((index.pending_until() for index in indexes), default=0.0)
        time.sleep(max(0.0, min(until, deadline) - time.monotonic()) + 0.01)
