"""The sandbox's state: locations, their records, tokens; ground truth and mutations. Thread-safe."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from . import data
from .config import SandboxConfig
from .index import IndexedRecords, Record


def _ms(value: str) -> int:
    return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)


CONTACT_SORTS = {"dateUpdated": lambda r: _ms(r["dateUpdated"]), "dateAdded": lambda r: _ms(r["dateAdded"])}


@dataclass
class TokenInfo:
    kind: str  # "pit" | "oauth"
    user_type: str  # "Location" | "Company"
    company_id: str
    location_id: str | None = None
    scopes: frozenset[str] = frozenset({"*"})
    expires_at: float | None = None  # monotonic-free wall clock seconds; None = never


@dataclass
class Location:
    record: Record
    users: list[Record]
    custom_fields: list[Record]
    contacts: IndexedRecords
    extra: dict[str, Any] = field(default_factory=dict)  # other resource families

    @property
    def id(self) -> str:
        return str(self.record["id"])


class World:
    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.lock = threading.RLock()
        self.rng = random.Random(config.seed)
        self.company_id = data.make_id(self.rng)
        self.locations: dict[str, Location] = {}
        self.tokens: dict[str, TokenInfo] = {}
        self.pits: dict[str, str] = {}
        self._lag_rng = random.Random(config.seed + 1)
        for index, n_contacts in enumerate(config.contacts_per_location):
            self._seed_location(index, n_contacts)

    def _seed_location(self, index: int, n_contacts: int) -> None:
        rng = random.Random(f"{self.config.seed}/{index}")
        record = data.make_location(rng, self.company_id, index)
        users = data.make_users(rng, self.company_id, record["id"], self.config.users_per_location)
        fields = data.make_custom_fields(rng, record["id"])
        contacts = IndexedRecords(CONTACT_SORTS)
        contacts.seed([data.make_contact(rng, record["id"], fields, users, added, updated)
                       for added, updated in data.contact_times(rng, n_contacts)])
        location = Location(record, users, fields, contacts)
        self.locations[location.id] = location
        from .crm import seed_crm  # the other resource families; imported late (crm builds on World)

        seed_crm(self, location, index)
        token = data.pit_token(rng)
        self.pits[location.id] = token
        self.tokens[token] = TokenInfo("pit", "Location", self.company_id, location.id)

    # -- lookups ------------------------------------------------------------------------------

    def location(self, location_id: str) -> Location | None:
        return self.locations.get(location_id)

    def lag(self) -> float:
        return self._lag_rng.uniform(self.config.index_lag_s / 2, self.config.index_lag_s)

    # -- contact mutations (dateUpdated = now) ------------------------------------------------

    def update_contacts(self, location_id: str, n: int) -> list[str]:
        with self.lock:
            loc = self.locations[location_id]
            ids = self.rng.sample(sorted(loc.contacts.truth), min(n, len(loc.contacts.truth)))
            for contact_id in ids:
                record = dict(loc.contacts.truth[contact_id])
                record["firstName"] = self.rng.choice(data.FIRST)
                record["email"] = f"changed.{self.rng.randint(1, 10**9)}@example.com"
                roll = self.rng.random()
                contact_fields = [f for f in loc.custom_fields if f["model"] == "contact"]
                if roll < 0.2:
                    record["customFields"] = []  # all values removed
                    record["tags"] = []
                else:
                    chosen = self.rng.sample(contact_fields, self.rng.randint(1, 4))
                    record["customFields"] = [{"id": f["id"], "value": data.custom_value(self.rng, f["dataType"])}
                                              for f in chosen]
                    record["tags"] = self.rng.sample(data.TAGS, self.rng.randint(0, 5))
                record["dateUpdated"] = data.iso_ms(max(data.now_ms(), _ms(record["dateUpdated"]) + 1))
                loc.contacts.write(contact_id, record, self.lag())
            return ids

    def create_contacts(self, location_id: str, n: int) -> list[str]:
        with self.lock:
            loc = self.locations[location_id]
            ids = []
            for _ in range(n):
                stamp = data.now_ms()
                record = data.make_contact(self.rng, location_id, loc.custom_fields, loc.users, stamp, stamp)
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
        deadline = time.monotonic() + timeout_s
        with self.lock:
            until = max((loc.contacts.pending_until() for loc in self.locations.values()), default=0.0)
            for loc in self.locations.values():
                for extra in loc.extra.values():
                    if isinstance(extra, IndexedRecords):
                        until = max(until, extra.pending_until())
        time.sleep(max(0.0, min(until, deadline) - time.monotonic()) + 0.01)
