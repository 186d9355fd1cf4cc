"""The token store: atomic, private, versioned, and it refuses to guess on a bad file."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from sources.highlevel.errors import ConfigError
from sources.highlevel.tokenstore import FileTokenStore, StoreData, TokenSet

SECRET_A = "access-secret-value-aaaa"
SECRET_R = "refresh-secret-value-rrrr"


def sample() -> StoreData:
    company = TokenSet(SECRET_A, SECRET_R, 2_000_000_000.0, "Company", ("oauth.write",), company_id="C1")
    loc = TokenSet("loc-access", None, 2_000_000_000.0, "Location", (), company_id="C1", location_id="L1", minted=True)
    return StoreData(company=company, locations={"L1": loc})


def test_round_trip_and_private_mode(tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path / "tokens.json")
    store.save(sample())
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert store.load() == sample()
    assert json.loads(store.path.read_text())["version"] == 1
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_repr_never_shows_tokens() -> None:
    text = repr(sample())
    assert SECRET_A not in text and SECRET_R not in text and "expires_at" in text


def test_group_readable_store_is_refused(tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path / "tokens.json")
    store.save(sample())
    os.chmod(store.path, 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        store.load()


@pytest.mark.parametrize("content", ["{not json", "[]", '{"version": 99}', '{"version": 1, "company": {"x": 1}}'])
def test_corrupt_store_is_an_error_and_left_untouched(tmp_path: Path, content: str) -> None:
    path = tmp_path / "tokens.json"
    path.write_text(content)
    os.chmod(path, 0o600)
    with pytest.raises(ConfigError, match="left untouched") as info:
        FileTokenStore(path).load()
    assert path.read_text() == content
    assert "\n" not in str(info.value)


def test_a_failed_write_keeps_the_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = FileTokenStore(tmp_path / "tokens.json")
    store.save(sample())
    before = store.path.read_bytes()

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        store.save(StoreData())
    assert store.path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_missing_store_is_empty(tmp_path: Path) -> None:
    assert FileTokenStore(tmp_path / "nope.json").load() == StoreData()
