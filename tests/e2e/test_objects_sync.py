"""Custom objects and the account's lists end to end: schemas, records, object fields, associations,
relations, campaigns, workflows, tags, custom values, links, businesses.

Every row equals the sandbox's truth exactly once; each custom object's wide view types every
field's value as the sandbox holds it; record updates, deletes (with and without a webhook), new
relations and a renamed tag reach the next run (or the sweep); a location without custom objects
costs one request for them; a no-change run costs at most two requests per list.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from highlevel_sync.sandbox.objects_changes import record_webhook
from sources.highlevel.normalize import to_utc
from sources.highlevel.webhooks import Inbox
from sources.highlevel.webhooks.events import parse_event
from sources.highlevel.webhooks.processor import Processor

from .conftest import Harness

OBJECTS = ["object_schemas", "object_records", "associations", "relations", "campaigns", "workflows", "tags",
           "custom_values", "links", "businesses", "custom_fields"]
CONFIG = {"relations_max_requests": 10_000}
# per list: (API field, column) pairs checked value by value against the truth
CHECKED: dict[str, list[tuple[str, str]]] = {
    "object_schemas": [("key", "key"), ("standard", "standard"), ("primaryDisplayProperty", "primary_display_property"),
                       ("dateAdded", "date_added")],
    "associations": [("key", "key"), ("firstObjectKey", "first_object_key"), ("secondObjectKey", "second_object_key"),
                     ("firstObjectLabel", "first_object_label"), ("secondObjectLabel", "second_object_label")],
    "campaigns": [("name", "name"), ("status", "status")],
    "workflows": [("name", "name"), ("status", "status"), ("version", "version"), ("updatedAt", "updated_at")],
    "tags": [("name", "name")],
    "custom_values": [("name", "name"), ("fieldKey", "field_key"), ("value", "value")],
    "links": [("name", "name"), ("redirectTo", "redirect_to")],
    "businesses": [("name", "name"), ("email", "email"), ("createdAt", "created_at")],
}
TIMESTAMPS = {"created_at", "updated_at", "date_added"}


@pytest.fixture
def h(highlevel_sandbox_factory: Any, tmp_path: Path) -> Harness:
    # the default objects: two of 1,000+ records (several search pages) in the first location, one
    # small one in the second, none in the third; no burst limit (relations cost a request per record)
    sb = highlevel_sandbox_factory(contacts_per_location=(300, 100, 40), index_lag_s=0.2, rate_limit_max=None)
    return Harness(sb, tmp_path)


def run(h: Harness, locations: list[str] | None = None, **request: Any) -> None:
    result = h.run(locations=locations, resources=request.pop("resources", OBJECTS), config=CONFIG, **request)
    assert result.ok, [(r.error, r.resource_errors) for r in result.locations]


def ids_once(h: Harness, table: str) -> set[str]:
    counts = Counter(row[0] for row in h.query(f"select id from highlevel.{table}"))
    assert all(n == 1 for n in counts.values()), f"{table}: duplicates"
    return set(counts)


def assert_lists_match_truth(h: Harness, locations: list[str]) -> None:
    for table, checked in CHECKED.items():
        columns = ", ".join(["id", "location_id", *(column for _, column in checked)])
        loaded = {row[0]: row for row in h.query(f"select {columns} from highlevel.{table}")}
        truth = {r["id"]: (loc, r) for loc in locations for r in h.sb.truth(loc, table)}
        assert ids_once(h, table) == set(truth), table
        for record_id, (loc, record) in truth.items():
            row = loaded[record_id]
            expected = [loc, *(to_utc(record[field]) if column in TIMESTAMPS else record[field]
                               for field, column in checked)]
            assert list(row[1:]) == expected, f"{table} {record_id}"


def assert_records_match_truth(h: Harness, locations: list[str]) -> None:
    loaded = {row[0]: row for row in h.query(
        "select id, location_id, object_key, properties, owner, followers, created_at, updated_at "
        "from highlevel.object_records")}
    truth = {r["id"]: r for loc in locations for r in h.sb.truth(loc, "object_records")}
    assert ids_once(h, "object_records") == set(truth)
    for record_id, record in truth.items():
        _, loc, key, properties, owner, followers, created, updated = loaded[record_id]
        assert (loc, key) == (record["locationId"], record["objectKey"])
        assert json.loads(properties) == record["properties"], record_id
        assert (json.loads(owner), json.loads(followers)) == (record["owner"], record["followers"])
        assert (created, updated) == (to_utc(record["createdAt"]), to_utc(record["updatedAt"]))


def assert_relations_match_truth(h: Harness, locations: list[str]) -> None:
    loaded = {row[0]: row[1:] for row in h.query(
        "select id, location_id, association_id, first_object_key, first_record_id, second_object_key, "
        "second_record_id from highlevel.relations")}
    truth = {r["id"]: r for loc in locations for r in h.sb.truth(loc, "relations")}
    assert ids_once(h, "relations") == set(truth)
    for relation_id, r in truth.items():
        assert loaded[relation_id] == (r["locationId"], r["associationId"], r["firstObjectKey"], r["firstRecordId"],
                                       r["secondObjectKey"], r["secondRecordId"])


def expected_value(data_type: str, value: Any) -> Any:
    """A property's value as its wide column holds it, typed by dataType as contacts_wide types it."""
    if value is None:
        return None
    if data_type == "MONETORY":
        return float(value["value"])
    if data_type == "NUMERICAL":
        return float(value)
    if data_type == "DATE":
        return datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
    return value


