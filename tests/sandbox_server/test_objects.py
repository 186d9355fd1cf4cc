"""Custom objects, associations and the account's small lists, served as their specs describe."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from highlevel_sync.sandbox import Sandbox, SandboxConfig
from highlevel_sync.sandbox.data import ms_of

from .conftest import Api

EXAMPLES = Path(__file__).resolve().parents[3] / "shared" / "highlevel-api" / "webhook-examples"
PETS, PROPERTIES = "custom_objects.pets", "custom_objects.properties"
STANDARD = ["business", "contact", "opportunity"]
SEARCH = {"page": 1, "query": "", "searchAfter": []}


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    """Default custom objects (1,200 + 1,050 records, 25, none) over fewer contacts. Read-only."""
    with Sandbox(SandboxConfig(contacts_per_location=(2_000, 100, 20), rate_limit_max=None, index_lag_s=0.2)) as s:
        yield s


def search(api: Api, key: str, **body: Any) -> dict[str, Any]:
    response = api.http.post(f"/objects/{key}/records/search",
                             json={"locationId": api.location_id, "pageLimit": 100, **SEARCH, **body})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def walk(api: Api, key: str) -> tuple[list[dict[str, Any]], int]:
    """Every record by searchAfter, the largest page the sandbox takes; and the number of requests."""
    rows: list[dict[str, Any]] = []
    after: list[Any] = []
    requests = 0
    while True:
        page = search(api, key, searchAfter=after)["records"]
        requests += 1
        rows += page
        if len(page) < 100:
            return rows, requests
        after = page[-1]["searchAfter"]


def truth_records(sb: Sandbox, location_id: str, key: str) -> list[dict[str, Any]]:
    return [r for r in sb.truth(location_id, "object_records") if r["objectKey"] == key]


@pytest.mark.parametrize("key", [PETS, PROPERTIES])
def test_search_after_walk_returns_exactly_the_truth(sb: Sandbox, key: str) -> None:
    loc = sb.location_ids[0]
    api = Api(sb, loc)
    rows, requests = walk(api, key)
    truth = truth_records(sb, loc, key)
    assert len(truth) > 1_000 and requests == len(truth) // 100 + 1
    expected = [{**t, "searchAfter": [ms_of(t["createdAt"]), t["id"]]} for t in truth]
    assert sorted(rows, key=lambda r: r["id"]) == expected
    order = [tuple(r["searchAfter"]) for r in rows]
    assert order == sorted(order, reverse=True) and len(set(order)) == len(order)  # newest first, ties by id
    stamps = [r["searchAfter"][0] for r in rows]
    assert len(set(stamps)) < len(stamps)  # shared createdAt milliseconds exist, and the cursor survived them
    first = search(api, key)
    assert first["total"] == len(truth) and first["records"] == rows[:100]
    assert search(api, key, page=3)["records"] == rows[200:300]
    assert search(api, key, searchAfter=[str(s) for s in rows[99]["searchAfter"]])["records"] == rows[100:200]


def test_record_fields_and_shapes(sb: Sandbox) -> None:
    loc = sb.location_ids[0]
    record = search(Api(sb, loc), PETS, pageLimit=1)["records"][0]
    assert set(record) == {"id", "owner", "followers", "properties", "createdAt", "updatedAt", "locationId",
                           "objectId", "objectKey", "createdBy", "lastUpdatedBy", "searchAfter"}
    assert re.fullmatch(r"[0-9a-f]{24}", record["id"]) and record["objectKey"] == PETS
    assert set(record["createdBy"]) == {"channel", "createdAt", "source", "sourceId"}
    schema = next(s for s in sb.truth(loc, "object_schemas") if s["key"] == PETS)
    assert record["objectId"] == schema["id"] and record["locationId"] == loc


def test_page_limit_and_body_are_validated(sb: Sandbox) -> None:
    loc = sb.location_ids[0]
    api = Api(sb, loc)
    post = api.http.post
    url = f"/objects/{PETS}/records/search"
    body = {"locationId": loc, "pageLimit": 100, **SEARCH}
    assert len(post(url, json=body).json()["records"]) == 100
    too_big = post(url, json={**body, "pageLimit": 101})
    assert too_big.status_code == 422 and too_big.json()["message"] == ["pageLimit must not be greater than 100"]
    missing = post(url, json={"locationId": loc, "pageLimit": 10})
    assert missing.status_code == 422
    assert missing.json()["message"] == ["page should not be empty", "query should not be empty",
                                         "searchAfter should not be empty"]
    extra = post(url, json={**body, "filters": []})
    assert extra.status_code == 422 and extra.json()["message"] == ["property filters should not exist"]
    assert post(url, json={**body, "searchAfter": ["x"]}).status_code == 422
    assert post(url, json={**body, "page": 101}).status_code == 400  # 10,000-record window without a cursor
    assert post("/objects/custom_objects.nope/records/search", json=body).status_code == 400
    other = post(url, json={**body, "locationId": sb.location_ids[1]})
    assert other.status_code == 403


def test_query_searches_the_primary_display_property(sb: Sandbox) -> None:
    loc = sb.location_ids[0]
    api = Api(sb, loc)
    truth = truth_records(sb, loc, PETS)
    name = truth[0]["properties"]["pet_name"]
    found = search(api, PETS, query=f"pet_name:{name.split()[1]}")
    assert truth[0]["id"] in {r["id"] for r in found["records"]}
    assert found["total"] == sum(name.split()[1] in t["properties"]["pet_name"] for t in truth)


def test_record_by_id(sb: Sandbox) -> None:
    loc = sb.location_ids[0]
    api = Api(sb, loc)
    for record in truth_records(sb, loc, PROPERTIES)[:20]:
        body = api.get(f"/objects/{PROPERTIES}/records/{record['id']}").json()
        assert body["record"] == {"id": record["id"], "owner": record["owner"], "followers": record["followers"],
                                  "properties": record["properties"], "dateAdded": record["createdAt"],
                                  "dateUpdated": record["updatedAt"]}
    some = truth_records(sb, loc, PETS)[0]["id"]
    assert api.get(f"/objects/{PETS}/records/{'0' * 24}").status_code == 404
    assert Api(sb, sb.location_ids[1]).get(f"/objects/{PETS}/records/{some}").status_code == 404


@pytest.mark.parametrize("key", [PETS, PROPERTIES])
def test_fields_per_object_type_every_property(sb: Sandbox, key: str) -> None:
    loc = sb.location_ids[0]
    body = Api(sb, loc).get(f"/custom-fields/object-key/{key}", locationId=loc).json()
    fields = body["fields"]
    assert sorted(fields, key=lambda f: f["id"]) == [f for f in sb.truth(loc, "object_fields") if f["objectKey"] == key]
    assert len(body["folders"]) == 1 and {f["parentId"] for f in fields} == {body["folders"][0]["id"]}
    for field in fields:
        assert {"locationId", "showInForms", "id", "objectKey", "dataType", "parentId", "fieldKey", "dateAdded",
                "dateUpdated"} <= set(field)
        assert field["fieldKey"].startswith(f"{key}.") and field["objectKey"] == key
    by_key = {f["fieldKey"][len(key) + 1:]: f for f in fields}
    seen: set[str] = set()
    for record in truth_records(sb, loc, key):
        for prop, value in record["properties"].items():
            field = by_key.get(prop) or by_key[prop.split(".")[0]]  # TEXTBOX_LIST: <field>.<option>
            kind = field["dataType"]
            seen.add(kind)
            options = {o["key"] for o in field.get("options", [])}
            if kind == "MONETORY":
                assert set(value) == {"currency", "value"} and isinstance(value["value"], int | float)
            elif kind == "DATE":
                assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", value)
            elif kind in ("SINGLE_OPTIONS", "RADIO"):
                assert value in options
            elif kind in ("MULTIPLE_OPTIONS", "CHECKBOX"):
                assert value and set(value) <= options
            elif kind == "NUMERICAL":
                assert isinstance(value, int | float)
            elif kind == "TEXTBOX_LIST":
                assert prop.split(".", 1)[1] in options and isinstance(value, str)
            elif kind == "FILE_UPLOAD":
                assert [set(v) for v in value] == [{"url"}]
            else:
                assert isinstance(value, str)
    assert seen == {f["dataType"] for f in fields}
    assert len(seen) >= 8


def test_custom_fields_v2_refuses_contacts(sb: Sandbox) -> None:
    loc = sb.location_ids[0]
    api = Api(sb, loc)
    assert api.get("/custom-fields/object-key/contact", locationId=loc).status_code == 400
    assert api.get("/custom-fields/object-key/business", locationId=loc).json()["fields"] == []


def test_relations_per_record(sb: Sandbox) -> None:
    loc = sb.location_ids[0]
    api = Api(sb, loc)
    relations = sb.truth(loc, "relations")
    associations = {a["id"]: a for a in sb.truth(loc, "associations")}
    records = truth_records(sb, loc, PETS)
    related = {r["firstRecordId"] for r in relations}
    assert 0.4 < len(related & {r["id"] for r in records}) / len(records) < 0.85
    for relation in relations:
        assoc = associations[relation["associationId"]]
        assert relation["firstObjectKey"] == assoc["firstObjectKey"]
        assert relation["secondObjectKey"] == assoc["secondObjectKey"] in ("contact", "opportunity")
    for record in records[:40]:
        expected = [r for r in relations if record["id"] in (r["firstRecordId"], r["secondRecordId"])]
        body = api.get(f"/associations/relations/{record['id']}", locationId=loc, skip=0, limit=100).json()
        assert body["relations"] == expected and body["total"] == len(expected)
    busy = max(relations, key=lambda r: sum(r["secondRecordId"] == x["secondRecordId"] for x in relations))
    contact = busy["secondRecordId"]
    expected = [r for r in relations if contact in (r["firstRecordId"], r["secondRecordId"])]
    assert len(expected) >= 2
    first = api.get(f"/associations/relations/{contact}", locationId=loc, skip=0, limit=1).json()
    rest = api.get(f"/associations/relations/{contact}", locationId=loc, skip=1, limit=100).json()
    assert first["relations"] + rest["relations"] == expected and first["total"] == len(expected)
    only = expected[0]["associationId"]
    filtered = api.get(f"/associations/relations/{contact}", locationId=loc, skip=0, limit=100,
                       associationIds=only).json()["relations"]
    assert filtered == [r for r in expected if r["associationId"] == only]
    assert api.get(f"/associations/relations/{contact}", locationId=loc, skip=0).status_code == 422
    assert api.get(f"/associations/relations/{contact}", locationId=loc, skip=0, limit=101).status_code == 422


def test_locations_without_and_with_few_custom_objects(sb: Sandbox) -> None:
    second, third = sb.location_ids[1], sb.location_ids[2]
    schemas = Api(sb, third).get("/objects/", locationId=third).json()["objects"]
    assert sorted(s["key"] for s in schemas) == STANDARD and all(s["standard"] for s in schemas)
    assert sb.truth(third, "object_records") == [] and sb.truth(third, "relations") == []
    assert Api(sb, third).http.post(f"/objects/{PETS}/records/search",
                                    json={"locationId": third, "pageLimit": 10, **SEARCH}).status_code == 400
    custom = [s for s in Api(sb, second).get("/objects/", locationId=second).json()["objects"] if not s["standard"]]
    assert [s["key"] for s in custom] == ["custom_objects.policies"]
    assert search(Api(sb, second), "custom_objects.policies")["total"] == 25


class _Receiver:
    """A webhook receiver on loopback that keeps every body it gets."""

    def __init__(self) -> None:
        bodies: list[dict[str, Any]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.bodies = bodies
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"


def _example_keys(name: str) -> set[str]:
    return set(json.loads((EXAMPLES / name).read_text()))


def test_mutations_show_in_reads_and_send_example_shaped_webhooks(highlevel_sandbox_factory: Any) -> None:
    sb: Sandbox = highlevel_sandbox_factory(contacts_per_location=(300, 40, 10), index_lag_s=0.2,
                                            rate_limit_max=None, object_records_per_location=((150, 120), (10,)))
    loc = sb.location_ids[0]
    api = Api(sb, loc)
    hook = _Receiver()
    try:
        field = sb.add_object_field(loc, PETS, "Favourite Toy", "TEXT")
        fields = api.get(f"/custom-fields/object-key/{PETS}", locationId=loc).json()["fields"]
        assert field in fields and field["fieldKey"] == f"{PETS}.favourite_toy"
        updated = sb.update_records(loc, PETS, 40, notify=hook.url)
        truth = {r["id"]: r for r in truth_records(sb, loc, PETS)}
        assert any("favourite_toy" in truth[i]["properties"] for i in updated)
        by_id = api.get(f"/objects/{PETS}/records/{updated[0]}").json()["record"]
        assert by_id["properties"] == truth[updated[0]]["properties"]
        sb.wait_for_index()
        rows, _ = walk(api, PETS)
        assert sorted(rows, key=lambda r: r["id"]) == [
            {**t, "searchAfter": [ms_of(t["createdAt"]), t["id"]]} for t in truth_records(sb, loc, PETS)]
        record_hooks = [b for b in hook.bodies if b["type"] == "RecordUpdate"]
        assert sorted(b["id"] for b in record_hooks) == sorted(updated)
        assert all(_example_keys("RecordUpdate.json") | {"type", "webhookId"} == set(b) for b in record_hooks)

        victim = next(r for r in truth_records(sb, loc, PETS) if r["id"] in
                      {x["firstRecordId"] for x in sb.truth(loc, "relations")})
        before = [r for r in sb.truth(loc, "relations") if r["firstRecordId"] == victim["id"]]
        for _ in range(40):  # delete until the victim is among them (the same seed, the same picks)
            if victim["id"] in sb.delete_records(loc, PETS, 5, notify=hook.url):
                break
        assert victim["id"] not in {r["id"] for r in truth_records(sb, loc, PETS)}
        assert api.get(f"/objects/{PETS}/records/{victim['id']}").status_code == 404
        gone = api.get(f"/associations/relations/{victim['id']}", locationId=loc, skip=0, limit=100).json()
        assert gone["relations"] == [] and gone["total"] == 0
        contact = before[0]["secondRecordId"]
        left = api.get(f"/associations/relations/{contact}", locationId=loc, skip=0, limit=100).json()["relations"]
        assert all(r["firstRecordId"] != victim["id"] for r in left)
        assert not {r["id"] for r in before} & {r["id"] for r in sb.truth(loc, "relations")}
        assert victim["id"] in {b["id"] for b in hook.bodies if b["type"] == "RecordDelete"}

        relation_id = sb.add_relation(loc, notify=hook.url)
        relation = next(r for r in sb.truth(loc, "relations") if r["id"] == relation_id)
        for side in ("firstRecordId", "secondRecordId"):
            listed = api.get(f"/associations/relations/{relation[side]}", locationId=loc, skip=0,
                             limit=100).json()["relations"]
            assert relation in listed
        created = [b for b in hook.bodies if b["type"] == "RelationCreate"]
        assert [b["id"] for b in created] == [relation_id]
        assert set(created[0]) == _example_keys("RelationCreate.json") | {"type", "timestamp", "webhookId"}

        tag_id = sb.rename_tag(loc)
        tags = {t["id"]: t["name"] for t in api.get(f"/locations/{loc}/tags").json()["tags"]}
        assert "-renamed-" in tags[tag_id] and tags == {t["id"]: t["name"] for t in sb.truth(loc, "tags")}
    finally:
        hook.server.shutdown()


def test_seeding_is_deterministic() -> None:
    config = SandboxConfig(contacts_per_location=(50, 10, 5), object_records_per_location=((30, 20), (5,)))
    one, two = Sandbox(config), Sandbox(config)
    for family in ("object_schemas", "object_records", "object_fields", "associations", "relations", "workflows",
                   "businesses", "tags"):
        assert one.truth(one.location_ids[0], family) == two.truth(two.location_ids[0], family)
