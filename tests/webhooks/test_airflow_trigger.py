"""The Airflow trigger: a DAG run with conf {locations, resources} on Airflow 3 (REST v2, bearer token
from /auth/token) or Airflow 2 (REST v1, basic auth), chosen by config or detected; errors never
carry a password or token."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from sources.highlevel.webhooks import AirflowTrigger, TriggerError

Handler = Callable[[httpx.Request], httpx.Response]


class FakeAirflow:
    """Airflow 3's API server (v2) or Airflow 2's webserver (v1), as far as the trigger uses them."""

    def __init__(self, major: int, password: str = "pw") -> None:
        self.major, self.password = major, password
        self.seen: list[httpx.Request] = []
        self.issued: list[str] = []
        self.valid: set[str] = set()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        path = request.url.path
        if self.major == 3 and path == "/auth/token":
            body = json.loads(request.content)
            if body != {"username": "user", "password": self.password}:
                return httpx.Response(401, json={"detail": "Invalid credentials"})
            token = f"jwt-{len(self.issued)}"
            self.issued.append(token)
            self.valid.add(token)
            return httpx.Response(201, json={"access_token": token})
        if path.startswith(f"/api/v{self.major - 1}/"):
            if path.endswith("/version"):
                return httpx.Response(200, json={"version": f"{self.major}.0.0"})
            if self.major == 3 and request.headers.get("authorization", "").removeprefix("Bearer ") not in self.valid:
                return httpx.Response(401, json={"detail": "Not authenticated"})
            return httpx.Response(200, json={"dag_run_id": f"manual__{len(self.seen)}", "state": "queued"})
        return httpx.Response(404, json={"detail": "Not Found"})

    def posts(self) -> list[httpx.Request]:
        return [r for r in self.seen if r.method == "POST" and "/dagRuns" in r.url.path]


def trigger_for(server: FakeAirflow, **kw: object) -> AirflowTrigger:
    return AirflowTrigger("http://airflow:8080/", "highlevel_sync", auth=("user", server.password),
                          transport=httpx.MockTransport(server), **kw)  # type: ignore[arg-type]


def test_airflow_2_posts_to_v1_with_basic_auth() -> None:
    server = FakeAirflow(2)
    trigger = trigger_for(server, api_version="1")
    assert trigger("L1", {"opportunities", "contacts"}) == "manual__1"
    (request,) = server.posts()
    assert str(request.url) == "http://airflow:8080/api/v1/dags/highlevel_sync/dagRuns"
    assert json.loads(request.content) == {"conf": {"locations": ["L1"], "resources": ["contacts", "opportunities"]}}
    assert request.headers["authorization"].startswith("Basic ")
    assert request.headers["user-agent"].startswith("highlevel-dlt/")
    trigger.close()


def test_airflow_3_posts_to_v2_with_a_bearer_token_fetched_once() -> None:
    server = FakeAirflow(3)
    trigger = trigger_for(server, api_version="2")
    trigger("L1", {"contacts"})
    trigger("L2", {"contacts"})
    first, second = server.posts()
    assert first.url.path == "/api/v2/dags/highlevel_sync/dagRuns"
    assert json.loads(first.content) == {"logical_date": None, "conf": {"locations": ["L1"], "resources": ["contacts"]}}
    assert first.headers["authorization"] == second.headers["authorization"] == "Bearer jwt-0"
    assert server.issued == ["jwt-0"]


def test_an_expired_airflow_3_token_is_fetched_again_once() -> None:
    server = FakeAirflow(3)
    trigger = trigger_for(server, api_version="2")
    trigger("L1", {"contacts"})
    server.valid.clear()  # the JWT expired
    assert trigger("L1", {"contacts"}) is not None
    assert server.issued == ["jwt-0", "jwt-1"]


@pytest.mark.parametrize("major", [2, 3])
def test_the_api_version_is_detected_once(major: int) -> None:
    server = FakeAirflow(major)
    trigger = trigger_for(server)
    trigger("L1", {"contacts"})
    trigger("L2", {"users"})
    assert trigger.api_version == str(major - 1)
    assert [r.url.path for r in server.seen].count("/api/v2/version") == 1
    assert {r.url.path for r in server.posts()} == {f"/api/v{major - 1}/dags/highlevel_sync/dagRuns"}


def test_a_given_airflow_3_token_is_used_as_is() -> None:
    server = FakeAirflow(3)
    server.valid.add("preissued")
    trigger = AirflowTrigger("http://airflow", "highlevel_sync", api_version="2", token="preissued",
                             transport=httpx.MockTransport(server))
    trigger("L1", {"contacts"})
    assert server.posts()[0].headers["authorization"] == "Bearer preissued" and server.issued == []


def test_wrong_airflow_3_password_is_a_trigger_error_without_it() -> None:
    server = FakeAirflow(3, password="right")
    trigger = AirflowTrigger("http://airflow", "dag", auth=("user", "s3cret-pw"), api_version="2",
                             transport=httpx.MockTransport(server))
    with pytest.raises(TriggerError, match="AIRFLOW_PASSWORD") as info:
        trigger("L1", {"contacts"})
    assert "s3cret" not in str(info.value) and server.posts() == []


@pytest.mark.parametrize("response", [httpx.Response(404, json={"title": "DAG not found"}), httpx.Response(401)])
def test_airflow_refusal_is_a_trigger_error_without_credentials(response: httpx.Response) -> None:
    trigger = AirflowTrigger("http://airflow", "dag", auth=("user", "s3cret-pw"), api_version="1",
                             transport=httpx.MockTransport(lambda request: response))
    with pytest.raises(TriggerError) as info:
        trigger("L1", {"contacts"})
    assert str(response.status_code) in str(info.value) and "s3cret" not in str(info.value)


def test_airflow_unreachable_is_a_trigger_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(TriggerError, match="cannot reach"):
        AirflowTrigger("http://airflow", "dag", transport=httpx.MockTransport(refuse))("L1", {"contacts"})
