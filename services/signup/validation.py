"""What a registration must look like, with messages a customer can act on. Pure, no I/O.

The same rules serve the HTML form and the JSON API. Problems are collected per field, so one
submission reports everything wrong with it at once.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr
from zxcvbn import zxcvbn

from services.signup.countries import country_name

NAME_MAX = 100
COMPANY_MAX = 100
EMAIL_MAX = 254
EMAIL_LOCAL_MAX = 64
PASSWORD_MIN = 10
PASSWORD_MAX = 128

_DOMAIN_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$", re.IGNORECASE)
_LOCAL_PART = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+$")
# zxcvbn's score: 3 is "safely unguessable: moderate protection from offline slow-hash attacks".
MIN_PASSWORD_SCORE = 3
_ZXCVBN_MAX = 72  # zxcvbn refuses longer input; the first 72 characters decide
# Words an attacker tries first against this service's accounts.
_SERVICE_WORDS = ("postpay", "solusvm", "whmcs", "password", "signup")
# WHMCS's client-area templates do not all escape a client's name; markup in one could run there.
_MARKUP = frozenset("<>")
# Every rule, shown next to the field before the first try (the checks below enforce exactly these).
PASSWORD_RULES = (
    f"Use at least {PASSWORD_MIN} characters, and at most {PASSWORD_MAX}.",
    "Not easy to guess: common passwords, single words, names, dates, repeats and keyboard patterns are refused.",
    "Must not contain your name or email address.",
)
PASSWORD_NOTE = "It becomes the password of your client area, where your invoices are."


@dataclass(frozen=True)
class Registration:
    """A registration that passed every rule. ``email`` keeps the customer's spelling of the local
    part; ``email_key`` is what uniqueness is decided on."""

    name: str
    company: str
    email: str
    password: SecretStr
    # What the customer chose; None only from an API client that sent neither (the WHMCS default
    # currency and POSTPAY_WHMCS_DEFAULT_COUNTRY apply then, as before these were asked).
    currency: str | None = None
    country: str | None = None

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
    elif _MARKUP & set(value):
        problems.add(name, f"{label} contains characters that are not allowed (< or >).")
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
    if (
        len(local) > EMAIL_LOCAL_MAX
        or not _LOCAL_PART.match(local)
        or ".." in local
        or local[0] == "."
        or local[-1] == "."
    ):
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
    local, _, domain = email.casefold().partition("@")
    words = [word.casefold() for word in name.split()]
    if (len(local) >= 4 and local in lowered) or any(len(word) >= 4 and word in lowered for word in words):
        return "The password must not contain your name or email address."
    known = [*words, local, *domain.split("."), *_SERVICE_WORDS]
    strength = zxcvbn(password[:_ZXCVBN_MAX], user_inputs=[word for word in known if word])
    if strength["score"] < MIN_PASSWORD_SCORE:
        hint = strength["feedback"].get("warning") or ""
        return "This password is too easy to guess; choose a longer or less common one." + (
            f" ({hint})" if hint else ""
        )
    return None


def _choice(
    problems: Problems, name: str, raw: Any, *, required: bool, missing: str, known: Callable[[str], bool], unknown: str
) -> str | None:
    if raw is None or raw == "":
        if required:
            problems.add(name, missing)
        return None
    if not isinstance(raw, str) or not known(raw.strip().upper()):
        problems.add(name, unknown)
        return None
    return raw.strip().upper()


def validate_registration(
    raw: dict[str, Any], *, currencies: Sequence[str] = (), choices_required: bool = True
) -> Registration:
    """A ``Registration`` from untrusted input, or ``InvalidRegistration`` naming each bad field.

    ``currencies`` are those a customer may choose (a token price and a WHMCS id each); the form must
    name a currency and a country, the API may leave both out (``choices_required=False``)."""
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
    offered = ", ".join(currencies)
    currency = _choice(
        problems,
        "currency",
        raw.get("currency"),
        required=choices_required,
        missing="Please choose the currency you want to be invoiced in.",
        known=lambda code: code in currencies,
        unknown=f"Please choose one of the currencies we invoice in: {offered}.",
    )
    country = _choice(
        problems,
        "country",
        raw.get("country"),
        required=choices_required,
        missing="Please choose your country.",
        known=lambda code: country_name(code) is not None,
        unknown="Please choose your country from the list.",
    )
    if problems:
        raise InvalidRegistration(problems)
    return Registration(
        name=name,
        company=company,
        email=email,
        password=SecretStr(raw_password or ""),
        currency=currency,
        country=country,
    )
