"""The provider's branding: WCAG AA contrast of every colour the pages use, in light and dark mode; the
settings that refuse unreadable or unsafe values; every email carrying the brand."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from services.provisioner.emails import reactivation_email, suspension_email
from services.signup.emails import already_enrolled_email, verification_email, welcome_email
from services.signup.settings import SignupSettings
from shared.branding import WCAG_AA_TEXT, BrandSettings, contrast_ratio, text_on
from shared.events.accounts import OverdueInvoice

CSS = (Path(__file__).resolve().parents[2] / "services" / "signup" / "templates" / "signup.css").read_text()
# Each text colour, and the backgrounds it is drawn on.
TEXT_ON = {
    "text": ("bg", "surface"),
    "muted": ("bg", "surface"),
    "link": ("bg", "surface"),
    "error": ("bg", "surface"),
    "ok": ("bg", "surface"),
    "warn": ("bg", "surface"),
}


def variables(block: str) -> dict[str, str]:
    return dict(re.findall(r"--([a-z-]+):\s*(#[0-9a-fA-F]{3,6})", block))


def modes() -> dict[str, dict[str, str]]:
    light_block = CSS[CSS.index(":root {") : CSS.index("}", CSS.index(":root {"))]
    dark_start = CSS.index("@media (prefers-color-scheme: dark)")
    dark_block = CSS[dark_start : CSS.index("}\n}", dark_start)]
    light = variables(light_block)
    return {"light": light, "dark": {**light, **variables(dark_block)}}


@pytest.mark.parametrize("mode", ["light", "dark"])
def test_every_text_colour_reaches_wcag_aa_on_its_backgrounds(mode: str) -> None:
    colours = modes()[mode]
    for text, backgrounds in TEXT_ON.items():
        for background in backgrounds:
            ratio = contrast_ratio(colours[text], colours[background])
            assert ratio >= WCAG_AA_TEXT, (
                f"{mode}: --{text} {colours[text]} on --{background} {colours[background]}: {ratio:.2f}"
            )
    assert contrast_ratio(colours["on-accent"], colours["accent"]) >= WCAG_AA_TEXT


def test_the_dark_mode_redefines_every_background_and_text_colour() -> None:
    light, dark = modes()["light"], modes()["dark"]
    assert all(dark[name] != light[name] for name in ("bg", "surface", "text", "muted", "link", "error"))


def test_contrast_is_computed_as_wcag_defines_it() -> None:
    assert contrast_ratio("#000000", "#ffffff") == pytest.approx(21)
    assert contrast_ratio("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)
    assert contrast_ratio("#fff", "#ffffff") == 1


@pytest.mark.parametrize(
    ("accent", "text"), [("#1d4ed8", "#ffffff"), ("#22c55e", "#111827"), ("#FFF", "#111827"), ("#767676", "#ffffff")]
)
def test_an_accent_gets_the_text_colour_that_reads_on_it(accent: str, text: str) -> None:
    brand = BrandSettings(brand_accent_colour=accent).brand
    assert brand.on_accent == text and contrast_ratio(brand.on_accent, brand.accent) >= WCAG_AA_TEXT


@pytest.mark.parametrize(
    "accent",
    ["#777777", "#808080", "#ff0000", "blue", "#12345", "#1d4ed8; color: red", "rgb(0,0,0)", "#1d4ed8}body{x:y"],
)
def test_an_unreadable_or_malformed_accent_is_refused(accent: str) -> None:
    with pytest.raises(ValidationError, match="brand_accent_colour"):
        BrandSettings(brand_accent_colour=accent)
    assert text_on("#777777") is None


@pytest.mark.parametrize(
    "logo",
    [
        "http://cdn.example.com/logo.png",
        "javascript:alert(1)",
        "//evil.example/x.png",
        "data:image/png;base64,AAAA",
        "https://cdn.example.com/a b.png",
        'https://cdn.example.com/x.png" onerror="x',
    ],
)
def test_a_logo_must_be_https_or_a_path_here(logo: str) -> None:
    with pytest.raises(ValidationError, match="logo"):
        BrandSettings(brand_logo_url=logo)


def test_links_may_be_https_http_a_path_or_mailto_for_support() -> None:
    brand = BrandSettings(
        brand_logo_url="/assets/logo.svg",
        brand_support_url="mailto:help@example.com",
        brand_privacy_url="https://example.com/privacy",
    ).brand
    assert (brand.logo_url, brand.support_url, brand.privacy_url) == (
        "/assets/logo.svg",
        "mailto:help@example.com",
        "https://example.com/privacy",
    )
    assert brand.absolute_logo_url() is None, "an email has no site for a path to be relative to"
    with pytest.raises(ValidationError, match="privacy"):
        BrandSettings(brand_privacy_url="mailto:x@example.com")
    with pytest.raises(ValidationError, match="brand_name"):
        BrandSettings(brand_name="<b>Acme</b>")


BRAND = SignupSettings(
    brand_name="Acme Cloud",
    brand_logo_url="https://cdn.acme.example/logo.png",
    brand_accent_colour="#0f766e",
    brand_support_url="https://acme.example/help",
    brand_privacy_url="https://acme.example/privacy",
).brand


def every_email() -> list:
    invoice = OverdueInvoice(invoice_id=12, due_date=date(2026, 11, 15), total=Decimal("3.50"), currency="EUR")
    return [
        verification_email(
            to="a@example.com", name="Ada", link="https://x/verify/t", expires_at=datetime.now(UTC), brand=BRAND
        ),
        welcome_email(
            to="a@example.com",
            name="Ada",
            client_area_url="https://w/clientarea.php",
            brand=BRAND,
            currency="EUR",
            chosen="USD",
        ),
        already_enrolled_email(to="a@example.com", name="Ada", client_area_url="https://w/clientarea.php", brand=BRAND),
        suspension_email(
            to="a@example.com", invoices=[invoice], grace_days=14, invoice_url=lambda n: f"https://w/{n}", brand=BRAND
        ),
        reactivation_email(to="a@example.com", settled_invoice_ids=[12], brand=BRAND),
    ]


@pytest.mark.parametrize("index", range(5))
def test_every_email_carries_the_brand_its_logo_colour_and_links(index: int) -> None:
    email = every_email()[index]
    assert "Acme Cloud" in email.subject
    for part in (email.text, email.html):
        assert "Acme Cloud" in part and "https://acme.example/help" in part and "https://acme.example/privacy" in part
    assert 'src="https://cdn.acme.example/logo.png"' in email.html and "background: #0f766e" in email.html
    assert "color: #ffffff" in email.html


def test_the_welcome_says_when_the_invoices_are_not_in_the_currency_chosen() -> None:
    welcome = every_email()[1]
    assert "in EUR, not USD" in welcome.text.replace("\n", " ") and "in EUR, not USD" in welcome.html
    same = welcome_email(
        to="a@example.com", name="Ada", client_area_url="https://w/", brand=BRAND, currency="EUR", chosen="EUR"
    )
    assert "not " + "EUR" not in same.text and ", in EUR" in same.text
