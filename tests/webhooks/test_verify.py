"""Signature verification: Ed25519 preferred, RSA legacy, raw bytes, rotation, and HighLevel's shipped keys."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from sources.highlevel.errors import ConfigError
from sources.highlevel.webhooks.signing import SigningKeys, sign_ed25519, sign_rsa
from sources.highlevel.webhooks.verify import (
    DEFAULT_ED25519_KEY_FILE,
    DEFAULT_RSA_KEY_FILE,
    SignatureError,
    SignatureVerifier,
    load_public_keys,
)

BODY = b'{"type": "ContactCreate", "locationId": "L1", "id": "c1"}'
PUBLISHED = Path("/work/shared/highlevel-api")


def verifier_for(*key_sets: SigningKeys) -> SignatureVerifier:
    ed = [k for ks in key_sets for k in load_public_keys(ks.ed25519_public_pem, DEFAULT_ED25519_KEY_FILE)]
    rsa = [k for ks in key_sets for k in load_public_keys(ks.rsa_public_pem, DEFAULT_RSA_KEY_FILE)]
    return SignatureVerifier(ed, rsa)


def test_shipped_published_keys_load_and_match_the_contract_files() -> None:
    ed = load_public_keys(None, DEFAULT_ED25519_KEY_FILE)
    rsa = load_public_keys(None, DEFAULT_RSA_KEY_FILE)
    assert len(ed) == 1 and isinstance(ed[0], Ed25519PublicKey)
    assert len(rsa) == 1 and isinstance(rsa[0], RSAPublicKey) and rsa[0].key_size == 4096
    if PUBLISHED.exists():  # the team's API notes, where this machine has them: the shipped copies never drift
        assert DEFAULT_ED25519_KEY_FILE.read_bytes() == (PUBLISHED / "webhook-public-key-ed25519.pem").read_bytes()
        assert DEFAULT_RSA_KEY_FILE.read_bytes() == (PUBLISHED / "webhook-public-key-rsa.pem").read_bytes()
    verifier = SignatureVerifier.from_config()
    assert len(verifier.ed25519_keys) == 1 and len(verifier.rsa_keys) == 1


def test_published_keys_reject_our_signatures(keys: SigningKeys) -> None:
    verifier = SignatureVerifier.from_config()
    with pytest.raises(SignatureError):
        verifier.verify(BODY, keys.headers(BODY, "both"))


def test_ed25519_is_preferred_when_both_headers_are_present(keys: SigningKeys) -> None:
    assert verifier_for(keys).verify(BODY, keys.headers(BODY, "both")) == "ed25519"


def test_a_bad_ed25519_signature_is_not_rescued_by_a_good_rsa_one(keys: SigningKeys, other_keys: SigningKeys) -> None:
    headers = {"x-ghl-signature": sign_ed25519(BODY, other_keys.ed25519), "x-wh-signature": sign_rsa(BODY, keys.rsa)}
    with pytest.raises(SignatureError, match="X-GHL-Signature"):
        verifier_for(keys).verify(BODY, headers)


def test_rsa_legacy_path(keys: SigningKeys) -> None:
    assert verifier_for(keys).verify(BODY, keys.headers(BODY, "rsa")) == "rsa"


@pytest.mark.parametrize("na", ["N/A", "n/a", "", "  "])
def test_na_or_empty_ed25519_header_counts_as_missing(keys: SigningKeys, na: str) -> None:
    headers = {"x-ghl-signature": na, **keys.headers(BODY, "rsa")}
    assert verifier_for(keys).verify(BODY, headers) == "rsa"


def test_header_names_are_case_insensitive(keys: SigningKeys) -> None:
    verifier = verifier_for(keys)
    assert verifier.verify(BODY, {"X-GHL-Signature": sign_ed25519(BODY, keys.ed25519)}) == "ed25519"
    assert verifier.verify(BODY, {"X-WH-SIGNATURE": sign_rsa(BODY, keys.rsa)}) == "rsa"


@pytest.mark.parametrize("headers", [{}, {"x-ghl-signature": "N/A"}, {"x-wh-signature": "N/A", "x-ghl-signature": ""}])
def test_unsigned_is_rejected(keys: SigningKeys, headers: dict[str, str]) -> None:
    with pytest.raises(SignatureError, match="unsigned"):
        verifier_for(keys).verify(BODY, headers)


@pytest.mark.parametrize("bad", ["not base64!!", base64.b64encode(b"short").decode(), "A" * 5000])
def test_garbage_signatures_are_rejected(keys: SigningKeys, bad: str) -> None:
    with pytest.raises(SignatureError):
        verifier_for(keys).verify(BODY, {"x-ghl-signature": bad})
    with pytest.raises(SignatureError):
        verifier_for(keys).verify(BODY, {"x-wh-signature": bad})


def test_wrong_key_and_tampered_body_are_rejected(keys: SigningKeys, other_keys: SigningKeys) -> None:
    with pytest.raises(SignatureError):
        verifier_for(keys).verify(BODY, other_keys.headers(BODY, "ed25519"))
    with pytest.raises(SignatureError):
        verifier_for(keys).verify(BODY, other_keys.headers(BODY, "rsa"))
    with pytest.raises(SignatureError):
        verifier_for(keys).verify(BODY.replace(b"c1", b"c2"), keys.headers(BODY))


def test_verification_is_over_raw_bytes_with_a_compact_json_second_chance(keys: SigningKeys) -> None:
    """HighLevel's Node SDK signs JSON.stringify(body): compact, non-ASCII kept as is."""
    payload = {"type": "ContactCreate", "name": "Zoë", "locationId": "L1"}
    compact = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    pretty = json.dumps(payload, indent=2).encode()
    headers = {"x-ghl-signature": sign_ed25519(compact, keys.ed25519)}
    assert verifier_for(keys).verify(pretty, headers) == "ed25519"
    strict = SignatureVerifier(verifier_for(keys).ed25519_keys, [], allow_compact_json=False)
    with pytest.raises(SignatureError):
        strict.verify(pretty, headers)
    # The second chance never accepts a different document.
    with pytest.raises(SignatureError):
        verifier_for(keys).verify(pretty.replace(b"Zo", b"Jo"), headers)


