"""The receiver's HTTP contract, in-process: every refusal has the right status and writes nothing;
random bodies and headers never produce a 5xx or an exception."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sources.highlevel.webhooks import Inbox, Receiver, WebhookConfig, create_app
from sources.highlevel.webhooks.events import ALIASES
from sources.highlevel.webhooks.signing import SigningKeys, SignScheme, sign_ed25519

from .conftest import EXAMPLES, WEBHOOK_PATH, TestClient, body_of, signed


def now_iso(delta: timedelta = timedelta()) -> str:
    return (datetime.now(UTC) + delta).isoformat().replace("+00:00", "Z")


def contact(webhook_id: str = "wh-1", **extra: Any) -> dict[str, Any]:
    return {"type": "ContactUpdate", "locationId": "L1", "id": "c1", "webhookId": webhook_id,
            "timestamp": now_iso(), **extra}


@pytest.fixture
def receiver(make_receiver: Callable[..., Receiver]) -> Receiver:
    return make_receiver()


@pytest.fixture
def client(receiver: Receiver) -> Iterator[TestClient]:
    with TestClient(receiver.app) as test_client:
        yield test_client


def stored(receiver: Receiver) -> int:
    return int(receiver.inbox.counts()["events"])


def test_signed_delivery_is_accepted_once(client: TestClient, receiver: Receiver, keys: SigningKeys) -> None:
    body, headers = signed(keys, contact())
    first = client.post(WEBHOOK_PATH, content=body, headers=headers)
    assert (first.status_code, first.json()) == (200, {"status": "accepted"})
    replay = client.post(WEBHOOK_PATH, content=body, headers=headers)
    assert (replay.status_code, replay.json()) == (200, {"status": "duplicate"})
    re_signed = client.post(WEBHOOK_PATH, content=body, headers=keys.headers(body, "rsa"))  # same webhookId
    assert re_signed.json() == {"status": "duplicate"}
    rsa_body, rsa_headers = signed(keys, contact("wh-2"), "rsa")
    assert client.post(WEBHOOK_PATH, content=rsa_body, headers=rsa_headers).json() == {"status": "accepted"}
    assert stored(receiver) == 2


def test_published_example_without_timestamp_or_id_is_accepted(client: TestClient, keys: SigningKeys) -> None:
    raw = (EXAMPLES / "OpportunityDelete.json").read_bytes()
    response = client.post(WEBHOOK_PATH, content=raw, headers=keys.headers(raw))
    assert response.json() == {"status": "accepted"}
    assert client.post(WEBHOOK_PATH, content=raw, headers=keys.headers(raw)).json() == {"status": "duplicate"}


def refusals(keys: SigningKeys, other: SigningKeys) -> list[tuple[str, bytes, dict[str, str], int]]:
    good = body_of(contact("r"))
    return [
        ("unsigned", good, {}, 401),
        ("forged", good, {"x-ghl-signature": sign_ed25519(good + b" ", keys.ed25519)}, 401),
        ("wrong key", good, other.headers(good, "both"), 401),
        ("N/A only", good, {"x-ghl-signature": "N/A", "x-wh-signature": "N/A"}, 401),
        ("stale timestamp", *signed(keys, contact("s", timestamp=now_iso(-timedelta(minutes=6)))), 401),
        ("future timestamp", *signed(keys, contact("f", timestamp=now_iso(timedelta(minutes=6)))), 401),
        ("garbage timestamp", *signed(keys, contact("g", timestamp="tomorrow-ish")), 400),
        ("malformed JSON", *signed(keys, b'{"type": "ContactUpdate",'), 400),
        ("JSON array", *signed(keys, b"[1, 2]"), 400),
        ("NaN", *signed(keys, b'{"x": NaN}'), 400),
        ("deep nesting", *signed(keys, b'{"a":' * 100_000 + b"1" + b"}" * 100_000), 400),
        ("not UTF-8", *signed(keys, b'{"type": "\xff\xfe"}'), 400),
        ("oversized", *signed(keys, contact("big", pad="x" * (1024 * 1024))), 413),
        ("oversized and unsigned", body_of(contact("big2", pad="x" * (1024 * 1024))), {}, 413),
    ]


REFUSALS = ["unsigned", "forged", "wrong key", "N/A only", "stale timestamp", "future timestamp",
            "garbage timestamp", "malformed JSON", "JSON array", "NaN", "deep nesting", "not UTF-8", "oversized",
            "oversized and unsigned"]


@pytest.mark.parametrize("case", REFUSALS)
def test_refusals_write_nothing_and_health_stays_ok(
    case: str, client: TestClient, receiver: Receiver, keys: SigningKeys, other_keys: SigningKeys
) -> None:
    name, body, headers, status = next(r for r in refusals(keys, other_keys) if r[0] == case)
    response = client.post(WEBHOOK_PATH, content=body, headers=headers)
    assert response.status_code == status, name
    assert response.json()["status"] == "rejected"
    assert stored(receiver) == 0
    health = client.get("/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert health.json()["receiver"]["rejected"] == {str(status): 1}


def test_the_refusal_table_is_complete(keys: SigningKeys, other_keys: SigningKeys) -> None:
    assert [case[0] for case in refusals(keys, other_keys)] == REFUSALS


def test_size_is_checked_before_the_signature(client: TestClient) -> None:
    """Unsigned and too big: 413, so no signature work is spent on it (a declared-size lie: test_http)."""
    big = b"x" * (1024 * 1024 + 1)
    assert client.post(WEBHOOK_PATH, content=big).status_code == 413


def test_size_limit_is_configurable(make_receiver: Callable[..., Receiver], make_config: Callable[..., WebhookConfig],
                                    keys: SigningKeys) -> None:
    receiver = make_receiver(config=make_config(max_body_bytes=100))
    body, headers = signed(keys, contact(pad="x" * 100))
    with TestClient(receiver.app) as client:
        assert client.post(WEBHOOK_PATH, content=body, headers=headers).status_code == 413


def test_app_id_is_enforced_when_configured(make_receiver: Callable[..., Receiver],
                                            make_config: Callable[..., WebhookConfig], keys: SigningKeys) -> None:
    receiver = make_receiver(config=make_config(app_id="my-app"))
    with TestClient(receiver.app) as client:
        other = signed(keys, {"type": "INSTALL", "appId": "someone-else", "locationId": "L1", "webhookId": "a"})
        assert client.post(WEBHOOK_PATH, content=other[0], headers=other[1]).status_code == 403
        mine = signed(keys, {"type": "INSTALL", "appId": "my-app", "locationId": "L1", "webhookId": "b"})
        assert client.post(WEBHOOK_PATH, content=mine[0], headers=mine[1]).status_code == 200
        no_app = signed(keys, contact("c"))  # data events carry no appId: allowed
        assert client.post(WEBHOOK_PATH, content=no_app[0], headers=no_app[1]).status_code == 200
        assert stored(receiver) == 2


def test_inbox_failure_answers_429_with_retry_after(make_config: Callable[..., WebhookConfig], keys: SigningKeys,
                                                    tmp_path: Path) -> None:
    inbox = Inbox(tmp_path / "broken.sqlite")
    app = create_app(make_config(), inbox)
    inbox._conn.execute("PRAGMA query_only = ON")  # every write now fails, as on a full or read-only disk
    body, headers = signed(keys, contact())
    with TestClient(app) as client:
        response = client.post(WEBHOOK_PATH, content=body, headers=headers)
        assert response.status_code == 429 and response.headers["retry-after"] == "600"
        assert response.json()["status"] == "retry"
        health = client.get("/healthz").json()
        assert health["status"] == "ok" and "inbox write failed" in health["receiver"]["last_error"]["error"]
        inbox._conn.execute("PRAGMA query_only = OFF")
        assert client.post(WEBHOOK_PATH, content=body, headers=headers).json() == {"status": "accepted"}
    inbox.close()


def test_healthz_shows_counts_and_no_secrets(client: TestClient, keys: SigningKeys) -> None:
    body, headers = signed(keys, contact())
    client.post(WEBHOOK_PATH, content=body, headers=headers)
    client.post(WEBHOOK_PATH, content=body, headers={"x-ghl-signature": "Zm9yZ2Vk"})
    health = client.get("/healthz")
    assert health.status_code == 200
    data = health.json()
    assert data["inbox"]["events_by_type"] == {"ContactUpdate": 1}
    assert data["receiver"]["accepted"] == 1 and data["receiver"]["rejected"] == {"401": 1}
    text = health.text
    assert headers["x-ghl-signature"] not in text and "Zm9yZ2Vk" not in text and "BEGIN" not in text


def test_healthz_is_503_when_the_inbox_is_unreadable(make_config: Callable[..., WebhookConfig], tmp_path: Path) -> None:
    inbox = Inbox(tmp_path / "inbox.sqlite")
    app = create_app(make_config(), inbox)
    inbox.close()
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 503
        assert client.post(WEBHOOK_PATH, content=b"{}").status_code == 401  # still no 5xx for deliveries


def test_wrong_method_and_path_are_4xx(client: TestClient) -> None:
    assert client.get(WEBHOOK_PATH).status_code == 405
    assert client.post("/elsewhere", content=b"{}").status_code == 404


# -- property: random bodies and headers -------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=20)
field_values = st.one_of(
    json_values, st.sampled_from(["L1", "c1", "", "\ud800", "N/A"]), st.sampled_from(sorted(ALIASES)),
    st.builds(lambda d: now_iso(timedelta(seconds=d)), st.integers(-1000, 1000)),
)
objects = st.dictionaries(
    st.sampled_from(["type", "locationId", "id", "webhookId", "timestamp", "appId", "data", "appointment",
                     "companyId", "messageId"]) | st.text(max_size=8),
    field_values, max_size=8,
)
bodies = st.one_of(
    st.binary(max_size=300),
    objects.map(lambda obj: json.dumps(obj).encode()),
    json_values.map(lambda value: json.dumps(value).encode()),
)
header_names = st.sampled_from(["x-ghl-signature", "X-WH-Signature", "content-type", "x-other", "X-GHL-SIGNATURE"])
header_values = st.one_of(st.sampled_from(["N/A", "", "AAAA", "=="]), st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=100))
signing = st.sampled_from(["none", "ed25519", "rsa", "both", "other"])
SCHEMES: dict[str, SignScheme] = {"ed25519": "ed25519", "rsa": "rsa", "both": "both"}


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies, headers=st.dictionaries(header_names, header_values, max_size=3), how=signing)
def test_random_deliveries_never_5xx(client: TestClient, receiver: Receiver, keys: SigningKeys,
                                     other_keys: SigningKeys, body: bytes, headers: dict[str, str], how: str) -> None:
    before = stored(receiver)
    if how in SCHEMES:
        headers = {**headers, **keys.headers(body, SCHEMES[how])}
    elif how == "other":
        headers = {**headers, **other_keys.headers(body, "both")}
    response = client.post(WEBHOOK_PATH, content=body, headers=headers)
    assert response.status_code in (200, 400, 401, 403, 413), response.text
    if response.status_code == 200:
        assert how in ("ed25519", "rsa", "both")
        assert response.json()["status"] in ("accepted", "duplicate")
        assert stored(receiver) == before + (response.json()["status"] == "accepted")
    else:
        assert stored(receiver) == before
        if how in ("none", "other") and "x-ghl-signature" not in {k.lower() for k in headers} \
                and "x-wh-signature" not in {k.lower() for k in headers}:
            assert response.status_code == 401
    assert client.get("/healthz").status_code == 200


def test_nothing_is_stored_from_rejections_in_the_file_either(client: TestClient, receiver: Receiver) -> None:
    client.post(WEBHOOK_PATH, content=b'{"type":"ContactDelete"}', headers={"x-ghl-signature": "AAAA"})
    con = sqlite3.connect(receiver.inbox.path)
    assert con.execute("SELECT COUNT(*) FROM events").fetchone() == (0,)
    con.close()
