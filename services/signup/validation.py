"""What a registration must look like, with messages a customer can act on. Pure, no I/O.

The same rules serve the HTML form and the JSON API. Problems are collected per field, so one
submission reports everything wrong with it at once.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

NAME_MAX = 100
COMPANY_MAX = 100
EMAIL_MAX = 254
EMAIL_LOCAL_MAX = 64
PASSWORD_MIN = 10
PASSWORD_MAX = 128

_DOMAIN_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$", re.IGNORECASE)
_LOCAL_PART = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+$")
# The passwords every breach list starts with; a customer choosing one is told so.
_COMMON_PASSWORDS = frozenset(
    {
        "password", "password1", "password12", "password123", "password1234", "passw0rd", "p@ssw0rd",
        "123456", "1234567890", "12345678910", "qwerty", "qwertyuiop", "qwerty123", "qwerty1234",
        "iloveyou", "letmein", "welcome", "welcome1", "welcome123", "admin", "admin123", "administrator",
        "abc123", "abcdefghij", "1q2w3e4r5t", "1qaz2wsx3edc", "trustno1", "sunshine", "football",
        "monkey", "dragon", "baseball", "superman", "princess", "changeme", "changeme123", "solusvm",
        "solusvm123", "whmcs", "whmcs123",
    }
)  # fmt: skip


@dataclass(frozen=True)
class Registration:
    """A registration that passed every rule. ``email`` keeps the customer's spelling of the local
    part; ``email_key`` is what uniqueness is decided on."""

    name: str
    company: str
    email: str
    password: SecretStr

    @property
    def email_key(self) -> str:
        return email_key(self.email)

    @property
    def first_and_last_name(self) -> tuple[str, str]:
        return split_name(self.name)


@dataclass
class Problems:
    by_field: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, message: str) -> None:
        self.by_field.setdefault(name, message)

    def __bool__(self) -> bool:
        return bool(self.by_field)


class InvalidRegistration(ValueError):
    def __init__(self, problems: Problems) -> None:
        super().__init__("; ".join(f"{name}: {message}" for name, message in problems.by_field.items()))
        self.problems = problems.by_field


def email_key(email: str) -> str:
    return email.strip().casefold()


def split_name(name: str) -> tuple[str, str]:
    """WHMCS wants a first and a last name: the last word is the last name."""
    words = name.split()
    if len(words) < 2:
        return name, ""
    return " ".join(words[:-1]), words[-1]


def _text(raw: Any) -> str:
    if raw is None:
        return ""
    if not isinstance(raw, str):
        raise TypeError
    return unicodedata.normalize("NFC", raw)


def _has_control_characters(value: str) -> bool:
    return any(unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn") for char in value)


def _one_line(problems: Problems, name: str, label: str, raw: Any, *, required: bool, limit: int) -> str:
    try:
        value = " ".join(_text(raw).split())
    except TypeError:
        problems.add(name, f"{label} must be text.")
        return ""
    if required and not value:
        problems.add(name, f"Please enter your {label.lower()}.")
    elif len(value) > limit:
        problems.add(name, f"{label} can be at most {limit} characters long.")
    elif _has_control_characters(value):
        problems.add(name, f"{label} contains characters that are not allowed.")
    return value


def email_problem(email: str) -> str | None:
    """Why ``email`` is not an address we can send to, or None."""
    if not email:
        return "Please enter your email address."
    if len(email) > EMAIL_MAX:
        return f"An email address can be at most {EMAIL_MAX} characters long."
    local, at, domain = email.rpartition("@")
    if not at or not local or not domain:
        return "Please enter a valid email address, like name@example.com."
    if len(local) > EMAIL_LOCAL_MAX or not _LOCAL_PART.match(local) or ".." in local or local[0] == "." or local[-1] == ".":
        return "Please enter a valid email address, like name@example.com."
    labels = domain.split(".")
    if len(labels) < 2 or not all(_DOMAIN_LABEL.match(label) for label in labels) or labels[-1].isdigit():
        return "Please enter a valid email address, like name@example.com."
    return None


def password_problem(password: str, *, email: str, name: str) -> str | None:
    """Why ``password`` is too weak (or too long), or None."""
    if not password:
        return "Please choose a password."
    if len(password) < PASSWORD_MIN:
        return f"Choose a password of at least {PASSWORD_MIN} characters."
    if len(password) > PASSWORD_MAX:
        return f"A password can be at most {PASSWORD_MAX} characters long."
    if _has_control_characters(password):
        return "The password contains characters that are not allowed."
    lowered = password.casefold()
    if lowered in _COMMON_PASSWORDS or len(set(lowered)) < 4:
        return "This password is too easy to guess; choose a less common one."
    has_letter = any(char.isalpha() for char in password)
    has_other = any(not char.isalpha() for char in password)
    if not (has_letter and has_other) and len(password) < 16:
        return "Mix letters with digits or symbols, or use at least 16 characters."
    local = email.partition("@")[0].casefold()
    if (len(local) >= 4 and local in lowered) or any(len(word) >= 4 and word.casefold() in lowered for word in name.split()):
        return "The password must not contain your name or email address."
    return None


def validate_registration(raw: dict[str, Any]) -> Registration:
    """A ``Registration`` from untrusted input, or ``InvalidRegistration`` naming each bad field."""
    problems = Problems()
    name = _one_line(problems, "name", "Name", raw.get("name"), required=True, limit=NAME_MAX)
    company = _one_line(problems, "company", "Company", raw.get("company"), required=False, limit=COMPANY_MAX)
    email = _one_line(problems, "email", "Email address", raw.get("email"), required=True, limit=EMAIL_MAX)
    if "email" not in problems.by_field:
        local, _, domain = email.rpartition("@")
        email = f"{local}@{domain.lower()}" if domain else email
        problem = email_problem(email)
        if problem:
            problems.add("email", problem)
    raw_password = raw.get("password")
    if raw_password is not None and not isinstance(raw_password, str):
        problems.add("password", "The password must be text.")
        raw_password = ""
    problem = password_problem(raw_password or "", email=email, name=name)
    if problem:
        problems.add("password", problem)
    if problems:
        raise InvalidRegistration(problems)
    return Registration(name=name, company=company, email=email, password=SecretStr(raw_password or ""))
