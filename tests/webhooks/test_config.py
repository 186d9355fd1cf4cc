"""WebhookConfig: defaults to the shipped keys, reads `sources.highlevel.webhook_*`, refuses nonsense."""

from __future__ import annotations

from pathlib import Path

import pytest

from sources.highlevel.errors import ConfigError
from sources.highlevel.webhooks import WebhookConfig
from sources.highlevel.webhooks.inbox import DEFAULT_INBOX_PATH
from sources.highlevel.webhooks.signing import SigningKeys


def test_defaults() -> None:
    config = WebhookConfig()
    assert (config.max_body_bytes, config.timestamp_tolerance_s, config.quiet_s, config.max_delay_s) == (
        1024 * 1024, 300.0, 30.0, 300.0)
    assert config.inbox_path == DEFAULT_INBOX_PATH == ".dlt/highlevel_webhooks.sqlite"
    verifier = config.verifier()  # HighLevel's published keys, shipped with the package
    assert len(verifier.ed25519_keys) == 1 and len(verifier.rsa_keys) == 1


def test_from_dlt_reads_env_and_overrides_win(monkeypatch: pytest.MonkeyPatch, keys: SigningKeys,
                                              tmp_path: Path) -> None:
    pem = tmp_path / "ed.pem"
    pem.write_text(keys.ed25519_public_pem)
    monkeypatch.setenv("SOURCES__HIGHLEVEL__WEBHOOK_ED25519_PUBLIC_KEY", str(pem))
    monkeypatch.setenv("SOURCES__HIGHLEVEL__WEBHOOK_APP_ID", "app-123")
    monkeypatch.setenv("SOURCES__HIGHLEVEL__WEBHOOK_QUIET_S", "5")
    monkeypatch.setenv("SOURCES__HIGHLEVEL__WEBHOOK_MAX_BODY_BYTES", "2048")
    config = WebhookConfig.from_dlt(inbox_path=str(tmp_path / "x.sqlite"), max_delay_s=None)
    assert (config.app_id, config.quiet_s, config.max_body_bytes, config.max_delay_s) == ("app-123", 5.0, 2048, 300.0)
    assert config.inbox_path == str(tmp_path / "x.sqlite")
    body = b"{}"
    assert config.verifier().verify(body, keys.headers(body)) == "ed25519"


def test_repr_leaves_out_key_material(keys: SigningKeys) -> None:
    assert "BEGIN" not in repr(WebhookConfig(ed25519_public_key=keys.ed25519_public_pem))


@pytest.mark.parametrize("bad", [{"max_body_bytes": 0}, {"timestamp_tolerance_s": 0}, {"quiet_s": 10, "max_delay_s": 5},
                                 {"quiet_s": -1}])
def test_invalid_values_are_config_errors(bad: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        WebhookConfig(**bad)  # type: ignore[arg-type]


def test_bad_env_value_names_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCES__HIGHLEVEL__WEBHOOK_QUIET_S", "soon")
    with pytest.raises(ConfigError, match="webhook_quiet_s"):
        WebhookConfig.from_dlt()


def test_bad_key_path_fails_at_start_up(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        WebhookConfig(rsa_public_key=str(tmp_path / "nope.pem")).verifier()
