"""Signed links, session cookies and CSRF tokens: genuine ones are read, anything else refused."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.signup.tokens import (
    BadToken,
    BrowserSession,
    ExpiredToken,
    Signer,
    csrf_matches,
    csrf_token,
    decode_session,
    encode_session,
    mint_link,
    read_link,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SIGNER = Signer("unit-test-secret-0123456789")


def test_a_link_reads_back_its_id_and_expiry() -> None:
    link_id = uuid.uuid4()
    token = mint_link(SIGNER, "verify", link_id, NOW + timedelta(hours=48))
    claims = read_link(SIGNER, "verify", token)
    assert claims.link_id == link_id
    assert claims.expires_at == NOW + timedelta(hours=48)
    assert not claims.expired(NOW + timedelta(hours=47, minutes=59))
    assert claims.expired(NOW + timedelta(hours=48))


def test_a_link_is_url_safe() -> None:
    token = mint_link(SIGNER, "verify", uuid.uuid4(), NOW)
    assert all(char.isalnum() or char in "-_." for char in token)


@pytest.mark.parametrize("position", [0, 5, 20, -1, -10])
def test_changing_any_character_of_a_link_makes_it_invalid(position: int) -> None:
    token = mint_link(SIGNER, "verify", uuid.uuid4(), NOW)
    replacement = "A" if token[position] != "A" else "B"
    tampered = token[:position] + replacement + token[position + 1 :] if position != -1 else token[:-1] + replacement
    with pytest.raises(BadToken):
        read_link(SIGNER, "verify", tampered)


def test_a_link_extended_by_its_holder_is_refused() -> None:
    """The expiry is inside the signed payload: pushing it forward breaks the signature."""
    link_id = uuid.uuid4()
    genuine = mint_link(SIGNER, "verify", link_id, NOW)
    forged_payload = mint_link(Signer("another-secret-0123456789"), "verify", link_id, NOW + timedelta(days=365))
    forged = forged_payload.split(".")[0] + "." + genuine.split(".")[1]
    with pytest.raises(BadToken):
        read_link(SIGNER, "verify", forged)


def test_a_link_minted_for_one_purpose_is_worthless_for_another() -> None:
    token = mint_link(SIGNER, "sso", uuid.uuid4(), NOW)
    with pytest.raises(BadToken):
        read_link(SIGNER, "verify", token)


def test_a_link_signed_with_another_secret_is_refused() -> None:
    token = mint_link(Signer("someone-elses-secret-0123"), "verify", uuid.uuid4(), NOW)
    with pytest.raises(BadToken):
        read_link(SIGNER, "verify", token)


@pytest.mark.parametrize(
    "garbage", ["", ".", "abc", "abc.", ".abc", "a.b.c", "%%%.%%%", "é.é", "x" * 5000, "\x00.\x00"]
)
def test_garbage_is_a_bad_token_not_a_crash(garbage: str) -> None:
    with pytest.raises(BadToken):
        read_link(SIGNER, "verify", garbage)


def test_a_session_round_trips_and_expires() -> None:
    session = BrowserSession.start(uuid.uuid4(), "verified", NOW)
    cookie = encode_session(SIGNER, session)
    assert decode_session(SIGNER, cookie, NOW + timedelta(days=6), max_age_seconds=7 * 86400) == session
    with pytest.raises(ExpiredToken):
        decode_session(SIGNER, cookie, NOW + timedelta(days=8), max_age_seconds=7 * 86400)


def test_a_registered_session_cannot_be_upgraded_to_verified_by_its_holder() -> None:
    cookie = encode_session(SIGNER, BrowserSession.start(uuid.uuid4(), "registered", NOW))
    payload, mac = cookie.split(".")
    import base64

    raw = bytearray(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    raw[-1] = 1  # the level byte: "verified"
    upgraded = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode() + "." + mac
    with pytest.raises(BadToken):
        decode_session(SIGNER, upgraded, NOW, max_age_seconds=3600)


def test_two_sessions_of_one_signup_have_different_bindings() -> None:
    signup_id = uuid.uuid4()
    first, second = BrowserSession.start(signup_id, "verified", NOW), BrowserSession.start(signup_id, "verified", NOW)
    assert first.binding != second.binding
    assert len(first.binding) == 64


def test_csrf_token_matches_only_its_own_cookie() -> None:
    token = csrf_token(SIGNER, "cookie-value-1")
    assert csrf_matches(SIGNER, "cookie-value-1", token)
    assert not csrf_matches(SIGNER, "cookie-value-2", token)
    assert not csrf_matches(SIGNER, None, token)
    assert not csrf_matches(SIGNER, "cookie-value-1", None)
    assert not csrf_matches(SIGNER, "cookie-value-1", "")
    assert not csrf_matches(SIGNER, "cookie-value-1", "é" * 10)


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError):
        Signer("short")


def test_every_other_spelling_of_a_links_last_character_is_refused() -> None:
    """base64url's last character carries unused bits: a decoder would accept several spellings of one
    signature. Each is tried, so the test does not depend on which character the signature ends with."""
    token = mint_link(SIGNER, "verify", uuid.uuid4(), NOW)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for replacement in alphabet.replace(token[-1], ""):
        with pytest.raises(BadToken):
            read_link(SIGNER, "verify", token[:-1] + replacement)
    assert read_link(SIGNER, "verify", token).link_id