def test_several_keys_per_scheme_for_rotation(keys: SigningKeys, other_keys: SigningKeys, tmp_path: Path) -> None:
    bundle = tmp_path / "ed.pem"
    bundle.write_text(keys.ed25519_public_pem + "\n" + other_keys.ed25519_public_pem)
    loaded = load_public_keys(str(bundle), DEFAULT_ED25519_KEY_FILE)
    assert len(loaded) == 2
    verifier = SignatureVerifier(loaded, [])
    assert verifier.verify(BODY, keys.headers(BODY)) == "ed25519"
    assert verifier.verify(BODY, other_keys.headers(BODY)) == "ed25519"
    assert len(load_public_keys(keys.rsa_public_pem + other_keys.rsa_public_pem, DEFAULT_RSA_KEY_FILE)) == 2


def test_a_scheme_without_keys_cannot_verify(keys: SigningKeys) -> None:
    only_rsa = SignatureVerifier([], verifier_for(keys).rsa_keys)
    assert only_rsa.verify(BODY, keys.headers(BODY, "both")) == "rsa"
    with pytest.raises(SignatureError, match="no configured key"):
        only_rsa.verify(BODY, keys.headers(BODY, "ed25519"))


def test_key_configuration_errors_are_clear(keys: SigningKeys, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_public_keys(str(tmp_path / "missing.pem"), DEFAULT_ED25519_KEY_FILE)
    (tmp_path / "empty.pem").write_text("hello")
    with pytest.raises(ConfigError, match="no PEM public key"):
        load_public_keys(str(tmp_path / "empty.pem"), DEFAULT_ED25519_KEY_FILE)
    with pytest.raises(ConfigError, match="unreadable"):
        load_public_keys("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----", DEFAULT_ED25519_KEY_FILE)
    swapped = load_public_keys(keys.rsa_public_pem, DEFAULT_RSA_KEY_FILE)
    with pytest.raises(ConfigError, match="wrong type"):
        SignatureVerifier(swapped, [])
    with pytest.raises(ConfigError, match="at least one"):
        SignatureVerifier([], [])
