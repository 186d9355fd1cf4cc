"""Start a `highlevel_sync` DAG run from the webhook receiver, on Airflow 3 or Airflow 2.

- Airflow 3: `POST /api/v2/dags/{dag_id}/dagRuns`, authenticated with a bearer token (a JWT the API
  server issues at `POST /auth/token` for a username and password, or one given directly); an
  expired token is fetched again once.
- Airflow 2: `POST /api/v1/dags/{dag_id}/dagRuns` with basic auth.
- `api_version="auto"` asks the server once: `GET /api/v2/version` exists only on Airflow 3 (any
  answer but 404 means v2).

The body is the same for both: `conf = {"locations": [...], "resources": [...]}`. Refusals and
network errors become TriggerError (the debouncer keeps the marks and retries); no message carries
a password or token.
"""

from __future__ import annotations

import logging
import threading
from typing import Any
from urllib.parse import quote

import httpx

from ..client import USER_AGENT
from .debounce import TriggerError

logger = logging.getLogger("highlevel.webhooks.airflow")

API_VERSIONS = ("auto", "1", "2")


class _Bearer(httpx.Auth):
    """Airflow 3's JWT: fetched at first use, fetched again once when a request gets a 401."""

    def __init__(self, owner: AirflowTrigger) -> None:
        self.owner = owner

    def auth_flow(self, request: httpx.Request) -> Any:
        request.headers["Authorization"] = f"Bearer {self.owner._bearer(refresh=False)}"
        response = yield request
        if response.status_code == 401 and self.owner._can_refresh_token():
            request.headers["Authorization"] = f"Bearer {self.owner._bearer(refresh=True)}"
            yield request


class AirflowTrigger:
    """Starts a DAG run through Airflow's REST API (v2 on Airflow 3, v1 on Airflow 2)."""

    def __init__(
        self,
        base_url: str,
        dag_id: str,
        auth: httpx.Auth | tuple[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout_s: float = 30.0,
        *,
        api_version: str = "auto",
        token: str | None = None,
    ) -> None:
        if api_version not in API_VERSIONS:
            raise ValueError(f"api_version must be one of {', '.join(API_VERSIONS)}, not {api_version!r}")
        self.dag_id = dag_id
        self._credentials = auth if isinstance(auth, tuple) else None
        self._custom_auth = auth if isinstance(auth, httpx.Auth) else None
        self._static_token = token
        self._token: str | None = token
        self._token_lock = threading.Lock()
        self._version: str | None = None if api_version == "auto" else api_version
        self._client = httpx.Client(base_url=base_url.rstrip("/"), transport=transport, timeout=timeout_s,
                                    headers={"User-Agent": USER_AGENT})

    @property
    def api_version(self) -> str:
        """"1" or "2", detected at first use unless configured."""
        if self._version is None:
            self._version = self._detect()
        return self._version

    def __call__(self, location_id: str, resources: set[str]) -> str | None:
        conf = {"locations": [location_id], "resources": sorted(resources)}
        try:
            version = self.api_version
            path = f"/api/v{version}/dags/{quote(self.dag_id, safe='')}/dagRuns"
            # Airflow 3.0 requires the key (null: a run "now"); Airflow 2 sets it itself
            body: dict[str, Any] = {"conf": conf} if version == "1" else {"logical_date": None, "conf": conf}
            auth = self._auth(version)
            response = self._client.post(path, json=body, auth=httpx.USE_CLIENT_DEFAULT if auth is None else auth)
        except httpx.HTTPError as exc:
            raise TriggerError(f"cannot reach Airflow to start DAG {self.dag_id}: {type(exc).__name__}") from None
        if response.status_code >= 400:
            raise TriggerError(f"Airflow refused a run of DAG {self.dag_id}: HTTP {response.status_code}; check the"
                               " DAG id, that it is unpaused, and the API credentials")
        try:
            run_id = response.json().get("dag_run_id")
        except (ValueError, AttributeError):
            run_id = None
        logger.info("Airflow DAG %s run %s started for location %s (%s)", self.dag_id, run_id, location_id,
                    ", ".join(sorted(resources)))
        return run_id if isinstance(run_id, str) else None

    def close(self) -> None:
        self._client.close()

    # -- internals --------------------------------------------------------------------------------

    def _auth(self, version: str) -> httpx.Auth | tuple[str, str] | None:
        if self._custom_auth is not None:
            return self._custom_auth
        if version == "1":
            return self._credentials
        if self._static_token or self._credentials:
            return _Bearer(self)
        return None

    def _detect(self) -> str:
        response = self._client.get("/api/v2/version")
        version = "1" if response.status_code == 404 else "2"
        logger.info("Airflow at %s speaks REST API v%s", self._client.base_url, version)
        return version

    def _can_refresh_token(self) -> bool:
        return self._credentials is not None

    def _bearer(self, refresh: bool) -> str:
        with self._token_lock:
            if self._token is None or (refresh and self._credentials is not None):
                self._token = self._fetch_token()
            return self._token

    def _fetch_token(self) -> str:
        if self._credentials is None:
            raise TriggerError("Airflow 3 needs a token: set AIRFLOW_USERNAME and AIRFLOW_PASSWORD, "
                               "or AIRFLOW_API_TOKEN")
        username, password = self._credentials
        try:
            response = self._client.post("/auth/token", json={"username": username, "password": password})
        except httpx.HTTPError as exc:
            raise TriggerError(f"cannot reach Airflow to get an API token: {type(exc).__name__}") from None
        token = None
        if response.status_code < 400:
            try:
                token = response.json().get("access_token")
            except (ValueError, AttributeError):
                token = None
        if not isinstance(token, str) or not token:
            raise TriggerError(f"Airflow refused an API token for user {username!r}: HTTP {response.status_code}; "
                               "check AIRFLOW_USERNAME / AIRFLOW_PASSWORD")
        return token
