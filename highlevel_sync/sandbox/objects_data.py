"""Custom objects of the sandbox world: schemas, field definitions, records, associations, relations.

Shapes follow objects.json, custom-fields.json and associations.json. Ids are 24-hex Mongo ids
(a record's first 8 hex digits are its creation second, as in real ObjectIds). A record's
`properties` are keyed by the field key without the object prefix; values are typed as the spec's
examples show them: MONETORY `{currency, value}`, DATE `YYYY-MM-DD`, options by option key,
FILE_UPLOAD `[{url}]`, TEXTBOX_LIST flattened to `<field>.<option>` keys.

Each custom object's records live in their own `IndexedRecords` at `loc.extra["object_records:<key>"]`,
so search trails writes as the contact index does (and `wait_for_index` covers them); reads by id
and relations are direct. Seeded from their own random stream: adding them changed no other data.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from . import data
from .index import IndexedRecords, Record
from .world import Location, World

RECORDS_PREFIX = "object_records:"
STANDARD_OBJECTS = (  # key, singular, plural, primary display property
    ("contact", "Contact", "Contacts", "contact.name"),
    ("opportunity", "Opportunity", "Opportunities", "opportunity.name"),
    ("business", "Company", "Companies", "business.name"),
)
OPTION_TYPES = frozenset({"SINGLE_OPTIONS", "MULTIPLE_OPTIONS", "RADIO", "CHECKBOX", "TEXTBOX_LIST"})
DATA_TYPES = ("TEXT", "LARGE_TEXT", "NUMERICAL", "PHONE", "MONETORY", "CHECKBOX", "SINGLE_OPTIONS",
              "MULTIPLE_OPTIONS", "DATE", "TEXTBOX_LIST", "FILE_UPLOAD", "RADIO")


@dataclass(frozen=True)
class ObjectDef:
    """A custom object as a user would define it: its fields are (name, dataType, option labels)."""

    name: str  # the key after `custom_objects.`
    singular: str
    plural: str
    fields: tuple[tuple[str, str, tuple[str, ...]], ...]  # the first one is the primary display property
    contact_labels: tuple[str, str]  # association labels (this object's side, the contact's side)
    opportunity_labels: tuple[str, str]

    @property
    def key(self) -> str:
        return f"custom_objects.{self.name}"


PETS = ObjectDef("pets", "Pet", "Pets", (
    ("Pet Name", "TEXT", ()), ("Species", "SINGLE_OPTIONS", ("Dog", "Cat", "Rabbit", "Parrot")),
    ("Weight Kg", "NUMERICAL", ()), ("Date Of Birth", "DATE", ()), ("Annual Premium", "MONETORY", ()),
    ("Vaccinations", "MULTIPLE_OPTIONS", ("Rabies", "Distemper", "Parvovirus", "Leptospirosis")),
    ("Insured", "CHECKBOX", ("Yes",)), ("Vet Notes", "LARGE_TEXT", ()), ("Owner Phone", "PHONE", ()),
    ("Size", "RADIO", ("Small", "Medium", "Large")), ("Emergency Contact", "TEXTBOX_LIST", ("Name", "Phone")),
    ("Microchip Documents", "FILE_UPLOAD", ()),
), ("Pet", "Owner"), ("Pet", "Policy Deal"))
PROPERTIES = ObjectDef("properties", "Property", "Properties", (
    ("Address", "TEXT", ()), ("Listing Price", "MONETORY", ()), ("Bedrooms", "NUMERICAL", ()),
    ("Listed On", "DATE", ()), ("Property Type", "SINGLE_OPTIONS", ("House", "Apartment", "Townhouse", "Land")),
    ("Amenities", "MULTIPLE_OPTIONS", ("Pool", "Garage", "Garden", "Gym")),
    ("Features", "CHECKBOX", ("Furnished", "Pet Friendly", "Solar")), ("Status", "RADIO", ("Listed", "Sold")),
    ("Description", "LARGE_TEXT", ()),
), ("Property", "Buyer"), ("Property", "Sale"))
POLICIES = ObjectDef("policies", "Policy", "Policies", (
    ("Policy Number", "TEXT", ()), ("Premium", "MONETORY", ()), ("Start Date", "DATE", ()),
    ("Coverage", "SINGLE_OPTIONS", ("Basic", "Standard", "Premium")),
), ("Policy", "Policy Holder"), ("Policy", "Renewal"))
CUSTOM_OBJECTS = (PETS, PROPERTIES, POLICIES)


def snake(name: str) -> str:
    return name.lower().replace(" ", "_")


def mongo_id(rng: random.Random, seconds: int) -> str:
    """A 24-hex ObjectId: creation second, then 8 random bytes."""
    return f"{seconds & 0xFFFFFFFF:08x}{rng.getrandbits(64):016x}"


def objects_of(world: World, index: int) -> list[tuple[ObjectDef, int]]:
    """(definition, record count) of the custom objects location number `index` gets."""
    sizes = world.config.object_records_per_location
    counts = sizes[index] if index < len(sizes) else ()
    return [(CUSTOM_OBJECTS[(2 * index + j) % len(CUSTOM_OBJECTS)], n) for j, n in enumerate(counts)]


def records_of(loc: Location, object_key: str) -> IndexedRecords | None:
    found = loc.extra.get(RECORDS_PREFIX + object_key)
    return found if isinstance(found, IndexedRecords) else None


def custom_keys(loc: Location) -> list[str]:
    return [s["key"] for s in loc.extra.get("object_schemas", []) if not s["standard"]]


# -- seeding ------------------------------------------------------------------------------------

def seed_objects(world: World, loc: Location, index: int) -> None:
    rng = random.Random(f"{world.config.seed}/objects/{index}")
    defined = data.ANCHOR_MS - data.HISTORY_MS - 30 * data.DAY_MS
    schemas = [_schema(rng, loc.id, key, singular, plural, primary, True, defined)
               for key, singular, plural, primary in STANDARD_OBJECTS]
    fields: list[Record] = []
    folders: list[Record] = []
    associations = [_association(rng, loc.id, "business_contact", ("business", "Company"), ("contact", "Contacts"),
                                 "SYSTEM_DEFINED", defined)]
    relations: dict[str, Record] = {}
    by_record: dict[str, set[str]] = {}
    contact_ids = sorted(loc.contacts.truth)
    opportunities = loc.extra.get("opportunities")
    opportunity_ids = sorted(opportunities.truth) if isinstance(opportunities, IndexedRecords) else []
    user_ids = [u["id"] for u in loc.users]
    for definition, count in objects_of(world, index):
        key = definition.key
        schema = _schema(rng, loc.id, key, definition.singular, definition.plural,
                         f"{key}.{snake(definition.fields[0][0])}", False, defined)
        schemas.append(schema)
        folder = {"id": data.make_id(rng), "name": f"{definition.singular} Details", "objectKey": key,
                  "locationId": loc.id, "dateAdded": data.iso_ms(defined), "dateUpdated": data.iso_ms(defined)}
        folders.append(folder)
        own = [field_row(rng, loc.id, key, folder["id"], name, data_type, options, defined)
               for name, data_type, options in definition.fields]
        fields += own
        to_contact = _association(rng, loc.id, f"{definition.name}_contact", (key, definition.contact_labels[0]),
                                  ("contact", definition.contact_labels[1]), "USER_DEFINED", defined)
        to_opportunity = _association(rng, loc.id, f"{definition.name}_opportunity",
                                      (key, definition.opportunity_labels[0]),
                                      ("opportunity", definition.opportunity_labels[1]), "USER_DEFINED", defined)
        associations += [to_contact, to_opportunity]
        records = [make_record(rng, schema, own, user_ids, created, updated)
                   for created, updated in record_times(rng, count)]
        index_ = IndexedRecords({"createdAt": lambda r: data.ms_of(r["createdAt"])})
        index_.seed(records)
        loc.extra[RECORDS_PREFIX + key] = index_
        for record in records:
            for other in data.sample(rng, contact_ids, 1 + data.below(rng, 2)) if rng.random() < 0.6 else []:
                add_relation_row(rng, loc.id, to_contact, record["id"], other, relations, by_record)
            if opportunity_ids and rng.random() < 0.3:
                add_relation_row(rng, loc.id, to_opportunity, record["id"], data.pick(rng, opportunity_ids),
                                 relations, by_record)
    loc.extra.update(object_schemas=schemas, object_fields=fields, object_folders=folders,
                     associations=associations, relations=relations, relations_by_record=by_record)


def _schema(rng: random.Random, location_id: str, key: str, singular: str, plural: str, primary: str,
            standard: bool, stamp: int) -> Record:
    """An `ICustomObjectSchema` row of `GET /objects/`."""
    return {"id": mongo_id(rng, stamp // 1000), "standard": standard, "key": key,
            "labels": {"singular": singular, "plural": plural},
            "description": f"{plural} of this sub-account", "locationId": location_id,
            "primaryDisplayProperty": primary, "dateAdded": data.iso_ms(stamp), "dateUpdated": data.iso_ms(stamp),
            "type": "SYSTEM_DEFINED" if standard else "USER_DEFINED"}


def field_row(rng: random.Random, location_id: str, object_key: str, folder_id: str, name: str, data_type: str,
              options: tuple[str, ...], stamp: int) -> Record:
    """An `ICustomField` row of `GET /custom-fields/object-key/{objectKey}`; the optional keys appear
    only for the types the spec says they belong to."""
    row: Record = {"id": data.make_id(rng), "name": name, "description": "", "placeholder": name,
                   "showInForms": True, "locationId": location_id, "objectKey": object_key, "dataType": data_type,
                   "parentId": folder_id, "fieldKey": f"{object_key}.{snake(name)}",
                   "dateAdded": data.iso_ms(stamp), "dateUpdated": data.iso_ms(stamp)}
    if data_type in OPTION_TYPES:
        row["options"] = [{"key": snake(label), "label": label} for label in options or ("Option A", "Option B")]
    if data_type == "RADIO":
        row["allowCustomOption"] = False
    if data_type == "FILE_UPLOAD":
        row.update(acceptedFormats="all", maxFileLimit=2)
    return row


def _association(rng: random.Random, location_id: str, key: str, first: tuple[str, str], second: tuple[str, str],
                 kind: str, stamp: int) -> Record:
    """A row of `GET /associations/` (GetPostSuccessfulResponseDto's fields)."""
    return {"id": mongo_id(rng, stamp // 1000), "key": key, "locationId": location_id,
            "firstObjectKey": first[0], "firstObjectLabel": first[1], "secondObjectKey": second[0],
            "secondObjectLabel": second[1], "associationType": kind}


def add_relation_row(rng: random.Random, location_id: str, association: Record, first_id: str, second_id: str,
                     relations: dict[str, Record], by_record: dict[str, set[str]]) -> Record:
    """A relation as the Relation* webhooks carry it; indexed under both of its records."""
    seconds = int(first_id[:8], 16) if len(first_id) == 24 else data.ANCHOR_MS // 1000
    row = {"id": mongo_id(rng, seconds), "associationId": association["id"],
           "firstObjectKey": association["firstObjectKey"], "firstRecordId": first_id,
           "secondObjectKey": association["secondObjectKey"], "secondRecordId": second_id,
           "locationId": location_id}
    relations[row["id"]] = row
    by_record.setdefault(first_id, set()).add(row["id"])
    by_record.setdefault(second_id, set()).add(row["id"])
    return row


# -- records --------------------------------------------------------------------------------------

def record_times(rng: random.Random, n: int) -> list[tuple[int, int]]:
    """(createdAt, updatedAt) pairs; every 97th record shares the previous one's createdAt millisecond
    (imports create records in bursts), so a searchAfter cursor must break ties by id."""
    pairs: list[tuple[int, int]] = []
    for i in range(n):
        created = data.ANCHOR_MS - 600_000 - data.below(rng, data.HISTORY_MS)
        if i % 97 == 1:
            created = pairs[-1][0]
        updated = created + data.below(rng, min(60 * data.DAY_MS, data.ANCHOR_MS - 600_000 - created))
        pairs.append((created, updated))
    return pairs


def make_record(rng: random.Random, schema: Record, fields: list[Record], user_ids: list[str], created_ms: int,
                updated_ms: int) -> Record:
    """A record as `POST /objects/{key}/records/search` returns it (`searchAfter` added per answer)."""
    owner = [data.pick(rng, user_ids)] if user_ids and rng.random() < 0.8 else []
    created_by = _by(rng, user_ids, created_ms)
    return {"id": mongo_id(rng, created_ms // 1000), "owner": owner,
            "followers": data.sample(rng, user_ids, data.below(rng, 3)),
            "properties": make_properties(rng, schema, fields), "createdAt": data.iso_ms(created_ms),
            "updatedAt": data.iso_ms(updated_ms), "locationId": schema["locationId"], "objectId": schema["id"],
            "objectKey": schema["key"], "createdBy": created_by,
            "lastUpdatedBy": created_by if updated_ms == created_ms else _by(rng, user_ids, updated_ms)}


def _by(rng: random.Random, user_ids: list[str], stamp: int) -> Record:
    api = rng.random() < 0.3
    return {"channel": "API" if api else "WEB_USER", "createdAt": data.iso_ms(stamp),
            "source": "PUBLIC_API" if api else "WEB_USER",
            "sourceId": data.pick(rng, user_ids) if user_ids else data.make_id(rng)}


def make_properties(rng: random.Random, schema: Record, fields: list[Record]) -> Record:
    """Values for the primary display property and about three quarters of the other fields."""
    primary = schema["primaryDisplayProperty"]
    props: Record = {}
    for field in fields:
        if field["fieldKey"] == primary or rng.random() < 0.75:
            props.update(property_values(rng, field, len(schema["key"]) + 1))
    return props


def property_values(rng: random.Random, field: Record, prefix_len: int) -> Record:
    """One field's entries in `properties` (TEXTBOX_LIST gives one entry per option)."""
    key = field["fieldKey"][prefix_len:]
    data_type = field["dataType"]
    options = [o["key"] for o in field.get("options", [])]
    if data_type == "TEXTBOX_LIST":
        return {f"{key}.{option}": f"{data.pick(rng, data.FIRST)} {data.below(rng, 99)}" for option in options}
    value: Any
    if data_type == "MONETORY":
        value = {"currency": "default", "value": round(rng.random() * 5_000, 2)}
    elif data_type == "DATE":
        day = (data.ANCHOR_MS - data.below(rng, data.HISTORY_MS)) // 1000
        value = datetime.fromtimestamp(day, tz=UTC).strftime("%Y-%m-%d")
    elif data_type == "NUMERICAL":
        value = data.below(rng, 500) if rng.random() < 0.7 else round(rng.random() * 100, 1)
    elif data_type in ("SINGLE_OPTIONS", "RADIO"):
        value = data.pick(rng, options)
    elif data_type in ("MULTIPLE_OPTIONS", "CHECKBOX"):
        value = data.sample(rng, options, 1 + data.below(rng, len(options)))
    elif data_type == "FILE_UPLOAD":
        value = [{"url": f"https://files.example.com/objects/{data.make_id(rng)}.pdf"}]
    elif data_type == "PHONE":
        value = f"+1555{1_000_000 + data.below(rng, 9_000_000)}"
    elif data_type == "LARGE_TEXT":
        value = f"Seen on {data.below(rng, 28) + 1} March.\nAll good, ünïcode and \"quotes\", too."
    else:
        value = f"{data.pick(rng, data.FIRST)} {data.below(rng, 10**6)}"
    return {key: value}
