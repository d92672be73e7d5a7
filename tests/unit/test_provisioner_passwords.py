"""The random password of a new SolusVM 2 user: strong, and never the same twice."""

from __future__ import annotations

import string

import pytest

from services.provisioner.passwords import random_password


def test_every_character_class_is_present() -> None:
    for _ in range(200):
        password = random_password().get_secret_value()
        assert len(password) == 32
        assert any(c in string.ascii_lowercase for c in password)
        assert any(c in string.ascii_uppercase for c in password)
        assert any(c in string.digits for c in password)
        assert any(not c.isalnum() for c in password)


def test_passwords_do_not_repeat_and_do_not_print() -> None:
    passwords = {random_password().get_secret_value() for _ in range(500)}
    assert len(passwords) == 500
    assert "*" in repr(random_password())


def test_too_short_to_hold_every_class_is_refused() -> None:
    with pytest.raises(ValueError):
        random_password(3)
