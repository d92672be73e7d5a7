"""Signup settings from the environment: token prices stay exact decimals."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from services.signup.settings import SignupSettings


def test_token_prices_are_parsed_to_exact_decimals(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTPAY_TOKEN_PRICES", '{"USD":"0.0010","eur":0.0009}')
    prices = SignupSettings().token_prices
    assert prices == {"USD": Decimal("0.0010"), "EUR": Decimal("0.0009")}
    assert str(prices["EUR"]) == "0.0009", "a JSON number must not pass through a float"


@pytest.mark.parametrize("value", ['{"USD": "-1"}', '{"DOLLARS": "1"}', '["USD"]', "not json", '{"USD": "NaN"}'])
def test_bad_token_prices_are_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("POSTPAY_TOKEN_PRICES", value)
    with pytest.raises(ValidationError):
        SignupSettings()


def test_password_keys_are_comma_separated_and_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTPAY_PASSWORD_KEYS", "first, second")
    settings = SignupSettings()
    assert [key.get_secret_value() for key in settings.password_keys] == ["first", "second"]
    assert "first" not in repr(settings)


def test_an_sso_link_may_not_live_longer_than_a_minute() -> None:
    with pytest.raises(ValidationError):
        SignupSettings(sso_link_seconds=61)


def test_https_public_url_makes_cookies_secure() -> None:
    assert SignupSettings(public_url="https://signup.example.com/").secure_cookies
    assert SignupSettings(public_url="https://signup.example.com/").public_url == "https://signup.example.com"
    assert not SignupSettings(public_url="http://127.0.0.1:8480").secure_cookies


@pytest.mark.parametrize("value", ['{"USD": "abc"}', '{"USD": true}', '{"USD": "Infinity"}'])
def test_a_price_that_is_not_a_number_is_a_validation_error_naming_the_currency(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("POSTPAY_TOKEN_PRICES", value)
    with pytest.raises(ValidationError, match="USD"):
        SignupSettings()


def test_the_landing_page_and_the_invoicer_read_one_price_list(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.invoicer.settings import InvoicerSettings

    assert SignupSettings().token_prices == InvoicerSettings().token_prices, "the same default for both"
    monkeypatch.setenv("POSTPAY_TOKEN_PRICES", '{"GBP": "0.0008"}')
    assert SignupSettings().token_prices == InvoicerSettings().token_prices == {"GBP": Decimal("0.0008")}


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("http://127.0.0.1:8480", True),
        ("http://localhost:8480", True),
        ("http://[::1]:8480", True),
        ("https://signup.example.com", False),
        ("http://10.0.0.5:8480", False),
    ],
)
def test_only_a_loopback_public_url_counts_as_this_machine(url: str, local: bool) -> None:
    assert SignupSettings(public_url=url).serves_only_this_machine() is local


def test_signup_refuses_to_serve_the_world_with_the_public_demo_secrets() -> None:
    from services.signup.service import build
    from shared.dependencies import Dependencies
    from shared.errors import ConfigurationError

    public = SignupSettings(public_url="https://signup.example.com", signup_port=0)
    refused = build(Dependencies(whmcs=None, solusvm=None, mailer=None, overrides={SignupSettings: public}))
    with pytest.raises(ConfigurationError, match="POSTPAY_SECRET_KEY"):
        for check in refused.preflight:  # what `postpay run signup` does before it serves
            check()
    local = SignupSettings(public_url="http://127.0.0.1:8480", signup_port=0)
    served = build(Dependencies(whmcs=None, solusvm=None, mailer=None, overrides={SignupSettings: local}))
    for check in served.preflight:
        check()
    assert served.name == "signup"


@pytest.mark.parametrize(
    ("name", "owner"),
    [
        ("invoice_due_days", "services.invoicer.settings:InvoicerSettings"),
        ("accounts_grace_days", "services.provisioner.settings:ProvisionerSettings"),
        ("accounts_invoice_url", "services.provisioner.settings:ProvisionerSettings"),
        ("billing_timezone", "services.scheduler.settings:SchedulerSettings"),
    ],
)
def test_the_landing_page_promises_the_terms_the_deciding_service_applies(
    name: str, owner: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The signup shows due days, grace days, the pay link and the billing zone: the same variable, the
    same default, bounds and description as the service that decides them."""
    import importlib

    module, cls = owner.split(":")
    deciding = getattr(importlib.import_module(module), cls)
    mine, theirs = SignupSettings.model_fields[name], deciding.model_fields[name]
    assert (mine.default, mine.description, repr(mine.metadata)) == (
        theirs.default,
        theirs.description,
        repr(theirs.metadata),
    )
    value = {
        "invoice_due_days": "30",
        "accounts_grace_days": "3",
        "billing_timezone": "Europe/Berlin",
        "accounts_invoice_url": "https://billing.example/viewinvoice.php?id={invoice_id}",
    }[name]
    monkeypatch.setenv(f"POSTPAY_{name.upper()}", value)
    assert str(getattr(SignupSettings(), name)) == str(getattr(deciding(), name)) == value


def test_the_currencies_offered_have_a_price_and_a_whmcs_id(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = SignupSettings(
        token_prices={"USD": "0.001", "EUR": "0.0009", "JPY": "0.15"},
        whmcs_currency_ids='{"usd": 1, "JPY": 4, "GBP": 3}',
    )
    assert settings.signup_currencies == ("JPY", "USD")
    for bad in ('{"USD": 0}', '{"USD": "1"}', '{"US": 1}', "[1]", "not json"):
        with pytest.raises(ValueError):
            SignupSettings(whmcs_currency_ids=bad)
    from services.signup.service import refuse_no_currencies
    from shared.errors import ConfigurationError

    lonely = SignupSettings(token_prices={"GBP": "0.001"})
    assert lonely.signup_currencies == () and "none to choose" in (lonely.currency_problem() or "")
    with pytest.raises(ConfigurationError, match="POSTPAY_WHMCS_CURRENCY_IDS"):
        refuse_no_currencies(lonely)
    refuse_no_currencies(settings)
    with pytest.raises(ValueError, match="ISO 3166"):
        SignupSettings(whmcs_default_country="XX")
