"""Changes to custom objects (users editing records, linking them, adding fields) and their truth.

Every change is stamped now and draws from the world's mutation stream (same calls, same
changes). Record writes reach search after the index lag; reads by id and relations see them at
once. Webhook bodies are built here in the shapes of webhook-examples/Record*.json and
Relation*.json; the emitter adds `type`, `timestamp` and `webhookId`.
"""

from __future__ import annotations

import copy
from typing import Any

from . import data
from .index import IndexedRecords, Record
from .objects_data import DATA_TYPES, add_relation_row, custom_keys, field_row, make_properties, records_of, snake
from .webhooks import WebhookEmitter
from .world import Location, World


def _records(loc: Location, object_key: str) -> IndexedRecords:
    records = records_of(loc, object_key)
    if records is None:
        raise KeyError(f"location {loc.id} has no custom object {object_key!r}")
    return records


def _schema(loc: Location, object_key: str) -> Record:
    return next(s for s in loc.extra["object_schemas"] if s["key"] == object_key)


def fields_of(loc: Location, object_key: str) -> list[Record]:
    return [f for f in loc.extra.get("object_fields", []) if f["objectKey"] == object_key]


def update_records(world: World, location_id: str, object_key: str, n: int) -> list[str]:
    """Give n records new property values (the current fields', added ones included); about one in
    six keeps only its primary display property, so consumers must replace, not merge."""
    with world.lock:
        loc = world.locations[location_id]
        records = _records(loc, object_key)
        schema, fields = _schema(loc, object_key), fields_of(loc, object_key)
        user_ids = [u["id"] for u in loc.users]
        ids = world.rng.sample(sorted(records.truth), min(n, len(records.truth)))
        for record_id in ids:
            record = dict(records.truth[record_id])
            if world.rng.random() < 1 / 6:
                primary = schema["primaryDisplayProperty"][len(object_key) + 1:]
                record["properties"] = {k: v for k, v in make_properties(world.rng, schema, fields).items()
                                        if k == primary}
            else:
                record["properties"] = make_properties(world.rng, schema, fields)
            stamp = max(data.now_ms(), data.ms_of(record["updatedAt"]) + 1)
            record["updatedAt"] = data.iso_ms(stamp)
            record["lastUpdatedBy"] = {"channel": "WEB_USER", "createdAt": record["updatedAt"], "source": "WEB_USER",
                                       "sourceId": data.pick(world.rng, user_ids) if user_ids else "system"}
            records.write(record_id, record, world.lag())
        return ids


def delete_records(world: World, location_id: str, object_key: str, n: int) -> list[Record]:
    """Delete n records and every relation they are part of; returns the records as they were."""
    with world.lock:
        loc = world.locations[location_id]
        records = _records(loc, object_key)
        ids = world.rng.sample(sorted(records.truth), min(n, len(records.truth)))
        gone = []
        for record_id in ids:
            gone.append(records.truth[record_id])
            records.write(record_id, None, world.lag())
            for relation_id in sorted(loc.extra["relations_by_record"].get(record_id, set())):
                _drop_relation(loc, relation_id)
        return gone


def _drop_relation(loc: Location, relation_id: str) -> None:
    relation = loc.extra["relations"].pop(relation_id)
    by_record: dict[str, set[str]] = loc.extra["relations_by_record"]
    for side in ("firstRecordId", "secondRecordId"):
        linked = by_record.get(relation[side])
        if linked is not None:
            linked.discard(relation_id)
            if not linked:
                del by_record[relation[side]]


def add_relation(world: World, location_id: str) -> Record:
    """Link a random custom-object record to a contact it is not yet linked to; returns the relation."""
    with world.lock:
        loc = world.locations[location_id]
        keys = custom_keys(loc)
        contact_ids = sorted(loc.contacts.truth)
        if not keys or not contact_ids:
            raise ValueError(f"location {location_id} has no custom object records or no contacts to relate")
        object_key = data.pick(world.rng, keys)
        association = next(a for a in loc.extra["associations"]
                           if a["firstObjectKey"] == object_key and a["secondObjectKey"] == "contact")
        record_id = data.pick(world.rng, sorted(_records(loc, object_key).truth))
        linked = {loc.extra["relations"][r]["secondRecordId"]
                  for r in loc.extra["relations_by_record"].get(record_id, set())}
        contact_id = next(c for c in (data.pick(world.rng, contact_ids) for _ in range(1000)) if c not in linked)
        return dict(add_relation_row(world.rng, location_id, association, record_id, contact_id,
                                     loc.extra["relations"], loc.extra["relations_by_record"]))


def add_object_field(world: World, location_id: str, object_key: str, name: str, data_type: str,
                     options: tuple[str, ...] = ()) -> Record:
    """Define a field on a custom object (no record has a value until it is next updated)."""
    if data_type not in DATA_TYPES:
        raise ValueError(f"dataType must be one of {', '.join(DATA_TYPES)}")
    with world.lock:
        loc = world.locations[location_id]
        _records(loc, object_key)
        if any(f["fieldKey"] == f"{object_key}.{snake(name)}" for f in fields_of(loc, object_key)):
            raise ValueError(f"{object_key} already has a field {snake(name)!r}")
        folder = next(f for f in loc.extra["object_folders"] if f["objectKey"] == object_key)
        field = field_row(world.rng, location_id, object_key, folder["id"], name, data_type, options, data.now_ms())
        loc.extra["object_fields"].append(field)
        return dict(field)


def truth_records(world: World, location_id: str) -> list[Record]:
    """Every custom-object record as search returns it (no `searchAfter`), sorted by id."""
    with world.lock:
        loc = world.locations[location_id]
        rows = [r for key in custom_keys(loc) for r in _records(loc, key).truth.values()]
        return copy.deepcopy(sorted(rows, key=lambda r: r["id"]))


def record_by_id(loc: Location, object_key: str, record_id: str) -> Record | None:
    """`GET /objects/{schemaKey}/records/{id}`'s `record`: IRecordSchema's fields (`dateAdded` and
    `dateUpdated`, where search says `createdAt` and `updatedAt`)."""
    records = records_of(loc, object_key)
    record = records.truth.get(record_id) if records is not None else None
    if record is None:
        return None
    return {"id": record["id"], "owner": record["owner"], "followers": record["followers"],
            "properties": record["properties"], "dateAdded": record["createdAt"], "dateUpdated": record["updatedAt"]}


def record_webhook(record: Record) -> dict[str, Any]:
    """A Record* webhook body as the published example has it: `owners` (plural), `properties` as a
    list of `{key, valueString}` (only string values have a documented form, so only those are sent)."""
    return {"id": record["id"], "locationId": record["locationId"], "owners": list(record["owner"]),
            "followers": list(record["followers"]),
            "properties": [{"key": k, "valueString": v} for k, v in record["properties"].items() if isinstance(v, str)]}


def current_records(world: World, location_id: str, object_key: str, ids: list[str]) -> list[Record]:
    with world.lock:
        records = _records(world.locations[location_id], object_key)
        return [copy.deepcopy(records.truth[i]) for i in ids if i in records.truth]



def notify(emitter: WebhookEmitter, url: str | None, event_type: str, location_id: str,
           rows: list[Record]) -> None:
    """Deliver one signed webhook per row to `url` (nothing when no url): Record* events carry the
    example's record shape, Relation* events the relation itself."""
    if not url:
        return
    for row in rows:
        body = record_webhook(row) if event_type.startswith("Record") else dict(row)
        emitter.deliver(url, emitter.event(event_type, location_id, body))
