"""The customer's chosen password, encrypted at rest only until its WHMCS client exists. Pure, no I/O.

Fernet (AES-128-CBC + HMAC-SHA256) with MultiFernet for rotation: the first key encrypts, every key
decrypts. The clear text is handed around as ``SecretStr`` so it cannot end up in a log line or repr.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import SecretStr

from shared.errors import ConfigurationError


class UndecryptablePassword(ConfigurationError):
    """No configured key opens the stored password (a key was removed before its rows were used)."""


class PasswordVault:
    def __init__(self, keys: Sequence[SecretStr]) -> None:
        if not keys:
            raise ConfigurationError("at least one password encryption key is needed")
        try:
            self._fernet = MultiFernet([Fernet(key.get_secret_value().encode("ascii")) for key in keys])
        except (ValueError, UnicodeEncodeError):
            raise ConfigurationError("a password key is not a Fernet key (32 url-safe base64-encoded bytes)") from None

    def encrypt(self, password: SecretStr) -> str:
        return self._fernet.encrypt(password.get_secret_value().encode("utf-8")).decode("ascii")

    def decrypt(self, ciphertext: str) -> SecretStr:
        try:
            return SecretStr(self._fernet.decrypt(ciphertext.encode("ascii")).decode("utf-8"))
        except InvalidToken:
            raise UndecryptablePassword("the stored password cannot be decrypted with the configured keys") from None
