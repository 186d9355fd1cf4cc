"""End-to-end harness: the sandbox on loopback, a real DuckDB file, the real run_sync."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dlt
import duckdb
import pytest

from highlevel_sync.sandbox import Sandbox
from highlevel_sync.sync import SyncRequest, SyncResult, duckdb_destination, run_sync
from sources.highlevel.auth import StaticAuthProvider
from sources.highlevel.config import validate

CONTACT_RESOURCES = ["contacts", "custom_fields", "users", "locations"]


class Harness:
    """Runs syncs of a sandbox into one DuckDB file with one pipeline state dir, like a user would."""

    def __init__(self, sandbox: Sandbox, tmp_path: Path) -> None:
        self.sb = sandbox
        self.db_path = tmp_path / "hl.duckdb"
        self.pipelines_dir = tmp_path / "pipelines"
        self.big = sandbox.location_ids[0]

    def run(self, locations: list[str] | None = None, client_options: dict[str, Any] | None = None,
            config: dict[str, Any] | None = None, **request: Any) -> SyncResult:
        locations = locations or [self.big]
        # scheduled sweeps off unless a test turns them on: a due sweep would change what a run reads
        settings = validate({"base_url": self.sb.base_url, "location_ids": locations, "max_attempts": 6,
                             "sweep_every_hours": 0, **(config or {})})
        auth = StaticAuthProvider({loc: self.sb.token_for(loc) for loc in self.sb.location_ids})
        request.setdefault("resources", CONTACT_RESOURCES)
        sync = SyncRequest(destination=duckdb_destination(self.db_path), pipelines_dir=str(self.pipelines_dir),
                           **request)
        options = {"backoff_base_s": 0.05, "backoff_max_s": 0.5, **(client_options or {})}
        return run_sync(sync, config=settings, auth=auth, client_options=options)

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with duckdb.connect(str(self.db_path), read_only=True) as con:
            return con.execute(sql, list(params)).fetchall()

    def state(self, resource: str) -> dict[str, Any]:
        """A resource's committed dlt state (cursors per location...)."""
        pipeline = dlt.attach("highlevel", pipelines_dir=str(self.pipelines_dir))
        resources: dict[str, Any] = pipeline.state["sources"]["highlevel"]["resources"]
        return resources.get(resource, {})

    def contact_ids(self, location_id: str | None = None) -> list[str]:
        location_id = location_id or self.big
        return [r[0] for r in self.query(
            "select id from highlevel.contacts where location_id = ? order by id", location_id)]

    def truth_ids(self, location_id: str | None = None) -> list[str]:
        return sorted(c["id"] for c in self.sb.truth_contacts(location_id or self.big))

    def search_requests(self, location_id: str | None = None) -> int:
        return sum(1 for r in self.sb.requests("/contacts/search")
                   if location_id is None or r["location_id"] == location_id)


@pytest.fixture
def harness(highlevel_sandbox_factory: Any, tmp_path: Path) -> Iterator[Harness]:
    sb = highlevel_sandbox_factory(contacts_per_location=(12_500, 300, 40), index_lag_s=1.0)
    yield Harness(sb, tmp_path)


@pytest.fixture
def small_harness(highlevel_sandbox_factory: Any, tmp_path: Path) -> Iterator[Harness]:
    sb = highlevel_sandbox_factory(contacts_per_location=(1_200, 300, 40), index_lag_s=1.0)
    yield Harness(sb, tmp_path)
