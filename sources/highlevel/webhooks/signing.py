"""Test-only signing helpers: make key pairs and sign bodies exactly the way HighLevel does.

Used by the tests and by a sandbox that emits signed deliveries, so both exercise the real
verification path (no "skip verification" switch exists in the receiver). Never used in production:
HighLevel's private keys are, of course, not ours.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .verify import ED25519_HEADER, RSA_HEADER

SignScheme = Literal["ed25519", "rsa", "both"]


@dataclass(frozen=True)
class SigningKeys:
    """A generated Ed25519 + RSA key pair set; `repr` hides the private halves."""

    ed25519: Ed25519PrivateKey = field(repr=False)
    rsa: rsa.RSAPrivateKey = field(repr=False)

    @property
    def ed25519_public_pem(self) -> str:
        return _public_pem(self.ed25519)

    @property
    def rsa_public_pem(self) -> str:
        return _public_pem(self.rsa)

    def headers(self, body: bytes, scheme: SignScheme = "ed25519") -> dict[str, str]:
        """Signature headers for `body`, as HighLevel would send them."""
        out: dict[str, str] = {}
        if scheme in ("ed25519", "both"):
            out[ED25519_HEADER] = sign_ed25519(body, self.ed25519)
        if scheme in ("rsa", "both"):
            out[RSA_HEADER] = sign_rsa(body, self.rsa)
        return out


def generate_test_keys(rsa_bits: int = 2048) -> SigningKeys:
    """Fresh keys. HighLevel's RSA key is 4096-bit; 2048 keeps tests fast and verifies the same way."""
    return SigningKeys(Ed25519PrivateKey.generate(), rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits))


def sign_ed25519(body: bytes, private_key: Ed25519PrivateKey) -> str:
    """Base64 Ed25519 signature of the exact body bytes (the `X-GHL-Signature` value)."""
    return base64.b64encode(private_key.sign(body)).decode()


def sign_rsa(body: bytes, private_key: rsa.RSAPrivateKey) -> str:
    """Base64 RSA PKCS#1 v1.5 / SHA-256 signature of the body bytes (the legacy `X-WH-Signature` value)."""
    return base64.b64encode(private_key.sign(body, padding.PKCS1v15(), hashes.SHA256())).decode()


def private_pems(keys: SigningKeys) -> Mapping[str, bytes]:
    """Unencrypted PKCS#8 PEMs, for handing test keys to a child process (a sandbox emitting deliveries)."""
    fmt = serialization.PrivateFormat.PKCS8
    enc = serialization.NoEncryption()
    return {
        "ed25519": keys.ed25519.private_bytes(serialization.Encoding.PEM, fmt, enc),
        "rsa": keys.rsa.private_bytes(serialization.Encoding.PEM, fmt, enc),
    }


def load_private_pems(ed25519_pem: bytes, rsa_pem: bytes) -> SigningKeys:
    """The inverse of `private_pems`."""
    ed = serialization.load_pem_private_key(ed25519_pem, password=None)
    rs = serialization.load_pem_private_key(rsa_pem, password=None)
    if not isinstance(ed, Ed25519PrivateKey) or not isinstance(rs, rsa.RSAPrivateKey):
        raise ValueError("expected an Ed25519 and an RSA private key")
    return SigningKeys(ed, rs)


def _public_pem(key: Ed25519PrivateKey | rsa.RSAPrivateKey) -> str:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
