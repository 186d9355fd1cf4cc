"""Deprecated `GET /contacts/`: still works, dateAdded order, startAfter/startAfterId, max 100, no
updated-since filter."""

from __future__ import annotations

from datetime import datetime

import pytest

from highlevel_sync.sandbox import Sandbox

from .conftest import Api


def ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp() * 1000)


def test_walks_every_contact_in_date_added_order(big: Sandbox) -> None:
    loc = big.location_ids[1]  # 300 contacts
    api = Api(big, loc)
    seen: list[dict[str, object]] = []
    params: dict[str, object] = {"locationId": loc, "limit": 100}
    while True:
        body = api.get("/contacts/", **params).json()
        seen.extend(body["contacts"])
        assert body["count"] == body["meta"]["total"] == 300 and body["traceId"]
        if not body["meta"]["nextPageUrl"]:
            break
        params.update(startAfter=body["meta"]["startAfter"], startAfterId=body["meta"]["startAfterId"])
    truth = sorted(big.truth_contacts(loc), key=lambda c: (c["dateAdded"], c["id"]))
    assert [c["id"] for c in seen] == [c["id"] for c in truth]


def test_meta_block_and_next_page_url(big: Sandbox) -> None:
    loc = big.location_ids[1]
    body = Api(big, loc).get("/contacts/", locationId=loc, limit=20).json()
    meta = body["meta"]
    last = body["contacts"][-1]
    assert len(body["contacts"]) == 20
    assert meta["startAfterId"] == last["id"] and meta["startAfter"] == ms(last["dateAdded"])
    assert meta["currentPage"] == 1 and meta["nextPage"] == 2 and meta["prevPage"] is None
    assert meta["nextPageUrl"].startswith(f"{big.base_url}/contacts/?locationId={loc}")
    assert "searchAfter" not in last


def test_default_limit_is_20_and_more_than_100_is_refused(big: Sandbox) -> None:
    loc = big.location_ids[1]
    api = Api(big, loc)
    assert len(api.get("/contacts/", locationId=loc).json()["contacts"]) == 20
    refused = api.get("/contacts/", locationId=loc, limit=101)
    assert refused.status_code == 422 and isinstance(refused.json()["message"], list)
    assert api.get("/contacts/").status_code == 422  # locationId is required


@pytest.mark.parametrize("param", ["startAfter", "limit"])
def test_non_numeric_paging_values_are_refused(big: Sandbox, param: str) -> None:
    loc = big.location_ids[1]
    assert Api(big, loc).get("/contacts/", locationId=loc, **{param: "soon"}).status_code == 422


def test_there_is_no_updated_since_filter(big: Sandbox) -> None:
    """Unknown query parameters are ignored, as upstream: asking for 'changed since' returns everything."""
    loc = big.location_ids[2]
    body = Api(big, loc).get("/contacts/", locationId=loc, limit=100, dateUpdated="2030-01-01").json()
    assert body["meta"]["total"] == 40 and len(body["contacts"]) == 40
