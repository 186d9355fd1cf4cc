"""Deterministic crash safety (issue 12, item 3): SIGKILL at every point where durable pieces can disagree.

Each case runs the CLI as a user would, with `HIGHLEVEL_KILL_POINT` naming one point
(`sources/highlevel/killpoints.py`), checks that the process really died by SIGKILL at it, then runs
again without the hook and checks what a user relies on: exit 0; every sandbox record in its table
exactly once, custom values complete; no load package or scratch folder left behind; and for the
token refresh, a token store that still works (the sandbox refuses a reused refresh token).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import dlt
import httpx
import pytest

from highlevel_sync.sandbox import Sandbox
from sources.highlevel.killpoints import DLT_POINTS, ENV_HIT, ENV_POINT, POINTS
from sources.highlevel.tokenstore import FileTokenStore
from sources.highlevel.webhooks.signing import generate_test_keys
from tests.webhooks.conftest import ChildReceiver

from .conftest import Harness
from .test_contacts_sync import assert_matches_truth

ROOT = Path(__file__).resolve().parents[2]
RESOURCES = "contacts,custom_fields,users,locations,opportunities,conversations,messages,form_submissions,invoices," \
            "products,product_prices"
CONTACTS, CHUNK = 300, 100  # three contacts chunks: a kill can land between them
# the tables whose rows are records with an `id` of their own, and the sandbox family they come from
FAMILIES = {"opportunities": "opportunities", "conversations": "conversations", "messages": "messages",
            "form_submissions": "form_submissions", "invoices": "invoices", "products": "products",
            "product_prices": "product_prices"}

# point -> which hit kills: late enough that earlier batches are loaded and the schema is still growing
SYNC_POINTS = {
    "mid_extract": 3,
    # the 2nd extract that changes the schema: the window behind the post-kill schema mismatch (pipelines/recovery.py)
    "extract_committed": 2,
    "after_extract": 3,
    "mid_normalize": 3,
    "mid_load": 4,
    "load_unrecorded": 3,
    "after_load": 3,
    "between_chunks": 1,
}


class CrashRig(Harness):
    """The e2e harness, driving the CLI in child processes (SIGKILL must hit a real process)."""

    def __init__(self, sandbox: Sandbox, tmp_path: Path) -> None:
        super().__init__(sandbox, tmp_path)
        self.inbox_path = tmp_path / "inbox.sqlite"
        self.store_path = tmp_path / "tokens.json"
        self.env = {
            **os.environ,
            "SOURCES__HIGHLEVEL__BASE_URL": sandbox.base_url,
            "SOURCES__HIGHLEVEL__PRIVATE_INTEGRATION_TOKEN": sandbox.token_for(self.big),
            "SOURCES__HIGHLEVEL__LOCATION_ID": self.big,
            "SOURCES__HIGHLEVEL__WEBHOOK_INBOX_PATH": str(self.inbox_path),
            "SOURCES__HIGHLEVEL__CONTACTS_PAGE_SIZE": str(CHUNK),
            "SOURCES__HIGHLEVEL__CHUNK_ROWS": str(CHUNK),
            "SOURCES__HIGHLEVEL__MAX_ATTEMPTS": "3",
            "DESTINATION__DUCKDB__CREDENTIALS": str(self.db_path),
        }
        for name in (ENV_POINT, ENV_HIT):
            self.env.pop(name, None)

    def use_oauth(self) -> None:
        """Sync with an OAuth location grant from the token store instead of the Private Integration Token."""
        del self.env["SOURCES__HIGHLEVEL__PRIVATE_INTEGRATION_TOKEN"]
        self.env.update({"SOURCES__HIGHLEVEL__CREDENTIALS__CLIENT_ID": self.sb.client_id,
                         "SOURCES__HIGHLEVEL__CREDENTIALS__CLIENT_SECRET": self.sb.client_secret,
                         "SOURCES__HIGHLEVEL__TOKEN_STORE": str(self.store_path)})
        proc = self.cli("auth", "import", "--refresh-token", self.sb.grant("Location", self.big),
                        "--user-type", "Location", "--location-id", self.big)
        assert proc.returncode == 0, proc.stderr

    def cli(self, *args: str, kill_at: str | None = None, hit: int = 1) -> subprocess.CompletedProcess[str]:
        env = dict(self.env)
        if kill_at is not None:
            env.update({ENV_POINT: kill_at, ENV_HIT: str(hit)})
        extra = ["--resources", RESOURCES, "--pipelines-dir", str(self.pipelines_dir)] if args[0] == "run" else []
        return subprocess.run([sys.executable, "-m", "highlevel_sync.highlevel_pipeline", *args, *extra], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=120)

    def pipeline(self) -> Any:
        return dlt.attach("highlevel", pipelines_dir=str(self.pipelines_dir))


@pytest.fixture
def rig(highlevel_sandbox_factory: Any, tmp_path: Path) -> CrashRig:
    sb = highlevel_sandbox_factory(contacts_per_location=(CONTACTS, 20), opportunities_per_location=(40, 4),
                                   conversations_per_location=(8, 2), messages_per_conversation=3, index_lag_s=0.2)
    return CrashRig(sb, tmp_path)


def killed(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == -9, f"expected death by SIGKILL, got exit {proc.returncode}:\n{proc.stderr[-2000:]}"


def recovered(rig: CrashRig, then_incremental: bool = False) -> None:
    """The run after the crash succeeds and leaves every record once, nothing pending, nothing scratch."""
    proc = rig.cli("run")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_matches_truth(rig, rig.big)  # every contact once, fields and custom values complete
    assert rig.query("select count(*) - count(distinct id) from highlevel.contacts") == [(0,)]
    for table, family in FAMILIES.items():
        ids = [row[0] for row in rig.query(f"select id from highlevel.{table} order by id")]
        assert ids == sorted(r.get("id") or r["_id"] for r in rig.sb.truth(rig.big, family)), table  # no duplicate
    # a re-read after the crash is not a change: one version per opportunity in its history
    history = rig.query("select id from highlevel.opportunity_history order by id")
    assert history == [(r["id"],) for r in rig.sb.truth(rig.big, "opportunities")]
    field_ids = [row[0] for row in rig.query("select id from highlevel.custom_fields order by id")]
    assert len(field_ids) == len(set(field_ids))
    assert {f["id"] for f in rig.sb.truth_custom_fields(rig.big)} <= set(field_ids)
    pipeline = rig.pipeline()
    assert pipeline.list_extracted_load_packages() == []
    assert pipeline.list_normalized_load_packages() == []
    assert not pipeline.has_pending_data
    working = Path(pipeline.working_dir)
    assert sorted(p.name for p in (working / "normalize").iterdir() if p.is_dir()) == ["extracted"]
    assert list((working / "load" / "new").iterdir()) == []
    if then_incremental:  # and the schema it left serves later loads too
        rig.sb.update_contacts(rig.big, 5)
        rig.sb.wait_for_index()
        again = rig.cli("run")
        assert again.returncode == 0, again.stderr[-3000:]
        assert_matches_truth(rig, rig.big)


def package_schema_hashes(rig: CrashRig) -> tuple[str, str]:
    """(hash of the schema inside the pending extracted package, hash of the pipeline's stored schema)."""
    working = Path(rig.pipeline().working_dir)
    packages = list((working / "normalize" / "extracted").iterdir())
    assert len(packages) == 1, packages
    package = json.loads((packages[0] / "schema.json").read_text())
    stored = json.loads((working / "schemas" / "highlevel.schema.json").read_text())
    return package["version_hash"], stored["version_hash"]


def test_every_point_is_reached_by_a_case() -> None:
    assert set(SYNC_POINTS) | {"token_refresh", "inbox_write"} == POINTS
    assert set(DLT_POINTS) <= set(SYNC_POINTS)


@pytest.mark.parametrize("point", sorted(SYNC_POINTS))
def test_a_sync_killed_at_the_point_recovers_on_the_next_run(rig: CrashRig, point: str) -> None:
    killed(rig.cli("run", kill_at=point, hit=SYNC_POINTS[point]))
    pipeline = rig.pipeline()
    if point == "extract_committed":
        # the cause of the old post-kill schema mismatch: dlt committed the package, then died before it
        # saved the schema that describes it; normalizing it would use the older stored schema
        inside, stored = package_schema_hashes(rig)
        assert inside != stored
    if point in ("after_extract", "mid_normalize", "mid_load", "load_unrecorded"):
        assert pipeline.has_pending_data  # the kill left a package; recovery must not trip over it
    working = Path(pipeline.working_dir)
    if point == "mid_extract":  # dlt's uncommitted extract folder, which dlt never looks at again
        assert [p.name for p in (working / "normalize").iterdir() if p.name != "extracted"]
    if point == "mid_normalize":  # the half-normalized package
        assert list((working / "load" / "new").iterdir())
    if point == "between_chunks":
        # exactly the first chunk is loaded and its position committed with it
        assert len(rig.contact_ids()) == CHUNK
        assert not pipeline.has_pending_data
        rig.sb.clear_requests()
    recovered(rig, then_incremental=point == "extract_committed")
    if point == "between_chunks":
        first = rig.sb.requests("/contacts/search")[0]
        assert "searchAfter" in first["body"]  # continued after the loaded chunk, not restarted


def test_a_sync_killed_during_a_token_refresh_burns_no_token(rig: CrashRig) -> None:
    rig.use_oauth()
    store = FileTokenStore(rig.store_path)
    granted = store.load().locations[rig.big]
    # the stored access token has expired: the run's first request refreshes it
    store.save(replace(store.load(), locations={rig.big: replace(granted, expires_at=0.0)}))
    killed(rig.cli("run", kill_at="token_refresh"))
    rotated = store.load().locations[rig.big]
    assert rotated.refresh_token != granted.refresh_token  # the new pair was saved before the kill
    assert rotated.refresh_token in rig.sb.oauth.refresh_tokens  # and it is the live one
    store.save(replace(store.load(), locations={rig.big: replace(rotated, expires_at=0.0)}))  # refresh again
    recovered(rig)
    assert rig.sb.burned_tokens == 0  # nobody presented a spent refresh token
    assert store.load().locations[rig.big].refresh_token in rig.sb.oauth.refresh_tokens


def test_a_receiver_killed_during_an_inbox_write_acknowledged_nothing_and_loses_nothing(
        rig: CrashRig, monkeypatch: pytest.MonkeyPatch) -> None:
    ed_pem, rsa_pem = rig.db_path.parent / "ed.pem", rig.db_path.parent / "rsa.pem"
    ed_pem.write_text(rig.sb.webhooks.public_pem())
    rsa_pem.write_text(generate_test_keys().rsa_public_pem)
    log = rig.db_path.parent / "receiver.log"
    before = {c["id"]: c for c in rig.sb.truth_contacts(rig.big)}
    deleted = rig.sb.delete_contacts(rig.big, 1)[0]
    delivery = rig.sb.webhooks.event("ContactDelete", rig.big, before[deleted])
    rig.sb.wait_for_index()

    monkeypatch.setenv(ENV_POINT, "inbox_write")  # the receiver child inherits it
    child = ChildReceiver(rig.inbox_path, ed_pem, rsa_pem, log)
    try:
        child.wait_ready()
        with pytest.raises(httpx.HTTPError):  # died before answering: HighLevel never got its 200
            rig.sb.webhooks.deliver(f"{child.url}/webhooks/highlevel", delivery)
        child.proc.wait(timeout=10)
        assert child.proc.returncode == -9
    finally:
        child.terminate()
    with sqlite3.connect(rig.inbox_path) as con:  # the uncommitted row did not survive
        assert con.execute("select count(*) from events").fetchone() == (0,)

    monkeypatch.delenv(ENV_POINT)
    child = ChildReceiver(rig.inbox_path, ed_pem, rsa_pem, log)
    try:
        child.wait_ready()
        assert rig.sb.webhooks.deliver(f"{child.url}/webhooks/highlevel", delivery, times=2) == [200, 200]
        deadline = time.monotonic() + 15
        while child.health()["inbox"]["events_pending"] and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        child.terminate()
    with sqlite3.connect(rig.inbox_path) as con:
        assert con.execute("select webhook_id from events").fetchall() == [(delivery["webhookId"],)]

    recovered(rig)
    assert deleted not in rig.contact_ids()
    assert rig.query("select resource, id, detected_by from highlevel.deletions") == [("contacts", deleted, "webhook")]
