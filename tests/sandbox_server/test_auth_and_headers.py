"""Version header, bearer tokens and their scope, error bodies (CONTRACT §1, §2.7, §5)."""

from __future__ import annotations

import re

import httpx
import pytest

from highlevel_sync.sandbox import Sandbox

from .conftest import Api


def test_version_header_missing_wrong_and_right(big: Sandbox) -> None:
    missing = Api(big, version=None).search()
    assert missing.status_code == 400
    assert missing.json() == {"statusCode": 400, "message": "Version header was not found"}
    wrong = Api(big, version="2021-04-15").search()  # the conversations family's value
    assert wrong.status_code == 400 and "2021-04-15" in wrong.json()["message"]
    assert Api(big, version="v3").search().status_code == 400
    assert Api(big).search().status_code == 200


@pytest.mark.parametrize("path", ["/locations/{loc}", "/locations/{loc}/customFields", "/users/search"])
def test_every_family_route_checks_the_version(big: Sandbox, path: str) -> None:
    loc = big.location_ids[0]
    url = path.format(loc=loc)
    params = {"companyId": big.company_id, "locationId": loc}
    assert Api(big, version=None).get(url, **params).status_code == 400
    assert Api(big, version="2021-04-15").get(url, **params).status_code == 400
    assert Api(big).get(url, **params).status_code == 200


def test_private_integration_tokens_are_per_location_uuid4s(big: Sandbox) -> None:
    tokens = [big.token_for(loc) for loc in big.location_ids]
    assert len(set(tokens)) == 3
    for token in tokens:
        assert re.fullmatch(r"pit-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", token)


@pytest.mark.parametrize("header", [None, "Bearer pit-00000000-0000-4000-8000-000000000000", "Basic abc", "Bearer"])
def test_missing_or_unknown_token_is_401(big: Sandbox, header: str | None) -> None:
    headers = {"Version": "2021-07-28"} | ({"Authorization": header} if header is not None else {})
    response = httpx.post(f"{big.base_url}/contacts/search", headers=headers,
                          json={"locationId": big.location_ids[0], "pageLimit": 10})
    assert response.status_code == 401
    assert response.json() == {"statusCode": 401, "message": "Invalid token: access token is invalid",
                               "error": "Unauthorized"}


def test_a_location_token_cannot_read_another_location(big: Sandbox) -> None:
    first, second = big.location_ids[:2]
    api = Api(big, first)
    forbidden = {"statusCode": 403, "message": "The token does not have access to this location."}
    body = api.http.post("/contacts/search", json={"locationId": second, "pageLimit": 10})
    assert body.status_code == 403 and body.json() == forbidden
    assert api.get("/contacts/", locationId=second).json() == forbidden
    assert api.get(f"/locations/{second}").json() == forbidden
    assert api.get(f"/locations/{second}/customFields").json() == forbidden
    users = api.get("/users/search", companyId=big.company_id, locationId=second)
    assert users.status_code == 403


def test_success_bodies_carry_a_trace_id_and_errors_the_documented_shape(big: Sandbox) -> None:
    api = Api(big)
    assert re.fullmatch(r"[0-9a-f-]{36}", api.search_ok()["traceId"])
    assert api.get(f"/locations/{api.location_id}").json()["traceId"]
    error = api.search(pageLimit=0).json()
    assert set(error) == {"statusCode", "message", "error"} and error["statusCode"] == 422


def test_unknown_routes_and_methods_and_bad_json_answer_json(big: Sandbox) -> None:
    api = Api(big)
    missing = api.get("/contacts/search/everything")
    assert missing.status_code == 404 and missing.json()["statusCode"] == 404
    wrong_method = api.get("/contacts/search")
    assert wrong_method.status_code == 405 and wrong_method.json()["statusCode"] == 405
    bad = api.http.post("/contacts/search", content=b"{not json", headers={"Content-Type": "application/json"})
    assert bad.status_code == 400 and bad.json()["statusCode"] == 400
