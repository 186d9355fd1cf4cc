"""The PostgreSQL token store: one row per grant, refreshes serialised by `SELECT … FOR UPDATE`, the
new pair committed before use; shared by processes (Airflow shard tasks) without burning a token,
and left usable by a SIGKILL at any point."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from uuid import uuid4

import psycopg2
import pytest

from highlevel_sync.shards import split
from sources.highlevel.auth import COMPANY_KEY, TokenManager
from sources.highlevel.errors import AuthError, ConfigError
from sources.highlevel.oauth import OAuthApp
from sources.highlevel.pgtokenstore import PostgresTokenStore
from sources.highlevel.tokenstore import StoreData, TokenSet
from sources.highlevel.tokenstores import open_token_store

pytestmark = pytest.mark.warehouse
ROOT = Path(__file__).resolve().parents[2]
RESOURCES = ["contacts", "users", "opportunities"]


def store_url(dsn: str) -> str:
    """A table of its own per test: tests never see each other's grants."""
    return f"{dsn}?table=tokens_{uuid4().hex[:10]}"


def rows(dsn: str, table: str) -> dict[str, Any]:
    with psycopg2.connect(dsn) as con, con.cursor() as cur:
        cur.execute(f"select grant_key, tokens, updated_at from {table}")
        return {key: (tokens, updated) for key, tokens, updated in cur.fetchall()}


def sample() -> StoreData:
    company = TokenSet("access-secret-aaaa", "refresh-secret-rrrr", 2_000_000_000.0, "Company", ("oauth.write",),
                       company_id="C1")
    loc = TokenSet("loc-access", None, 2_000_000_000.0, "Location", (), company_id="C1", location_id="L1", minted=True)
    return StoreData(company=company, locations={"L1": loc})


def test_round_trip_one_row_per_grant_and_unchanged_rows_untouched(postgres_dsn: str) -> None:
    store = open_token_store(store_url(postgres_dsn))
    assert isinstance(store, PostgresTokenStore)
    assert store.load() == StoreData() and not store.exists()
    with store.lock():
        store.save(sample())
    assert store.exists() and store.load() == sample()
    before = rows(postgres_dsn, store.table)
    assert set(before) == {"company", "location:L1", "lock"}
    store.save(sample().with_location("L2", sample().locations["L1"]))
    after = rows(postgres_dsn, store.table)
    assert after["company"] == before["company"] and set(after) == {"company", "location:L1", "location:L2", "lock"}
    store.save(StoreData(company=sample().company))
    assert set(rows(postgres_dsn, store.table)) == {"company", "lock"}


def test_password_and_tokens_never_in_messages(postgres_dsn: str) -> None:
    url = store_url(postgres_dsn.replace(":unused@", ":hunter2-pw@"))
    store = PostgresTokenStore(url)
    assert "hunter2" not in repr(store) and "hunter2" not in store.url and "***" in store.url
    bad = PostgresTokenStore(url.replace("127.0.0.1:", "127.0.0.1:1"), connect_timeout_s=2)  # no server there
    with pytest.raises(ConfigError) as info:
        bad.load()
    assert "hunter2" not in str(info.value)
    assert "access-secret" not in repr(sample())


def test_a_corrupt_row_is_an_error_and_left_untouched(postgres_dsn: str) -> None:
    store = PostgresTokenStore(store_url(postgres_dsn))
    store.save(sample())
    with psycopg2.connect(postgres_dsn) as con, con.cursor() as cur:
        cur.execute(f"update {store.table} set tokens = '{{\"version\": 99}}' where grant_key = 'company'")
    with pytest.raises(ConfigError, match="left untouched"):
        store.load()
    assert rows(postgres_dsn, store.table)["company"][0] == {"version": 99}


def test_the_lock_is_exclusive_across_connections_and_reentrant(postgres_dsn: str) -> None:
    url = store_url(postgres_dsn)
    first, second = PostgresTokenStore(url), PostgresTokenStore(url, lock_timeout_s=0.5)
    second.load()
    with first.lock(), first.lock():  # nested (an agency refresh inside a location mint)
        first.save(sample())  # committed at once, even though the lock is still held
        assert second.load() == sample()
        with pytest.raises(AuthError, match="locked by another process"), second.lock():
            pass
    with second.lock():
        pass


