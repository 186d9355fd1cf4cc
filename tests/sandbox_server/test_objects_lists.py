"""The account's small lists, and the Version header and read scope of every custom-objects route."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from highlevel_sync.sandbox import Sandbox, SandboxConfig

from .conftest import Api
from .test_objects import PETS, SEARCH, truth_records


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    """Three locations: two small custom objects, one, none. Read-only."""
    config = SandboxConfig(contacts_per_location=(300, 60, 20), rate_limit_max=None,
                           object_records_per_location=((120, 100), (25,)))
    with Sandbox(config) as sandbox:
        yield sandbox


LISTS = {  # family -> (path, params, envelope key)
    "object_schemas": ("/objects/", True, "objects"),
    "campaigns": ("/campaigns/", True, "campaigns"),
    "workflows": ("/workflows/", True, "workflows"),
    "links": ("/links/", True, "links"),
    "businesses": ("/businesses/", True, "businesses"),
    "tags": ("/locations/{loc}/tags", False, "tags"),
    "custom_values": ("/locations/{loc}/customValues", False, "customValues"),
    "associations": ("/associations/", True, "associations"),
}


@pytest.mark.parametrize("family", sorted(LISTS))
def test_every_small_list_equals_the_truth(sb: Sandbox, family: str) -> None:
    path, by_query, envelope = LISTS[family]
    sizes = []
    for loc in sb.location_ids:
        params: dict[str, Any] = {"locationId": loc} if by_query else {}
        if family == "associations":
            params.update(skip=0, limit=100)
        response = Api(sb, loc).get(path.format(loc=loc), **params)
        assert response.status_code == 200, response.text
        rows = response.json()[envelope]
        assert sorted(rows, key=lambda r: r["id"]) == sb.truth(loc, family)
        assert all(r["locationId"] == loc for r in rows)
        sizes.append(len(rows))
    assert sizes[0] >= 3 and all(1 <= n <= 40 for n in sizes)


def test_businesses_and_associations_page_with_skip_and_limit(sb: Sandbox) -> None:
    loc = sb.location_ids[0]
    api = Api(sb, loc)
    everything = api.get("/businesses/", locationId=loc).json()["businesses"]
    pages = [api.get("/businesses/", locationId=loc, skip=str(s), limit="7").json()["businesses"]
             for s in range(0, len(everything), 7)]
    assert [b for page in pages for b in page] == everything and len(everything) == 30
    a = api.get("/associations/", locationId=loc, skip=1, limit=2).json()
    assert a["total"] == 5 and len(a["associations"]) == 2
    assert api.get("/associations/", locationId=loc).status_code == 422  # skip and limit are required


def test_campaign_status_filter(sb: Sandbox) -> None:
    loc = sb.location_ids[0]
    drafts = Api(sb, loc).get("/campaigns/", locationId=loc, status="draft").json()["campaigns"]
    assert drafts and drafts == [c for c in Api(sb, loc).get("/campaigns/", locationId=loc).json()["campaigns"]
                                 if c["status"] == "draft"]


ROUTES = [("GET", "/objects/?locationId={loc}"), ("POST", f"/objects/{PETS}/records/search"),
          ("GET", f"/custom-fields/object-key/{PETS}?locationId={{loc}}"),
          ("GET", "/associations/?locationId={loc}&skip=0&limit=10"), ("GET", "/campaigns/?locationId={loc}"),
          ("GET", "/workflows/?locationId={loc}"), ("GET", "/links/?locationId={loc}"),
          ("GET", "/businesses/?locationId={loc}"), ("GET", "/locations/{loc}/tags"),
          ("GET", "/locations/{loc}/customValues")]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_version_header_is_required(sb: Sandbox, method: str, path: str) -> None:
    loc = sb.location_ids[0]
    url = path.format(loc=loc)
    body = {"locationId": loc, "pageLimit": 10, **SEARCH} if method == "POST" else None
    missing = Api(sb, loc, version=None).http.request(method, url, json=body)
    assert missing.status_code == 400 and missing.json()["message"] == "Version header was not found"
    wrong = Api(sb, loc, version="2021-04-15").http.request(method, url, json=body)
    assert wrong.status_code == 400 and "2021-07-28" in wrong.json()["message"]
    assert Api(sb, loc).http.request(method, url, json=body).status_code == 200


SCOPED = [("GET", "/objects/?locationId={loc}", "objects/schema.readonly"),
          ("POST", f"/objects/{PETS}/records/search", "objects/record.readonly"),
          ("GET", f"/custom-fields/object-key/{PETS}?locationId={{loc}}", "locations/customFields.readonly"),
          ("GET", "/associations/?locationId={loc}&skip=0&limit=10", "associations.readonly"),
          ("GET", "/associations/relations/{record}?locationId={loc}&skip=0&limit=10",
           "associations/relation.readonly"),
          ("GET", "/campaigns/?locationId={loc}", "campaigns.readonly"),
          ("GET", "/workflows/?locationId={loc}", "workflows.readonly"),
          ("GET", "/links/?locationId={loc}", "links.readonly"),
          ("GET", "/businesses/?locationId={loc}", "businesses.readonly"),
          ("GET", "/locations/{loc}/tags", "locations/tags.readonly"),
          ("GET", "/locations/{loc}/customValues", "locations/customValues.readonly")]


def test_each_route_needs_its_own_read_scope(highlevel_sandbox_factory: Any) -> None:
    sb: Sandbox = highlevel_sandbox_factory(contacts_per_location=(60, 20), rate_limit_max=None,
                                            object_records_per_location=((30, 20), (5,)))
    loc = sb.location_ids[0]
    record = truth_records(sb, loc, PETS)[0]["id"]
    sb.revoke_scopes(loc, ["associations.readonly", "objects/schema.readonly"])
    for method, path, scope in SCOPED:
        url = path.format(loc=loc, record=record)
        body = {"locationId": loc, "pageLimit": 10, **SEARCH} if method == "POST" else None
        response = Api(sb, loc).http.request(method, url, json=body)
        if scope in ("associations.readonly", "objects/schema.readonly"):
            assert response.status_code == 401, url
            assert response.json()["message"] == "The token is not authorized for this scope."
        else:  # the neighbours (relations, record search) keep their own scopes
            assert response.status_code == 200, (url, response.text)
    assert Api(sb, loc).get(f"/objects/{PETS}/records/{record}").status_code == 200
    sb.revoke_scopes(loc, [scope for _, _, scope in SCOPED])
    for method, path, _ in SCOPED:
        body = {"locationId": loc, "pageLimit": 10, **SEARCH} if method == "POST" else None
        assert Api(sb, loc).http.request(method, path.format(loc=loc, record=record), json=body).status_code == 401
    assert Api(sb, loc).get(f"/objects/{PETS}/records/{record}").status_code == 401
