"""OAuth that never loses a token: rotation under load, concurrency, crashes, agency fan-out."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest

from sources.highlevel.auth import COMPANY_KEY, TokenManager
from sources.highlevel.errors import AuthError
from sources.highlevel.oauth import OAuthApp
from sources.highlevel.tokenstore import FileTokenStore

ROOT = Path(__file__).resolve().parents[2]
RESOURCES = "contacts,custom_fields,users,locations,opportunities,conversations,messages"


class Agency:
    """A sandbox with an agency install, a token store, and CLI runs as separate processes."""

    def __init__(self, sb: Any, tmp: Path) -> None:
        self.sb, self.tmp = sb, tmp
        self.store_path = tmp / "tokens.json"
        self.env = {
            **os.environ,
            "SOURCES__HIGHLEVEL__BASE_URL": sb.base_url,
            "SOURCES__HIGHLEVEL__CREDENTIALS__CLIENT_ID": sb.client_id,
            "SOURCES__HIGHLEVEL__CREDENTIALS__CLIENT_SECRET": sb.client_secret,
            "SOURCES__HIGHLEVEL__TOKEN_STORE": str(self.store_path),
            "SOURCES__HIGHLEVEL__MAX_ATTEMPTS": "3",
        }
        self.env.pop("SOURCES__HIGHLEVEL__PRIVATE_INTEGRATION_TOKEN", None)

    def cli(self, *args: str, name: str = "main", env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        run_env = {**self.env, "DESTINATION__DUCKDB__CREDENTIALS": str(self.tmp / f"{name}.duckdb"), **(env or {})}
        extra = ["--pipelines-dir", str(self.tmp / f"pipelines-{name}")] if args and args[0] == "run" else []
        return subprocess.Popen([sys.executable, "-m", "highlevel_sync.highlevel_pipeline", *args, *extra], cwd=ROOT,
                                env=run_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def finish(self, proc: subprocess.Popen[str], timeout: float = 240) -> tuple[int, str, str]:
        out, err = proc.communicate(timeout=timeout)
        return proc.returncode, out, err

    def import_company(self) -> None:
        code, out, err = self.finish(self.cli("auth", "import", "--refresh-token", self.sb.grant("Company"),
                                              "--user-type", "Company", "--company-id", self.sb.company_id))
        assert code == 0, err
        assert "agency" in out

    def secrets(self) -> list[str]:
        """Every token the sandbox ever issued or the store holds (for leak scans)."""
        found = [t for t in self.sb.world.tokens if not t.startswith("pit-")]
        found += list(self.sb.oauth.refresh_tokens) + list(self.sb.oauth.spent)
        return found

    def assert_no_leak(self, *texts: str) -> None:
        tokens = self.secrets()
        for text in texts:
            assert not any(token in text for token in tokens)


@pytest.fixture
def agency(highlevel_sandbox_factory: Any, tmp_path: Path) -> Agency:
    sb = highlevel_sandbox_factory(contacts_per_location=(300, 120, 80, 60), index_lag_s=0.5,
                                   access_token_ttl_s=6.0)
    return Agency(sb, tmp_path)


def loaded(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_short_lived_tokens_over_a_long_run_never_burn_or_expire(agency: Agency) -> None:
    agency.import_company()
    # each request takes a while, and few are in flight at once: the run spans many lifetimes
    agency.sb.faults.set(slow_rate=1.0, slow_ms=700)
    agency.env["SOURCES__HIGHLEVEL__MAX_REQUESTS_IN_FLIGHT"] = "2"
    started = time.monotonic()
    code, out, err = agency.finish(agency.cli("run", "--locations", "all", "--resources", RESOURCES))
    elapsed = time.monotonic() - started
    assert code == 0, err
    assert elapsed > 2 * 6.0  # several token lifetimes
    log = agency.sb.requests()
    refreshes = [r for r in log if r["path"] == "/oauth/token"]
    mints = [r for r in log if r["path"] == "/oauth/locationToken"]
    assert len(refreshes) >= 2 and len(mints) >= 4
    assert agency.sb.burned_tokens == 0
    assert not any(r.get("expired_token") for r in log)
    # every rotation was persisted: the stored refresh token is the live one
    store = FileTokenStore(agency.store_path).load()
    assert store.company is not None and store.company.refresh_token in agency.sb.oauth.refresh_tokens
    agency.assert_no_leak(out, err, json.dumps([r["query"] for r in log]))


def test_two_processes_at_once_share_the_store_without_burning(agency: Agency) -> None:
    agency.import_company()
    agency.sb.faults.set(slow_rate=1.0, slow_ms=40)
    procs = [agency.cli("run", "--locations", "all", "--resources", RESOURCES, name=f"w{i}") for i in range(2)]
    results = [agency.finish(p) for p in procs]
    assert [r[0] for r in results] == [0, 0], [r[2] for r in results]
    assert agency.sb.burned_tokens == 0
    agency.sb.faults.clear()
    code, _, err = agency.finish(agency.cli("run", "--locations", "all", "--resources", "contacts", name="third"))
    assert code == 0, err
    assert agency.sb.burned_tokens == 0


def test_threads_renewing_at_once_refresh_exactly_once(agency: Agency) -> None:
    agency.import_company()
    store = FileTokenStore(agency.store_path)
    app = OAuthApp(agency.sb.base_url, agency.sb.client_id, agency.sb.client_secret)
    managers = [TokenManager(store, app) for _ in range(6)]
    stale = store.load().company
    before = len([r for r in agency.sb.requests() if r["path"] == "/oauth/token"])
    threads = [threading.Thread(target=m.renew, args=(COMPANY_KEY, stale)) for m in managers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    after = len([r for r in agency.sb.requests() if r["path"] == "/oauth/token"])
    assert after - before == 1 and agency.sb.burned_tokens == 0


def test_sigkill_at_random_points_never_corrupts_or_loses(agency: Agency) -> None:
    agency.import_company()
    agency.sb.faults.set(slow_rate=1.0, slow_ms=30)
    rng = random.Random(4)
    for _ in range(4):
        proc = agency.cli("run", "--locations", "all", "--resources", RESOURCES)
        time.sleep(rng.uniform(0.8, 4.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        FileTokenStore(agency.store_path).load()  # never corrupt: loads or raises
    agency.sb.faults.clear()
    code, _, err = agency.finish(agency.cli("run", "--locations", "all", "--resources", RESOURCES))
    assert code == 0, err
    assert agency.sb.burned_tokens == 0
    db = agency.tmp / "main.duckdb"
    for loc in agency.sb.location_ids:
        ids = [r[0] for r in loaded(db, f"select id from highlevel.contacts where location_id = '{loc}' order by id")]
        assert ids == sorted(c["id"] for c in agency.sb.truth_contacts(loc))
    assert loaded(db, "select count(*) - count(distinct id) from highlevel.contacts") == [(0,)]


def test_agency_run_isolates_suspended_and_uninstalled_locations(agency: Agency) -> None:
    agency.import_company()
    healthy, suspended, uninstalled = agency.sb.location_ids[:2], agency.sb.location_ids[2], agency.sb.location_ids[3]
    agency.sb.suspend(suspended)
    agency.sb.uninstall(uninstalled)
    code, out, err = agency.finish(agency.cli("run", "--locations", ",".join(agency.sb.location_ids),
                                              "--resources", "contacts,users"))
    assert code == 1
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 2
    assert any(suspended in line and "not active" in line for line in errors)
    assert any(uninstalled in line and "installed" in line for line in errors)
    db = agency.tmp / "main.duckdb"
    for loc in healthy:
        assert loaded(db, f"select count(*) from highlevel.contacts where location_id = '{loc}'") == [
            (len(agency.sb.truth_contacts(loc)),)]
    # location_id is right on every row: each contact id belongs to the location it is filed under
    for loc, contact_id in loaded(db, "select location_id, id from highlevel.contacts"):
        assert contact_id in agency.sb.world.locations[loc].contacts.truth
    agency.assert_no_leak(out, err)


@pytest.mark.parametrize("damage", ["corrupt", "permissions", "secret"])
def test_bad_store_or_secret_is_one_line_and_leaves_the_store_alone(agency: Agency, damage: str) -> None:
    agency.import_company()
    before = agency.store_path.read_bytes()
    env: dict[str, str] = {}
    if damage == "corrupt":
        agency.store_path.write_text('{"version": 1, "company": {"access_tok')
        before = agency.store_path.read_bytes()
    elif damage == "permissions":
        os.chmod(agency.store_path, 0o644)
    else:
        env["SOURCES__HIGHLEVEL__CREDENTIALS__CLIENT_SECRET"] = "wrong-secret"
        store = FileTokenStore(agency.store_path)
        data = store.load()
        assert data.company is not None
        from dataclasses import replace

        store.save(replace(data, company=replace(data.company, expires_at=0.0)))  # forces a refresh
        before = agency.store_path.read_bytes()
    code, out, err = agency.finish(agency.cli("run", "--locations", "all", "--resources", "contacts", env=env))
    assert code != 0
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) >= 1 and "Traceback" not in err
    expected = {"corrupt": "corrupt", "permissions": "chmod 600", "secret": "CLIENT_SECRET"}[damage]
    assert expected in lines[0]
    assert agency.store_path.read_bytes() == before
    agency.assert_no_leak(out, err)


def test_auth_status_never_prints_a_token(agency: Agency) -> None:
    agency.import_company()
    code, out, err = agency.finish(agency.cli("auth", "status"))
    assert code == 0 and "agency" in out and "expires" in out
    # which resources the granted scopes cover: the sandbox grants every read scope
    covers = next(line for line in out.splitlines() if "covers:" in line)
    assert "contacts" in covers and "invoices" in covers and "product_prices" in covers
    assert "not covered" not in covers
    agency.assert_no_leak(out, err)


def test_auth_status_names_the_resources_a_grant_does_not_cover() -> None:
    from highlevel_sync.auth_cli import coverage

    line = coverage(["contacts.readonly", "forms.readonly", "invoices.readonly"])
    covered, missing = line.split("; not covered (skipped by runs): ")
    assert covered == "covers: contacts, notes, forms, form_submissions, invoices"
    assert "orders (payments/orders.readonly)" in missing and "contacts" not in missing


def test_expired_grant_says_reauthorise(agency: Agency) -> None:
    store = FileTokenStore(agency.store_path)
    app = OAuthApp(agency.sb.base_url, agency.sb.client_id, agency.sb.client_secret)
    refresh = agency.sb.grant("Company")
    from sources.highlevel.tokenstore import TokenSet

    app.refresh(TokenSet(access_token="", refresh_token=refresh, user_type="Company"))  # spends it
    with pytest.raises(AuthError, match="auth login"):
        app.refresh(TokenSet(access_token="", refresh_token=refresh, user_type="Company"))
    assert agency.sb.burned_tokens == 1
    assert not store.exists()


def test_uninstalled_location_leaves_all_runs_and_status_says_so(agency: Agency) -> None:
    from highlevel_sync.installs import InstallRegistry

    agency.import_company()
    gone = agency.sb.location_ids[1]
    InstallRegistry(agency.store_path).mark_uninstalled(gone, str(agency.store_path))  # what AppUninstall does
    code, out, err = agency.finish(agency.cli("run", "--locations", "all", "--resources", "contacts"))
    assert code == 0, err
    synced = {r[0] for r in loaded(agency.tmp / "main.duckdb", "select distinct location_id from highlevel.contacts")}
    assert synced == set(agency.sb.location_ids) - {gone}
    code, out, err = agency.finish(agency.cli("status", "--pipelines-dir", str(agency.tmp / "pipelines-main")))
    assert code == 0, err
    assert f"location {gone}: app uninstalled" in out
    InstallRegistry(agency.store_path).mark_installed(gone)  # AppInstall brings it back
    code, _, err = agency.finish(agency.cli("run", "--locations", "all", "--resources", "contacts"))
    assert code == 0, err
    synced = {r[0] for r in loaded(agency.tmp / "main.duckdb", "select distinct location_id from highlevel.contacts")}
    assert synced == set(agency.sb.location_ids)


def test_auth_login_with_a_code_stores_the_grant(agency: Agency) -> None:
    code = agency.sb.auth_code("Location", agency.sb.location_ids[0])
    status, out, err = agency.finish(agency.cli("auth", "login", "--code", code))
    assert status == 0, err
    assert f"location {agency.sb.location_ids[0]}: Location grant" in out
    store = FileTokenStore(agency.store_path).load()
    assert list(store.locations) == [agency.sb.location_ids[0]]
    agency.assert_no_leak(out, err)
    # the stored location grant syncs that location without a PIT
    status, _, err = agency.finish(agency.cli("run", "--resources", "contacts"))
    assert status == 0, err
    assert loaded(agency.tmp / "main.duckdb", "select count(distinct location_id) from highlevel.contacts") == [(1,)]


def test_auth_login_listener_catches_the_redirect(agency: Agency) -> None:
    import socket

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = agency.cli("auth", "login", "--port", str(port))
    code = agency.sb.auth_code("Company")
    deadline = time.monotonic() + 20
    while True:  # the listener comes up after the URL is printed
        try:
            response = httpx.get(f"http://127.0.0.1:{port}/callback", params={"code": code}, timeout=5)
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline
            time.sleep(0.2)
    assert response.status_code == 200
    status, out, err = agency.finish(proc)
    assert status == 0, err
    assert "chooselocation?" in out and "contacts.readonly" in out and "agency" in out
    assert FileTokenStore(agency.store_path).load().company is not None
    agency.assert_no_leak(out, err)