def assert_wide_views_match_truth(h: Harness, loc: str) -> int:
    """Every record's every field in its object's wide view; returns the values compared."""
    compared = 0
    fields = h.sb.truth(loc, "object_fields")
    for schema in (s for s in h.sb.truth(loc, "object_schemas") if not s["standard"]):
        key, name = schema["key"], schema["key"].removeprefix("custom_objects.")
        records = {r["id"]: r for r in h.sb.truth(loc, "object_records") if r["objectKey"] == key}
        columns: list[tuple[str, str, str]] = []  # column, property key, dataType
        for f in (f for f in fields if f["objectKey"] == key):
            prop = f["fieldKey"][len(key) + 1:]
            if f["dataType"] == "TEXTBOX_LIST":
                columns += [(f"cf_{prop}_{o['key']}", f"{prop}.{o['key']}", "TEXT") for o in f["options"]]
            else:
                columns.append((f"cf_{prop}", prop, f["dataType"]))
        rows = h.query(f"select id, {', '.join(c for c, _, _ in columns)} from highlevel.object_{name}_wide "
                       "where location_id = ?", loc)
        assert {row[0] for row in rows} == set(records)
        for row in rows:
            properties = records[row[0]]["properties"]
            for (column, prop, data_type), value in zip(columns, row[1:], strict=True):
                if data_type in ("MULTIPLE_OPTIONS", "CHECKBOX", "FILE_UPLOAD") and value is not None:
                    value = json.loads(value)
                if isinstance(value, datetime):
                    value = value.astimezone(UTC)
                assert value == expected_value(data_type, properties.get(prop)), f"{row[0]} {column}"
                compared += 1
    return compared


def test_first_run_loads_every_row_once_equal_to_the_truth_with_typed_wide_views(h: Harness) -> None:
    locations = h.sb.location_ids
    run(h, locations)
    assert_lists_match_truth(h, locations)
    assert_records_match_truth(h, locations)
    assert_relations_match_truth(h, locations)
    big = h.sb.location_ids[0]
    assert len(h.sb.truth(big, "object_records")) > 2_000 and len(h.sb.truth(big, "relations")) > 1_000
    # the objects' fields are custom_fields rows, their object's key as the model
    for loc in locations:
        for f in h.sb.truth(loc, "object_fields"):
            assert h.query("select model, field_key, data_type from highlevel.custom_fields where id = ?",
                           f["id"]) == [(f["objectKey"], f["fieldKey"], f["dataType"])]
    assert assert_wide_views_match_truth(h, big) > 20_000
    assert assert_wide_views_match_truth(h, h.sb.location_ids[1]) == 25 * 4  # policies: 4 fields
    (column_type,) = h.query("select data_type from information_schema.columns where table_name = "
                             "'object_pets_wide' and column_name = 'cf_date_of_birth'")[0]
    assert column_type == "TIMESTAMP WITH TIME ZONE"


def deliver(h: Harness, inbox: Inbox, event_type: str, body: dict[str, Any]) -> None:
    """What the receiver does with a delivery the sandbox would send: store it, apply it."""
    assert inbox.accept(parse_event(h.sb.webhooks.event(event_type, h.big, body)))
    Processor(inbox).process_pending()


