"""Registration rules: each bad field gets a message a customer can act on."""

from __future__ import annotations

from typing import Any

import pytest

from services.signup.validation import InvalidRegistration, split_name
from services.signup.validation import validate_registration as validate

CURRENCIES = ("EUR", "USD")
GOOD = {
    "name": "Ada Lovelace",
    "company": "Analytical Engines",
    "email": "ada@example.com",
    "password": "Tr0ub4dor&3-horse",
    "currency": "EUR",
    "country": "DE",
}


def validate_registration(raw: dict[str, Any]) -> Any:
    return validate(raw, currencies=CURRENCIES)


def problems(**changes: Any) -> dict[str, str]:
    with pytest.raises(InvalidRegistration) as caught:
        validate_registration({**GOOD, **changes})
    return caught.value.problems


def test_a_good_registration_passes_with_tidy_values() -> None:
    registration = validate_registration({**GOOD, "name": "  Ada   Lovelace ", "email": " Ada@Example.COM "})
    assert registration.name == "Ada Lovelace"
    assert registration.email == "Ada@example.com"
    assert registration.email_key == "ada@example.com"
    assert registration.password.get_secret_value() == GOOD["password"]
    assert "horse" not in repr(registration)


def test_company_is_optional() -> None:
    assert validate_registration({**GOOD, "company": ""}).company == ""
    assert validate_registration({k: v for k, v in GOOD.items() if k != "company"}).company == ""


@pytest.mark.parametrize(
    "email",
    [
        "",
        "ada",
        "ada@",
        "@example.com",
        "ada@example",
        "ada@@example.com",
        "ada example@x.com",
        "ada@exa_mple.com",
        "ada@-example.com",
        ".ada@example.com",
        "ada..b@example.com",
        "ada@example.123",
        "a" * 65 + "@example.com",
    ],
)
def test_invalid_email_is_named(email: str) -> None:
    assert "email" in problems(email=email)


def test_missing_name_is_named() -> None:
    assert problems(name="   ") == {"name": "Please enter your name."}


@pytest.mark.parametrize(("field", "limit"), [("name", 100), ("company", 100), ("email", 254)])
def test_over_long_input_is_named(field: str, limit: int) -> None:
    value = "x" * (limit + 1) if field != "email" else "a" * 60 + "@" + "b" * 200 + ".com"
    assert "at most" in problems(**{field: value})[field]


@pytest.mark.parametrize(
    ("password", "fragment"),
    [
        ("", "choose a password"),
        ("Sh0rt!", "at least 10"),
        ("password123", "too easy"),
        ("aaaaaaaaaaaa", "too easy"),
        ("abcdefghijkl", "too easy"),
        ("abcd123456", "too easy"),
        ("lovelace-1234", "name or email"),
        ("x" * 100 + "1" * 29, "at most 128"),
    ],
)
def test_weak_password_is_named(password: str, fragment: str) -> None:
    assert fragment.lower() in problems(password=password)["password"].lower()


def test_a_password_containing_the_email_address_is_refused() -> None:
    assert "name or email" in problems(email="babbage@example.com", password="Babbage-2026!x")["password"]


def test_a_long_passphrase_of_letters_is_fine() -> None:
    assert validate_registration({**GOOD, "password": "correcthorsebatterystaple"})


def test_control_characters_are_refused() -> None:
    assert "not allowed" in problems(name="Ada\u0000Lovelace")["name"]
    assert "not allowed" in problems(password="Tr0ub4dor&3\u0007horse")["password"]


def test_every_bad_field_is_reported_at_once() -> None:
    assert set(problems(name="", email="nope", password="x")) == {"name", "email", "password"}


@pytest.mark.parametrize("value", [123, ["a"], {"a": 1}, True])
def test_non_text_values_are_refused_not_crashed_on(value: object) -> None:
    assert set(problems(name=value, company=value, email=value, password=value)) == {
        "name",
        "company",
        "email",
        "password",
    }


@pytest.mark.parametrize(
    ("name", "expected"),
    [("Ada Lovelace", ("Ada", "Lovelace")), ("Ada", ("Ada", "")), ("Ada King Lovelace", ("Ada King", "Lovelace"))],
)
def test_whmcs_gets_a_first_and_last_name(name: str, expected: tuple[str, str]) -> None:
    assert split_name(name) == expected


def test_the_form_needs_a_currency_we_invoice_in_and_an_iso_country() -> None:
    assert set(problems(currency="", country="")) == {"currency", "country"}
    assert "EUR, USD" in problems(currency="JPY")["currency"]
    assert "list" in problems(country="XX")["country"]
    assert set(problems(currency=["USD"], country=7)) == {"currency", "country"}
    registration = validate_registration({**GOOD, "currency": " usd", "country": "gb "})
    assert (registration.currency, registration.country) == ("USD", "GB")


def test_the_api_may_leave_currency_and_country_out_but_not_send_wrong_ones() -> None:
    without = {key: value for key, value in GOOD.items() if key not in ("currency", "country")}
    registration = validate(without, currencies=CURRENCIES, choices_required=False)
    assert (registration.currency, registration.country) == (None, None)
    with pytest.raises(InvalidRegistration) as caught:
        validate({**without, "currency": "XYZ", "country": "ZZ"}, currencies=CURRENCIES, choices_required=False)
    assert set(caught.value.problems) == {"currency", "country"}
