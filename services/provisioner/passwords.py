"""The password a new SolusVM 2 user is created with. Pure, no I/O.

Nobody ever types it: the customer signs in through one-time SSO tokens. It is random, strong enough
for any password policy SolusVM 2 may enforce, used for one API call and then forgotten.
"""

from __future__ import annotations

import secrets
import string

from pydantic import SecretStr

_ALPHABETS = (string.ascii_lowercase, string.ascii_uppercase, string.digits, "-_.!@#%+=")


def random_password(length: int = 32) -> SecretStr:
    """``length`` characters with at least one of each class (lower, upper, digit, symbol)."""
    if length < len(_ALPHABETS):
        raise ValueError("a password needs room for every character class")
    everything = "".join(_ALPHABETS)
    characters = [secrets.choice(alphabet) for alphabet in _ALPHABETS]
    characters += [secrets.choice(everything) for _ in range(length - len(characters))]
    secrets.SystemRandom().shuffle(characters)
    return SecretStr("".join(characters))
