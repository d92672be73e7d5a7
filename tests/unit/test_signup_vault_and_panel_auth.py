"""The password vault (Fernet, with rotation) and the WHMCS hook's request signatures."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr

from services.signup.panel_auth import PanelAuthError, check_panel_request, panel_signature
from services.signup.vault import PasswordVault, UndecryptablePassword
from shared.errors import ConfigurationError

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SECRET = "shared-with-whmcs"


def key() -> SecretStr:
    return SecretStr(Fernet.generate_key().decode())


def test_a_password_is_encrypted_not_encoded() -> None:
    vault = PasswordVault([key()])
    ciphertext = vault.encrypt(SecretStr("Tr0ub4dor&3-horse"))
    assert "Tr0ub4dor" not in ciphertext
    assert vault.encrypt(SecretStr("Tr0ub4dor&3-horse")) != ciphertext, "each encryption is salted"
    assert vault.decrypt(ciphertext).get_secret_value() == "Tr0ub4dor&3-horse"


def test_rotation_new_key_encrypts_old_key_still_decrypts() -> None:
    old, new = key(), key()
    written_before = PasswordVault([old]).encrypt(SecretStr("before rotation 1"))
    rotated = PasswordVault([new, old])
    assert rotated.decrypt(written_before).get_secret_value() == "before rotation 1"
    written_after = rotated.encrypt(SecretStr("after rotation 2"))
    assert PasswordVault([new]).decrypt(written_after).get_secret_value() == "after rotation 2"


def test_a_password_under_a_removed_key_is_a_configuration_error() -> None:
    ciphertext = PasswordVault([key()]).encrypt(SecretStr("lost forever 1"))
    with pytest.raises(UndecryptablePassword):
        PasswordVault([key()]).decrypt(ciphertext)


@pytest.mark.parametrize("bad", ["", "not-a-fernet-key", "é" * 44])
def test_a_malformed_key_is_refused_at_start(bad: str) -> None:
    with pytest.raises(ConfigurationError):
        PasswordVault([SecretStr(bad)])


NONCE = "3f9c0a7e5b1d4c2a8e6f0b9d7c5a3e1f"


def signed(client_id: int = 42, purpose: str = "panel", at: datetime = NOW, nonce: str = NONCE) -> dict[str, str]:
    timestamp = int(at.timestamp())
    return {
        "timestamp": str(timestamp),
        "nonce": nonce,
        "signature": panel_signature(SECRET, timestamp, nonce, client_id, purpose),
    }  # type: ignore[arg-type]


def check(
    client_id: int = 42, purpose: str = "panel", now: datetime = NOW, secret: str = SECRET, **headers: str | None
) -> None:
    check_panel_request(secret, client_id=client_id, purpose=purpose, now=now, max_skew_seconds=300, **headers)  # type: ignore[arg-type]


def test_a_fresh_signed_request_passes() -> None:
    check(**signed())


def test_the_signature_is_the_documented_hmac() -> None:
    import hashlib
    import hmac

    expected = hmac.new(SECRET.encode(), f"1764072000.{NONCE}.42.panel".encode(), hashlib.sha256).hexdigest()
    assert panel_signature(SECRET, 1764072000, NONCE, 42, "panel") == expected


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"timestamp": None, "nonce": None, "signature": None}, "missing"),
        ({**signed(), "nonce": None}, "missing"),
        ({**signed(), "nonce": "short"}, "16 to 128"),
        ({**signed(), "nonce": "n" * 31 + "/"}, "16 to 128"),
        ({**signed(), "nonce": "another-nonce-of-32-characters-x"}, "bad signature"),
        ({**signed(), "signature": "0" * 64}, "bad signature"),
        ({**signed(), "signature": "é" * 64}, "bad signature"),
        ({**signed(), "timestamp": "abc"}, "Unix seconds"),
        ({**signed(), "timestamp": str(int(NOW.timestamp()) + 1)}, "bad signature"),
    ],
)
def test_unsigned_or_altered_requests_are_refused(headers: dict[str, str | None], reason: str) -> None:
    with pytest.raises(PanelAuthError, match=reason):
        check(**headers)


def test_a_signature_for_another_client_or_purpose_is_refused() -> None:
    with pytest.raises(PanelAuthError):
        check(client_id=43, **signed(client_id=42))
    with pytest.raises(PanelAuthError):
        check(purpose="sso", **signed(purpose="panel"))


def test_a_signature_under_another_secret_is_refused() -> None:
    with pytest.raises(PanelAuthError):
        check(secret="another-secret", **signed())


@pytest.mark.parametrize("age", [-301, 301, 86400])
def test_a_stale_or_future_request_is_refused(age: int) -> None:
    from datetime import timedelta

    with pytest.raises(PanelAuthError, match="stale"):
        check(now=NOW + timedelta(seconds=age), **signed())
