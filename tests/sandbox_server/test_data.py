"""Seeded data: deterministic, shaped like the API, quick to generate at volume."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

from highlevel_sync.sandbox import Sandbox, SandboxConfig
from highlevel_sync.sandbox.world import World

ISO_MS_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
ID = re.compile(r"[A-Za-z0-9]{20}")


def test_same_seed_same_world_other_seed_other_world() -> None:
    config = SandboxConfig(contacts_per_location=(400, 30))
    one, two, other = World(config), World(config), World(SandboxConfig(contacts_per_location=(400, 30), seed=8))
    assert one.company_id == two.company_id != other.company_id
    assert list(one.locations) == list(two.locations)
    for loc in one.locations:
        a, b = one.locations[loc], two.locations[loc]
        assert a.contacts.truth == b.contacts.truth and a.record == b.record
        assert a.users == b.users and a.custom_fields == b.custom_fields
    assert one.pits == two.pits
    assert set(one.locations).isdisjoint(other.locations)
    assert one.update_contacts(next(iter(one.locations)), 5) == two.update_contacts(next(iter(two.locations)), 5)


def test_locations_are_seeded_independently_of_each_others_size() -> None:
    small = World(SandboxConfig(contacts_per_location=(50, 30)))
    large = World(SandboxConfig(contacts_per_location=(90, 30)))
    assert list(small.locations)[1] == list(large.locations)[1]
    second = list(small.locations)[1]
    assert small.locations[second].contacts.truth == large.locations[second].contacts.truth


def test_contact_shapes_and_timestamps(big: Sandbox) -> None:
    loc = big.location_ids[0]
    contacts = big.truth_contacts(loc)
    assert len(contacts) == 12_500
    user_ids = {u["id"] for u in big.truth_users(loc)}
    ten_minutes_ago = (datetime.now(UTC) - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    for contact in contacts:
        assert ID.fullmatch(contact["id"]) and contact["locationId"] == loc
        assert ISO_MS_Z.fullmatch(contact["dateAdded"]) and ISO_MS_Z.fullmatch(contact["dateUpdated"])
        assert contact["dateAdded"] <= contact["dateUpdated"] < ten_minutes_ago
        assert contact["type"] in ("lead", "customer") and 0 <= len(contact["tags"]) <= 5
        assert contact["assignedTo"] is None or contact["assignedTo"] in user_ids
        assert set(contact["followers"]) <= user_ids
        assert contact["dateOfBirth"] is None or isinstance(contact["dateOfBirth"], int)
    assert any(c["dateOfBirth"] is None for c in contacts) and any(c["dateOfBirth"] for c in contacts)
    assert any(c["dnd"] and "active" in {s["status"] for s in c["dndSettings"].values()} for c in contacts)
    assert 15 <= len({t for c in contacts for t in c["tags"]}) <= 25
    oldest = min(c["dateAdded"] for c in contacts)
    assert oldest < (datetime(2026, 1, 1, tzinfo=UTC) - timedelta(days=600)).isoformat()


def test_ids_are_opaque_20_character_strings(big: Sandbox) -> None:
    loc = big.location_ids[0]
    ids = [big.company_id, *big.location_ids, *(u["id"] for u in big.truth_users(loc)),
           *(f["id"] for f in big.truth_custom_fields(loc, "all"))]
    assert all(ID.fullmatch(i) for i in ids) and len(set(ids)) == len(ids)


def test_generating_100k_contacts_takes_seconds() -> None:
    started = time.perf_counter()
    world = World(SandboxConfig(contacts_per_location=(100_000,)))
    elapsed = time.perf_counter() - started
    assert len(next(iter(world.locations.values())).contacts.truth) == 100_000
    assert elapsed < 20, f"generating 100,000 contacts took {elapsed:.1f} s"
