"""Bad input: one clear line, a non-zero exit, and nothing already loaded is lost."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest

from highlevel_sync.highlevel_pipeline import main


class Cli:
    def __init__(self, sb: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
        self.sb, self.capsys, self.monkeypatch = sb, capsys, monkeypatch
        self.db = tmp_path / "cli.duckdb"
        self.location = sb.location_ids[0]
        self.pipelines_dir = str(tmp_path / "pipelines")
        monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS", str(self.db))
        monkeypatch.setenv("SOURCES__HIGHLEVEL__BASE_URL", sb.base_url)
        monkeypatch.setenv("SOURCES__HIGHLEVEL__LOCATION_ID", self.location)
        monkeypatch.setenv("SOURCES__HIGHLEVEL__PRIVATE_INTEGRATION_TOKEN", sb.token_for(self.location))
        monkeypatch.setenv("SOURCES__HIGHLEVEL__MAX_ATTEMPTS", "3")

    def run(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        if "--resources" not in args:
            args = ("--resources", "contacts,custom_fields,users,locations", *args)
        code = main(["run", "--pipelines-dir", self.pipelines_dir, *args])
        out, err = self.capsys.readouterr()
        return code, out, err

    def contacts(self) -> list[tuple[str, int]]:
        with duckdb.connect(str(self.db), read_only=True) as con:
            return con.execute("select id, epoch_ms(date_updated) from highlevel.contacts order by id").fetchall()


@pytest.fixture
def cli(highlevel_sandbox_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> Cli:
    sb = highlevel_sandbox_factory(contacts_per_location=(800, 50), index_lag_s=0.5)
    return Cli(sb, tmp_path, monkeypatch, capsys)


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def assert_no_secret(cli: Cli, *texts: str) -> None:
    for location in cli.sb.location_ids:
        token = cli.sb.token_for(location)
        assert all(token not in text for text in texts)


def test_good_run_prints_a_summary(cli: Cli) -> None:
    code, out, err = cli.run()
    assert code == 0, err
    assert "contacts" in out and "requests" in out and "429" in out and "daily quota left" in out
    assert len(cli.contacts()) == 800
    assert_no_secret(cli, out, err)


@pytest.mark.parametrize(
    ("env", "value", "expected"),
    [
        ("SOURCES__HIGHLEVEL__PRIVATE_INTEGRATION_TOKEN", None, "SOURCES__HIGHLEVEL__PRIVATE_INTEGRATION_TOKEN"),
        ("SOURCES__HIGHLEVEL__BASE_URL", "services.leadconnectorhq.com", "base_url"),
        ("SOURCES__HIGHLEVEL__LOCATION_ID", "not a location!", "malformed"),
        ("SOURCES__HIGHLEVEL__START_DATE", "yesterday-ish", "start_date"),
        ("SOURCES__HIGHLEVEL__CONTACTS_PAGE_SIZE", "5000", "contacts_page_size"),
    ],
)
def test_bad_config_is_one_line_before_any_request(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, env: str, value: str | None, expected: str
) -> None:
    if value is None:
        monkeypatch.delenv(env)
    else:
        monkeypatch.setenv(env, value)
    cli.sb.clear_requests()
    code, _, err = cli.run()
    assert code == 2
    assert expected in one_line(err)
    assert cli.sb.requests() == []


def test_unknown_resource_is_named(cli: Cli) -> None:
    code, _, err = cli.run("--resources", "contacts,bogus")
    assert code == 2
    line = one_line(err)
    assert "bogus" in line and "contacts" in line


def failure_scenarios(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any, str]]:
    return [
        ("401", lambda: monkeypatch.setenv("SOURCES__HIGHLEVEL__PRIVATE_INTEGRATION_TOKEN", "pit-wrong"),
         "rejected the token"),
        ("garbage", lambda: cli.sb.faults.set(garbage_rate=1.0), "non-JSON"),
        ("5xx storm", lambda: cli.sb.faults.set(error_rate=1.0, error_statuses=(500, 502, 503)), "after 3 attempts"),
        ("429 storm", lambda: cli.sb.faults.set(error_rate=1.0, error_statuses=(429,)), "rate limited"),
    ]


@pytest.mark.parametrize("scenario", ["401", "garbage", "5xx storm", "429 storm"])
def test_api_failures_exit_non_zero_and_lose_nothing(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, scenario: str
) -> None:
    assert cli.run()[0] == 0
    before = cli.contacts()
    changed = cli.sb.update_contacts(cli.location, 20)
    cli.sb.wait_for_index()

    _, arrange, expected = next(s for s in failure_scenarios(cli, monkeypatch) if s[0] == scenario)
    arrange()
    code, _, err = cli.run()
    assert code == 1
    line = one_line(err)
    assert expected in line and cli.location in line
    assert cli.contacts() == before  # nothing lost, nothing half-written
    assert_no_secret(cli, err)

    # the next good run continues without gaps or duplicates
    cli.sb.faults.clear()
    monkeypatch.setenv("SOURCES__HIGHLEVEL__PRIVATE_INTEGRATION_TOKEN", cli.sb.token_for(cli.location))
    code, _, err = cli.run()
    assert code == 0, err
    after = dict(cli.contacts())
    assert len(after) == 800 == len(cli.contacts())
    truth = {c["id"]: c["dateUpdated"] for c in cli.sb.truth_contacts(cli.location)}
    assert set(changed) <= set(after) and set(after) == set(truth)