class Agency:
    """A sandbox agency install whose grants live in a PostgreSQL token store."""

    def __init__(self, sb: Any, dsn: str, tmp: Path) -> None:
        self.sb, self.dsn, self.tmp = sb, dsn, tmp
        self.url = store_url(dsn)
        self.env = {**os.environ, "SOURCES__HIGHLEVEL__BASE_URL": sb.base_url,
                    "SOURCES__HIGHLEVEL__CREDENTIALS__CLIENT_ID": sb.client_id,
                    "SOURCES__HIGHLEVEL__CREDENTIALS__CLIENT_SECRET": sb.client_secret,
                    "SOURCES__HIGHLEVEL__TOKEN_STORE": self.url, "SOURCES__HIGHLEVEL__MAX_ATTEMPTS": "3",
                    "SOURCES__HIGHLEVEL__WEBHOOK_INBOX_PATH": str(tmp / "inbox.sqlite"),
                    "DESTINATION__POSTGRES__CREDENTIALS": dsn, "DLT_DATA_DIR": str(tmp / "dlt")}
        self.env.pop("SOURCES__HIGHLEVEL__PRIVATE_INTEGRATION_TOKEN", None)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "highlevel_sync.highlevel_pipeline", *args], cwd=ROOT,
                              env=self.env, capture_output=True, text=True, timeout=120)

    def import_company(self) -> None:
        done = self.cli("auth", "import", "--refresh-token", self.sb.grant("Company"), "--user-type", "Company",
                        "--company-id", self.sb.company_id)
        assert done.returncode == 0, done.stderr

    def shard_task(self, shard: Any, dataset: str) -> subprocess.Popen[str]:
        """What one mapped Airflow task runs, as its own process."""
        code = ("import json, sys; from highlevel_sync.shards import Shard, sync_shard; "
                "print(json.dumps(sync_shard(Shard.from_dict(json.loads(sys.argv[1])), sys.argv[2].split(','), "
                "dataset_name=sys.argv[3], destination='postgres', pipelines_dir=sys.argv[4])))")
        return subprocess.Popen([sys.executable, "-c", code, json.dumps(shard.to_dict()), ",".join(RESOURCES),
                                 dataset, str(self.tmp / f"pipelines-{dataset}")], cwd=ROOT, env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def tokens_in_play(self) -> list[str]:
        return [t for t in self.sb.world.tokens if not t.startswith("pit-")] + list(self.sb.oauth.refresh_tokens) \
            + list(self.sb.oauth.spent)


def count(dsn: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg2.connect(dsn) as con, con.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def test_auth_import_login_and_status_use_the_postgres_store(highlevel_sandbox_factory: Any, postgres_dsn: str,
                                                       tmp_path: Path) -> None:
    sb = highlevel_sandbox_factory(contacts_per_location=(10, 5))
    agency = Agency(sb, postgres_dsn.replace(":unused@", ":pg-s3cret@"), tmp_path)
    agency.import_company()
    status = agency.cli("auth", "status")
    assert status.returncode == 0, status.stderr
    assert f"agency {sb.company_id}" in status.stdout and "postgresql://loader:***@" in status.stdout
    for text in (status.stdout, status.stderr):
        assert "pg-s3cret" not in text and not any(token in text for token in agency.tokens_in_play())
    stored = PostgresTokenStore(agency.url).load().company
    assert stored is not None and stored.refresh_token in sb.oauth.refresh_tokens
    login = agency.cli("auth", "login", "--code", sb.auth_code("Location", sb.location_ids[0]))
    assert login.returncode == 0, login.stderr
    assert f"location {sb.location_ids[0]}: Location grant" in login.stdout and "pg-s3cret" not in login.stdout
    assert list(PostgresTokenStore(agency.url).load().locations) == [sb.location_ids[0]]


def test_two_dag_runs_of_shard_tasks_with_20s_tokens_burn_nothing(highlevel_sandbox_factory: Any, postgres_dsn: str,
                                                                  tmp_path: Path) -> None:
    sb = highlevel_sandbox_factory(contacts_per_location=(60, 40, 30, 20, 20, 10), index_lag_s=0.2,
                                   access_token_ttl_s=20.0)
    agency = Agency(sb, postgres_dsn, tmp_path)
    agency.import_company()
    imported = time.monotonic()
    shards = split(sb.location_ids, 3)
    assert len(shards) >= 2
    # start when the agency token is about to be renewed, and make the runs outlive the location tokens
    time.sleep(max(0.0, 12.0 - (time.monotonic() - imported)))
    sb.faults.set(slow_rate=1.0, slow_ms=2500)
    agency.env["SOURCES__HIGHLEVEL__MAX_REQUESTS_IN_FLIGHT"] = "1"  # one at a time: the reads outlive a token
    started = time.monotonic()
    procs = [agency.shard_task(shard, dataset) for dataset in ("run_a", "run_b") for shard in shards]
    outcomes = [proc.communicate(timeout=240) for proc in procs]
    elapsed = time.monotonic() - started
    assert [p.returncode for p in procs] == [0] * len(procs), [err[-2000:] for _, err in outcomes]
    log = sb.requests()
    refreshes = [r for r in log if r["path"] == "/oauth/token"]
    mints = [r for r in log if r["path"] == "/oauth/locationToken"]
    print(f"{elapsed:.1f} s, {len(refreshes)} refreshes, {len(mints)} mints")
    assert sb.burned_tokens == 0
    assert not any(r.get("expired_token") for r in log)
    assert elapsed > 20.0, f"the runs ({elapsed:.0f} s) did not outlive a token"
    assert 1 <= len(refreshes) <= 2 + elapsed / 15  # once per lifetime, not once per process
    assert len(sb.location_ids) < len(mints) <= len(sb.location_ids) * (2 + elapsed / 15)  # re-minted mid-run
    for dataset in ("run_a", "run_b"):
        for loc in sb.location_ids:
            assert count(postgres_dsn, f"select count(*), count(distinct id) from {dataset}.contacts "
                                       f"where location_id = '{loc}'") == [(len(sb.truth_contacts(loc)),) * 2]
    for _, err in outcomes:
        assert not any(token in err for token in agency.tokens_in_play())


PAUSED_WRITER = """
import sys, time
from sources.highlevel.pgtokenstore import PostgresTokenStore
from sources.highlevel.tokenstore import TokenSet

class Paused(PostgresTokenStore):
    def _before_commit(self):
        print("written, not committed", flush=True)
        time.sleep(60)

store = Paused(sys.argv[1])
with store.lock():
    data = store.load()
    garbage = TokenSet("half-written", None, 1.0, "Location", location_id="Lx", minted=True)
    store.save(data.with_location("Lx", garbage))
"""


def test_sigkill_mid_write_leaves_the_store_as_it_was_and_unlocked(highlevel_sandbox_factory: Any,
                                                                   postgres_dsn: str, tmp_path: Path) -> None:
    sb = highlevel_sandbox_factory(contacts_per_location=(10, 5))
    agency = Agency(sb, postgres_dsn, tmp_path)
    agency.import_company()
    store = PostgresTokenStore(agency.url, lock_timeout_s=10)
    before = store.load()
    proc = subprocess.Popen([sys.executable, "-c", PAUSED_WRITER, agency.url], cwd=ROOT, env=agency.env,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "written, not committed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert store.load() == before  # the uncommitted write is gone, nothing torn
    waited = time.monotonic()
    with store.lock():  # PostgreSQL released the dead holder's lock
        pass
    assert time.monotonic() - waited < 5
    manager = TokenManager(store, OAuthApp(sb.base_url, sb.client_id, sb.client_secret))
    assert before.company is not None
    manager.renew(COMPANY_KEY, rejected=before.company)  # the next run refreshes with the stored pair
    assert sb.burned_tokens == 0


def test_sigkill_at_random_points_of_shard_tasks_leaves_a_usable_store(highlevel_sandbox_factory: Any,
                                                                       postgres_dsn: str, tmp_path: Path) -> None:
    sb = highlevel_sandbox_factory(contacts_per_location=(40, 20, 10), index_lag_s=0.2, access_token_ttl_s=20.0)
    agency = Agency(sb, postgres_dsn, tmp_path)
    agency.import_company()
    (shard,) = split(sb.location_ids, 1)
    sb.faults.set(slow_rate=1.0, slow_ms=60, path_prefix="/contacts")  # not /oauth: see the docstring
    rng = random.Random(11)
    for _ in range(3):
        proc = agency.shard_task(shard, "killed")
        time.sleep(rng.uniform(2.5, 6.0))  # past the imports: inside refreshes, mints, reads or loads
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        PostgresTokenStore(agency.url).load()  # never corrupt
    sb.faults.clear()
    proc = agency.shard_task(shard, "killed")
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err[-2000:]
    assert sb.burned_tokens == 0
    for loc in sb.location_ids:
        assert count(postgres_dsn, f"select count(*), count(distinct id) from killed.contacts "
                                   f"where location_id = '{loc}'") == [(len(sb.truth_contacts(loc)),) * 2]


def test_sigkill_right_after_a_refresh_is_saved_keeps_the_new_pair(highlevel_sandbox_factory: Any,
                                                                   postgres_dsn: str, tmp_path: Path) -> None:
    """Killed with the lock row held and the rotated pair just saved: the pair was committed, so the
    next run uses it (a save that only committed at unlock would leave the spent token: 1 burned)."""
    from dataclasses import replace

    from sources.highlevel.killpoints import ENV_POINT

    sb = highlevel_sandbox_factory(contacts_per_location=(20, 10), index_lag_s=0.2)
    agency = Agency(sb, postgres_dsn, tmp_path)
    agency.import_company()
    store = PostgresTokenStore(agency.url)
    data = store.load()
    assert data.company is not None
    store.save(replace(data, company=replace(data.company, expires_at=0.0)))  # the first renewal is a refresh
    (shard,) = split(sb.location_ids, 1)
    agency.env[ENV_POINT] = "token_refresh"
    proc = agency.shard_task(shard, "after_kill")
    proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL
    del agency.env[ENV_POINT]
    stored = store.load().company
    assert stored is not None and stored.refresh_token in sb.oauth.refresh_tokens  # the rotated pair
    proc = agency.shard_task(shard, "after_kill")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    assert sb.burned_tokens == 0
