"""Receiver configuration: a frozen dataclass, readable from dlt's providers like the source's config.

Keys live next to the source's (`sources.highlevel.webhook_*`, env `SOURCES__HIGHLEVEL__WEBHOOK_*`).
Public keys are PEM text or a file path and default to HighLevel's published keys shipped in `keys/`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import timedelta
from typing import Any

import dlt

from ..errors import ConfigError
from .inbox import DEFAULT_INBOX_PATH
from .verify import SignatureVerifier

SECTION = "sources.highlevel"
MIB = 1024 * 1024


@dataclass(frozen=True)
class WebhookConfig:
    ed25519_public_key: str | None = field(default=None, repr=False)  # PEM text or path; None = shipped key
    rsa_public_key: str | None = field(default=None, repr=False)
    app_id: str | None = None  # when set, deliveries naming another appId are refused (403)
    max_body_bytes: int = MIB
    # Deliveries whose `timestamp` is further than this from our clock are refused as replays (401).
    # HighLevel retries a 429 for ~70 min with the original timestamp: raise this to ~4500 s if you
    # want those retries accepted; webhookId deduplication still stops replays.
    timestamp_tolerance_s: float = 300.0
    inbox_path: str = DEFAULT_INBOX_PATH
    quiet_s: float = 30.0
    max_delay_s: float = 300.0
    # processed deliveries, and deletions and changes a sync applied, are pruned from the inbox once
    # older than this (checked hourly); 0 keeps everything. Pending ones are never pruned.
    retention_days: float = 30.0
    # a location whose triggered runs keep failing is retried after quiet_s, then twice that, and
    # so on up to this
    max_backoff_s: float = 3600.0

    def __post_init__(self) -> None:
        if self.max_body_bytes < 1:
            raise ConfigError("webhook_max_body_bytes must be positive")
        if self.timestamp_tolerance_s <= 0:
            raise ConfigError("webhook_timestamp_tolerance_s must be positive")
        if not 0 <= self.quiet_s <= self.max_delay_s:
            raise ConfigError("need 0 <= webhook_quiet_s <= webhook_max_delay_s")
        if self.retention_days < 0:
            raise ConfigError("webhook_retention_days must be 0 (keep everything) or positive")
        if 0 < self.retention_days * 86_400 < self.timestamp_tolerance_s:
            raise ConfigError("webhook_retention_days must cover webhook_timestamp_tolerance_s, or a pruned "
                              "delivery could be replayed within the tolerance and be accepted again")
        if self.max_backoff_s < self.quiet_s:
            raise ConfigError("need webhook_max_backoff_s >= webhook_quiet_s")

    @property
    def retention(self) -> timedelta | None:
        """How long done rows stay in the inbox; None: forever."""
        return timedelta(days=self.retention_days) if self.retention_days > 0 else None

    def verifier(self) -> SignatureVerifier:
        """Load the keys now, so a bad key path fails at start-up rather than on the first delivery."""
        return SignatureVerifier.from_config(self.ed25519_public_key, self.rsa_public_key)

    @classmethod
    def from_dlt(cls, **overrides: Any) -> WebhookConfig:
        """Read `sources.highlevel.webhook_<field>` for every field; keyword overrides win when not None."""
        raw: dict[str, Any] = {}
        for f in fields(cls):
            try:
                value: Any = dlt.config.get(f"{SECTION}.webhook_{f.name}")
            except Exception as exc:  # a malformed toml file surfaces here
                raise ConfigError(f"cannot read {SECTION}.webhook_{f.name}: {exc}") from None
            if value is not None:
                raw[f.name] = value
        raw.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**{name: _coerce(name, value) for name, value in raw.items()})


_NUMBERS: dict[str, type[int] | type[float]] = {
    "max_body_bytes": int, "timestamp_tolerance_s": float, "quiet_s": float, "max_delay_s": float,
    "retention_days": float, "max_backoff_s": float,
}


def _coerce(name: str, value: Any) -> Any:
    if name not in {f.name for f in fields(WebhookConfig)}:
        raise ConfigError(f"unknown webhook setting {name!r}")
    kind = _NUMBERS.get(name, str)
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{SECTION}.webhook_{name} must be a {kind.__name__}, not {value!r}") from None
