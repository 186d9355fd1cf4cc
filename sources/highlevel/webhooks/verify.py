"""Signature verification of HighLevel webhook deliveries (CONTRACT §6.3).

HighLevel signs every delivery twice-over during the migration period: `X-GHL-Signature` (Ed25519,
current) and the legacy `X-WH-Signature` (RSA-4096, PKCS#1 v1.5, SHA-256). Both official SDKs prefer
Ed25519 when it is present, and so do we: a forged delivery must not be able to pick the weaker
path by adding a header. An unsigned delivery is rejected (the SDKs only "flag" it; a receiver
that writes tombstones cannot afford to).

The signed message is the body as it came off the wire. The Node SDK signs/verifies compact
re-serialised JSON instead, so when the raw bytes do not verify we try that form too (compact, with
and without ASCII escaping) before giving up. Several keys per scheme are accepted so a key
rotation announced out-of-band needs no code change.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Literal

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from ..errors import ConfigError, HighLevelError

logger = logging.getLogger("highlevel.webhooks.verify")

Scheme = Literal["ed25519", "rsa"]

ED25519_HEADER = "x-ghl-signature"
RSA_HEADER = "x-wh-signature"
ED25519_SIGNATURE_BYTES = 64
# Longer than any real signature (RSA-4096 = 512 bytes → 684 base64 chars); bounds the work a forger can cause.
MAX_SIGNATURE_CHARS = 2048

KEYS_DIR = Path(__file__).resolve().with_name("keys")
DEFAULT_ED25519_KEY_FILE = KEYS_DIR / "webhook-public-key-ed25519.pem"
DEFAULT_RSA_KEY_FILE = KEYS_DIR / "webhook-public-key-rsa.pem"

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----.+?-----END \1-----", re.DOTALL)


class SignatureError(HighLevelError):
    """The delivery is unsigned, or no configured key verifies its signature; answer 401."""


def load_public_keys(value: str | None, default_file: str | Path) -> list[PublicKeyTypes]:
    """Public keys from PEM text, or from a file path; `default_file` when `value` is empty.

    A text or file may hold several PEM blocks (old and new key during a rotation).
    """
    if value is None or not value.strip():
        source, data = str(default_file), _read(Path(default_file))
    elif "-----BEGIN" in value:
        source, data = "PEM text", value.encode()
    else:
        source, data = value, _read(Path(value.strip()).expanduser())
    blocks = [match.group(0) for match in _PEM_BLOCK.finditer(data)]
    if not blocks:
        raise ConfigError(f"no PEM public key found in {source}; give PEM text or the path of a .pem file")
    keys: list[PublicKeyTypes] = []
    for block in blocks:
        try:
            keys.append(load_pem_public_key(block))
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise ConfigError(f"unreadable public key in {source}: {exc}") from None
    return keys


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read webhook public key file {path}: {exc.strerror or exc}") from None


class SignatureVerifier:
    """Checks a delivery's signature against HighLevel's public keys; see the module docstring for the rules."""

    def __init__(
        self,
        ed25519_keys: Sequence[PublicKeyTypes],
        rsa_keys: Sequence[PublicKeyTypes],
        *,
        allow_compact_json: bool = True,
    ) -> None:
        self.ed25519_keys = [key for key in ed25519_keys if isinstance(key, Ed25519PublicKey)]
        self.rsa_keys = [key for key in rsa_keys if isinstance(key, RSAPublicKey)]
        if len(self.ed25519_keys) != len(ed25519_keys) or len(self.rsa_keys) != len(rsa_keys):
            raise ConfigError("a webhook public key has the wrong type: Ed25519 keys and RSA keys must not be swapped")
        if not self.ed25519_keys and not self.rsa_keys:
            raise ConfigError("webhook verification needs at least one Ed25519 or RSA public key")
        self.allow_compact_json = allow_compact_json

    @classmethod
    def from_config(cls, ed25519: str | None = None, rsa: str | None = None) -> SignatureVerifier:
        """Keys from PEM text or paths; each defaults to HighLevel's published key shipped with the package."""
        return cls(load_public_keys(ed25519, DEFAULT_ED25519_KEY_FILE), load_public_keys(rsa, DEFAULT_RSA_KEY_FILE))

    def verify(self, raw_body: bytes, headers: Mapping[str, str]) -> Scheme:
        """Return the scheme that verified `raw_body`, or raise SignatureError.

        The first scheme with both a signature header and a configured key decides; Ed25519 comes first.
        """
        lowered = {name.lower(): value for name, value in headers.items()}
        ed_sig = _signature(lowered.get(ED25519_HEADER))
        rsa_sig = _signature(lowered.get(RSA_HEADER))
        if ed_sig is not None and self.ed25519_keys:
            if self._check(raw_body, ed_sig, self._verify_ed25519):
                return "ed25519"
            raise SignatureError("X-GHL-Signature does not match the body under any configured Ed25519 key")
        if rsa_sig is not None and self.rsa_keys:
            if self._check(raw_body, rsa_sig, self._verify_rsa):
                return "rsa"
            raise SignatureError("X-WH-Signature does not match the body under any configured RSA key")
        if ed_sig is None and rsa_sig is None:
            raise SignatureError("unsigned delivery: neither X-GHL-Signature nor X-WH-Signature is present")
        raise SignatureError("the delivery is signed only with a scheme that has no configured key")

    def _check(self, raw_body: bytes, signature: str, verify_one: Callable[[bytes, bytes], bool]) -> bool:
        if len(signature) > MAX_SIGNATURE_CHARS:
            return False
        try:
            sig = base64.b64decode(signature, validate=True)
        except (binascii.Error, ValueError):
            return False
        return any(verify_one(sig, message) for message in _candidates(raw_body, self.allow_compact_json))

    def _verify_ed25519(self, sig: bytes, message: bytes) -> bool:
        if len(sig) != ED25519_SIGNATURE_BYTES:
            return False
        for key in self.ed25519_keys:
            try:
                key.verify(sig, message)
                return True
            except InvalidSignature:
                continue
        return False

    def _verify_rsa(self, sig: bytes, message: bytes) -> bool:
        for key in self.rsa_keys:
            try:
                key.verify(sig, message, padding.PKCS1v15(), hashes.SHA256())
                return True
            except InvalidSignature:
                continue
        return False


def _signature(value: str | None) -> str | None:
    """The header value, or None when missing, empty, or the literal "N/A" some deliveries carry."""
    if value is None:
        return None
    value = value.strip()
    if not value or value.upper() == "N/A":
        return None
    return value


def _candidates(raw_body: bytes, allow_compact_json: bool) -> Iterator[bytes]:
    """The raw body first; then its compact JSON re-serialisations (what the Node SDK signs)."""
    yield raw_body
    if not allow_compact_json:
        return
    try:
        parsed = json.loads(raw_body)
    except (ValueError, RecursionError):
        return
    seen = {raw_body}
    for ensure_ascii in (False, True):
        try:
            compact = json.dumps(parsed, separators=(",", ":"), ensure_ascii=ensure_ascii).encode()
        except (ValueError, RecursionError, UnicodeEncodeError):
            continue
        if compact not in seen:
            seen.add(compact)
            yield compact
