"""Locations, custom-field definitions and users, shaped like the OpenAPI specs."""

from __future__ import annotations

import pytest

from highlevel_sync.sandbox import Sandbox

from .conftest import Api

DATA_TYPES = {"TEXT", "LARGE_TEXT", "NUMERICAL", "PHONE", "MONETORY", "CHECKBOX", "SINGLE_OPTIONS",
              "MULTIPLE_OPTIONS", "DATE", "RADIO", "TEXTBOX_LIST", "FILE_UPLOAD", "EMAIL"}


def test_get_location(big: Sandbox) -> None:
    loc = big.location_ids[1]
    body = Api(big, loc).get(f"/locations/{loc}").json()
    location = body["location"]
    for name in ("id", "companyId", "name", "domain", "address", "city", "state", "country", "postalCode",
                 "website", "timezone", "firstName", "lastName", "email", "phone", "business", "social",
                 "settings", "reseller"):
        assert name in location, name
    assert location["id"] == loc and location["companyId"] == big.company_id
    assert location == big.truth_location(loc)
    timezones = [big.truth_location(x)["timezone"] for x in big.location_ids]
    assert len(set(timezones)) == 3 and "Asia/Kolkata" in timezones


def test_custom_fields_default_to_contact_and_cover_every_data_type(big: Sandbox) -> None:
    loc = big.location_ids[0]
    api = Api(big, loc)
    contact = api.get(f"/locations/{loc}/customFields").json()["customFields"]
    assert {f["model"] for f in contact} == {"contact"}
    assert {f["dataType"] for f in contact} == DATA_TYPES
    for field in contact:
        assert field["fieldKey"].startswith("contact.") and field["locationId"] == loc
        assert set(field) >= {"id", "name", "fieldKey", "dataType", "placeholder", "position", "picklistOptions",
                              "locationId", "model"}
    opportunity = api.get(f"/locations/{loc}/customFields", model="opportunity").json()["customFields"]
    assert 2 <= len(opportunity) <= 3 and {f["model"] for f in opportunity} == {"opportunity"}
    everything = api.get(f"/locations/{loc}/customFields", model="all").json()["customFields"]
    assert len(everything) == len(contact) + len(opportunity)
    assert contact == big.truth_custom_fields(loc)
    assert api.get(f"/locations/{loc}/customFields", model="invoice").status_code == 422


def test_contact_custom_values_are_typed_per_data_type(big: Sandbox) -> None:
    loc = big.location_ids[0]
    types = {f["id"]: f["dataType"] for f in big.truth_custom_fields(loc)}
    seen: dict[str, set[type]] = {}
    for contact in big.truth_contacts(loc)[:3000]:
        for value in contact["customFields"]:
            assert set(value) == {"id", "value"}
            seen.setdefault(types[value["id"]], set()).add(type(value["value"]))
    assert set(seen) == DATA_TYPES
    assert seen["NUMERICAL"] <= {int, float} and seen["MONETORY"] <= {int, float} and seen["DATE"] == {int}
    assert seen["CHECKBOX"] == seen["MULTIPLE_OPTIONS"] == {list}
    assert seen["TEXTBOX_LIST"] == seen["FILE_UPLOAD"] == {dict}
    assert seen["TEXT"] == seen["SINGLE_OPTIONS"] == seen["EMAIL"] == {str}


def test_users_search(big: Sandbox) -> None:
    loc = big.location_ids[0]
    api = Api(big, loc)
    body = api.get("/users/search", companyId=big.company_id, locationId=loc).json()
    assert body["count"] == 5 and len(body["users"]) == 5 and body["traceId"]
    user = body["users"][0]
    for name in ("id", "name", "firstName", "lastName", "email", "phone", "extension", "permissions", "roles",
                 "deleted"):
        assert name in user, name
    assert set(user["roles"]) == {"type", "role", "locationIds", "restrictSubAccount"}
    assert user["roles"]["locationIds"] == [loc]
    assert body["users"] == big.truth_users(loc)
    page = api.get("/users/search", companyId=big.company_id, locationId=loc, skip="2", limit="2").json()
    assert [u["id"] for u in page["users"]] == [u["id"] for u in body["users"][2:4]] and page["count"] == 5


@pytest.mark.parametrize("params", [{"locationId": "{loc}"}, {"companyId": "{company}", "locationId": "{loc}",
                                                              "limit": "101"}])
def test_users_search_requires_company_id_and_caps_limit(big: Sandbox, params: dict[str, str]) -> None:
    loc = big.location_ids[0]
    filled = {k: v.format(loc=loc, company=big.company_id) for k, v in params.items()}
    response = Api(big, loc).get("/users/search", **filled)
    assert response.status_code == 422 and isinstance(response.json()["message"], list)