def test_changes_reach_the_next_run_and_the_sweep(h: Harness, tmp_path: Path) -> None:
    sb, loc = h.sb, h.big
    inbox_path = tmp_path / "inbox.sqlite"
    inbox = Inbox(inbox_path)
    run(h, inbox_path=str(inbox_path))
    pets, properties = "custom_objects.pets", "custom_objects.properties"
    before = {r["id"]: r for r in sb.truth(loc, "object_records")}
    updated = sb.update_records(loc, pets, 5)
    for record_id in updated[:2]:  # two of them with their webhook (read by id, whatever the index shows)
        deliver(h, inbox, "RecordUpdate", record_webhook(next(r for r in sb.truth(loc, "object_records")
                                                               if r["id"] == record_id)))
    [told] = sb.delete_records(loc, pets, 1)
    deliver(h, inbox, "RecordDelete", record_webhook(before[told]))
    [silent] = sb.delete_records(loc, properties, 1)  # no webhook: the listing no longer shows it
    relation = sb.add_relation(loc)
    deliver(h, inbox, "RelationCreate", next(r for r in sb.truth(loc, "relations") if r["id"] == relation))
    tag = sb.rename_tag(loc)
    field = sb.add_object_field(loc, pets, "Favourite Toy", "TEXT")
    sb.update_records(loc, pets, 3)  # records get values for the new field
    told_relations = {r[0] for r in h.query("select id from highlevel.relations where first_record_id = ?", told)}
    silent_relations = {r[0] for r in h.query("select id from highlevel.relations where first_record_id = ?",
                                              silent)}
    assert told_relations or silent_relations
    sb.wait_for_index()
    sb.clear_requests()
    run(h, inbox_path=str(inbox_path))
    assert len(sb.requests(f"/objects/{pets}/records/{updated[0]}")) == 1  # read by id under its own object
    assert h.query("select count(*) from highlevel.object_records where id in (?, ?)", told, silent) == [(0,)]
    deleted = dict(h.query("select id, detected_by from highlevel.deletions where resource = 'object_records'"))
    assert deleted == {told: "webhook", silent: "sweep"}
    assert h.query("select count(*) from highlevel.relations where first_record_id in (?, ?)", told, silent) == [(0,)]
    assert {r[0] for r in h.query("select id from highlevel.deletions where resource = 'relations'")} == \
        told_relations | silent_relations
    assert h.query("select count(*) from highlevel.relations where id = ?", relation) == [(1,)]
    name = next(t["name"] for t in sb.truth(loc, "tags") if t["id"] == tag)
    assert h.query("select name from highlevel.tags where id = ?", tag) == [(name,)] and "-renamed-" in name
    assert h.query("select model from highlevel.custom_fields where id = ?", field["id"]) == [(pets,)]
    assert_records_match_truth(h, [loc])
    assert_relations_match_truth(h, [loc])
    assert_lists_match_truth(h, [loc])
    assert assert_wide_views_match_truth(h, loc) > 20_000  # cf_favourite_toy included
    assert inbox.pending_changes(loc) == []


def test_a_silent_delete_is_found_by_the_sweep_and_takes_its_relations(h: Harness) -> None:
    sb, loc = h.sb, h.big
    run(h, resources=["object_records", "relations"])
    gone = sb.delete_records(loc, "custom_objects.pets", 4)
    linked = {r[0] for r in h.query(f"select id from highlevel.relations where first_record_id in "
                                    f"({', '.join('?' * len(gone))})", *gone)}
    assert linked
    sb.wait_for_index()
    run(h, resources=["object_records", "relations"], reconcile=True)
    assert h.query("select count(*) from highlevel.object_records where id in (?, ?, ?, ?)", *gone) == [(0,)]
    assert {r[0] for r in h.query("select id from highlevel.deletions where resource = 'relations'")} == linked
    assert_records_match_truth(h, [loc])
    assert_relations_match_truth(h, [loc])


def test_relations_are_capped_per_run_and_the_rest_wait_in_state(h: Harness) -> None:
    loc = h.sb.location_ids[1]  # 25 records
    result = h.run(locations=[loc], resources=["object_records", "relations"], config={"relations_max_requests": 10})
    assert result.ok
    assert result.locations[0].notes["relations"] == ("read the relations of 10 record(s); 15 record(s) deferred "
                                                      "to the next run (relations_max_requests = 10)")
    assert len(h.state("relations")["pending"][loc]) == 15
    for _ in range(2):
        assert h.run(locations=[loc], resources=["object_records", "relations"],
                     config={"relations_max_requests": 10}).ok
    assert_relations_match_truth(h, [loc])
    assert loc not in h.state("relations").get("pending", {})


def test_a_location_without_custom_objects_costs_one_objects_request(h: Harness) -> None:
    loc = h.sb.location_ids[2]
    assert h.sb.truth(loc, "object_records") == []
    run(h, [loc])
    paths = Counter(r["path"] for r in h.sb.requests())
    assert sum(n for path, n in paths.items() if path.startswith("/objects")) == 1, paths
    assert not any(path.startswith(("/custom-fields/", "/associations/relations")) for path in paths), paths
    assert h.query("select count(*) from highlevel.object_schemas where location_id = ?", loc) == [(3,)]


def test_a_no_change_run_costs_at_most_two_requests_per_list_and_loads_nothing(h: Harness) -> None:
    small = h.sb.location_ids[1]
    run(h, [small])
    run(h, [small])
    h.sb.clear_requests()
    result = h.run(locations=[small], resources=OBJECTS, config=CONFIG)
    assert result.ok
    by_path = Counter(r["path"] for r in h.sb.requests())
    assert all(n <= 2 for n in by_path.values()), by_path
    assert not any(path.startswith("/associations/relations") for path in by_path), by_path
    assert sum(result.locations[0].rows.values()) == 0


def test_a_token_without_the_objects_scope_skips_them_with_one_named_warning(h: Harness) -> None:
    loc = h.sb.location_ids[1]
    h.sb.revoke_scopes(loc, ["objects/record.readonly"])
    result = h.run(locations=[loc], resources=None)  # the default resource set
    assert result.ok, result.locations[0].error
    assert [w for w in result.locations[0].warnings if "object" in w] == [
        "object_records skipped: the token lacks the objects/record.readonly scope (re-authorise the app with it "
        "to sync this table)"]
    assert h.query("select count(*) from highlevel.object_schemas") == [(4,)]
