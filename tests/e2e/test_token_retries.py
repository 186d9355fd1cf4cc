"""Token calls share the data requests' retry policy: only a real refusal fails a location.

`POST /oauth/token` (refresh) and `POST /oauth/locationToken` (agency -> location) ride out 5xx,
429, gateway pages and timeouts; 401 (not installed), 400 "not active" and invalid_grant fail with
a hint naming their cause, and an outage that outlasts the retries says it is HighLevel's. The
single-use refresh token is never burned by a retry: a faulted request rotated nothing.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from sources.highlevel.auth import COMPANY_KEY, TokenManager
from sources.highlevel.errors import ApiError, AuthError
from sources.highlevel.oauth import OAuthApp
from sources.highlevel.tokenstore import FileTokenStore, StoreData, TokenSet

from .test_oauth import Agency, loaded

RESOURCES = "contacts,users"


@pytest.fixture
def agency(highlevel_sandbox_factory: Any, tmp_path: Path) -> Agency:
    sb = highlevel_sandbox_factory(contacts_per_location=(120, 80, 60, 40), index_lag_s=0.3)
    made = Agency(sb, tmp_path)
    made.env["SOURCES__HIGHLEVEL__MAX_ATTEMPTS"] = "6"
    return made


def expire_company(agency: Agency) -> None:
    """Make the next run refresh the agency token first."""
    store = FileTokenStore(agency.store_path)
    data = store.load()
    assert data.company is not None
    store.save(replace(data, company=replace(data.company, expires_at=0.0)))


def statuses(agency: Agency, path: str) -> list[int]:
    return [r["status"] for r in agency.sb.requests(path)]


def app_for(agency: Agency, **kwargs: Any) -> OAuthApp:
    options = {"max_attempts": 3, "backoff_base_s": 0.05, "backoff_max_s": 0.2, **kwargs}
    return OAuthApp(agency.sb.base_url, agency.sb.client_id, agency.sb.client_secret, **options)


def test_an_agency_run_rides_out_faults_on_both_token_endpoints(agency: Agency) -> None:
    agency.import_company()
    expire_company(agency)
    faults = agency.sb.faults
    faults.fail_next(2, 502, path_prefix="/oauth/token")
    faults.garbage_next(1, path_prefix="/oauth/token")
    faults.fail_next(2, 502, path_prefix="/oauth/locationToken")
    faults.garbage_next(2, path_prefix="/oauth/locationToken")
    faults.fail_next(1, 429, path_prefix="/oauth/locationToken")
    agency.sb.clear_requests()
    code, out, err = agency.finish(agency.cli("run", "--locations", "all", "--resources", RESOURCES))
    assert code == 0, err
    # the refresh: two 502s and a gateway page, then the answer; every mint eventually answered
    assert statuses(agency, "/oauth/token") == [502, 502, 200, 200]
    mints = statuses(agency, "/oauth/locationToken")
    assert mints.count(502) == 2 and mints.count(429) == 1 and mints.count(200) == 2 + 4
    db = agency.tmp / "main.duckdb"
    for loc in agency.sb.location_ids:
        ids = [r[0] for r in loaded(db, f"select id from highlevel.contacts where location_id = '{loc}' order by id")]
        assert ids == sorted(c["id"] for c in agency.sb.truth_contacts(loc))
    assert agency.sb.burned_tokens == 0
    store = FileTokenStore(agency.store_path).load()
    assert store.company is not None and store.company.refresh_token in agency.sb.oauth.refresh_tokens
    agency.assert_no_leak(out, err)


def test_refusals_still_fail_their_location_with_a_hint_that_names_the_cause(agency: Agency) -> None:
    agency.import_company()
    healthy, suspended, uninstalled = agency.sb.location_ids[:2], agency.sb.location_ids[2], agency.sb.location_ids[3]
    agency.sb.suspend(suspended)
    agency.sb.uninstall(uninstalled)
    agency.sb.faults.fail_next(3, 503, path_prefix="/oauth/locationToken")  # bad luck on top of the refusals
    code, out, err = agency.finish(agency.cli("run", "--locations", ",".join(agency.sb.location_ids),
                                              "--resources", RESOURCES))
    assert code == 1, out
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 2, err
    assert any(suspended in line and "not active" in line for line in errors)
    assert any(uninstalled in line and "not installed in this sub-account" in line for line in errors)
    assert not any("unavailable" in line or "503" in line for line in errors)
    db = agency.tmp / "main.duckdb"
    for loc in healthy:
        assert loaded(db, f"select count(*) from highlevel.contacts where location_id = '{loc}'") == [
            (len(agency.sb.truth_contacts(loc)),)]
    assert agency.sb.burned_tokens == 0


def test_an_outage_that_outlasts_the_retries_blames_highlevel_not_the_install(agency: Agency) -> None:
    app = app_for(agency)
    refresh = agency.sb.grant("Company")
    company = app.refresh(TokenSet(access_token="", refresh_token=refresh, user_type="Company"))
    loc = agency.sb.location_ids[0]
    agency.sb.faults.fail_next(3, 502, path_prefix="/oauth/locationToken")
    with pytest.raises(ApiError) as minting:
        app.mint_location_token(company, loc)
    message = str(minting.value)
    assert f"location {loc}: cannot mint a location token: HighLevel was unavailable for 3 attempt(s)" in message
    assert "HTTP 502" in message and "retry later" in message and "installed" not in message
    assert app.mint_location_token(company, loc).location_id == loc  # the outage over, the same call works

    agency.sb.faults.fail_next(3, 503, path_prefix="/oauth/token")
    with pytest.raises(ApiError, match=r"HighLevel was unavailable.*HTTP 503.*not a refusal"):
        app.refresh(company)
    assert app.refresh(company).access_token  # the refresh token survived three faulted tries
    assert agency.sb.burned_tokens == 0


class LoseFirstAnswer(httpx.BaseTransport):
    """The network between us and HighLevel: the first token call times out, either before it
    reaches HighLevel (`reached=False`) or after HighLevel answered (the answer is lost)."""

    def __init__(self, reached: bool) -> None:
        self.inner = httpx.HTTPTransport()
        self.reached = reached
        self.lost = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token" and not self.lost:
            self.lost += 1
            if self.reached:
                self.inner.handle_request(request).read()  # HighLevel rotated the grant; we never hear of it
            raise httpx.ReadTimeout("timed out", request=request)
        return self.inner.handle_request(request)


def test_a_refresh_that_timed_out_is_sent_again_and_a_lost_answer_is_named(agency: Agency) -> None:
    refresh = agency.sb.grant("Company")
    unsent = app_for(agency, transport=LoseFirstAnswer(reached=False))
    fresh = unsent.refresh(TokenSet(access_token="", refresh_token=refresh, user_type="Company"))
    assert fresh.refresh_token in agency.sb.oauth.refresh_tokens and agency.sb.burned_tokens == 0

    lost = app_for(agency, transport=LoseFirstAnswer(reached=True))
    with pytest.raises(AuthError) as refused:
        lost.refresh(fresh)
    message = str(refused.value)
    assert "when it was sent again" in message and "ReadTimeout" in message
    assert "answer that never arrived" in message and "highlevel-sync auth login" in message
    # the replay is what told us: the grant was already gone with the lost answer
    assert agency.sb.burned_tokens == 1


def test_a_replay_first_looks_at_the_store_for_a_rotation_made_meanwhile(agency: Agency) -> None:
    refresh = agency.sb.grant("Company")
    app = app_for(agency, transport=LoseFirstAnswer(reached=True))
    rotated = app_for(agency).refresh(TokenSet(access_token="", refresh_token=agency.sb.grant("Company"),
                                               user_type="Company"))
    looked: list[int] = []

    def stored() -> TokenSet:
        looked.append(1)
        return rotated  # what another worker saved while our first try timed out

    assert app.refresh(TokenSet(access_token="", refresh_token=refresh, user_type="Company"),
                       stored=stored) == rotated
    assert looked == [1] and agency.sb.burned_tokens == 0


def test_a_refused_agency_token_is_renewed_and_the_mint_tried_again(agency: Agency) -> None:
    app = app_for(agency)
    company = app.refresh(TokenSet(access_token="", refresh_token=agency.sb.grant("Company"),
                                   user_type="Company"))
    store = FileTokenStore(agency.store_path)
    with store.lock():  # an access token HighLevel no longer knows (revoked early), still in date
        store.save(StoreData(company=replace(company, access_token="at-revoked")))
    manager = TokenManager(store, app)
    loc = agency.sb.location_ids[1]
    minted = manager.current(loc)
    assert minted.location_id == loc and minted.minted
    assert statuses(agency, "/oauth/locationToken") == [401, 200]
    assert manager.refreshes == 1 and agency.sb.burned_tokens == 0
    saved = store.load()
    assert saved.company is not None and saved.company.access_token != "at-revoked"
    assert manager.current(COMPANY_KEY).access_token == saved.company.access_token
