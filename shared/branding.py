"""The provider's branding on every customer-facing page and email (signup and provisioner alike).

One settings class, inherited by each service that talks to customers, so the same ``POSTPAY_BRAND_*``
variables mean the same thing everywhere. The accent colour is a button's background: it is refused
unless white or near-black text on it reaches WCAG AA contrast (4.5:1), and the text colour that does is
chosen here, so an operator cannot configure unreadable buttons. URLs are checked as much as a browser
would need: a logo is https (or served by the site itself), links are http(s), relative or mailto.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings

from shared.settings import SETTINGS_CONFIG

WCAG_AA_TEXT = 4.5
WHITE = "#ffffff"
NEAR_BLACK = "#111827"
_HEX = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")


def expand_hex(colour: str) -> str:
    """``#abc`` → ``#aabbcc``, lower case; ``ValueError`` for anything but a hex colour."""
    if not _HEX.match(colour):
        raise ValueError(f"{colour!r} is not a hex colour like #1d4ed8")
    digits = colour[1:].lower()
    return "#" + ("".join(char * 2 for char in digits) if len(digits) == 3 else digits)


def relative_luminance(colour: str) -> float:
    """WCAG 2's relative luminance of an sRGB hex colour."""
    digits = expand_hex(colour)[1:]
    channels = [int(digits[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast_ratio(first: str, second: str) -> float:
    """WCAG 2's contrast ratio of two colours, from 1 (none) to 21 (black on white)."""
    lighter, darker = sorted((relative_luminance(first), relative_luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def text_on(background: str) -> str | None:
    """White or near-black, whichever reads on ``background`` at WCAG AA (white preferred); None if neither."""
    for text in (WHITE, NEAR_BLACK):
        if contrast_ratio(text, background) >= WCAG_AA_TEXT:
            return text
    return None


def _link_problem(value: str, *, schemes: tuple[str, ...]) -> str | None:
    if any(char.isspace() or ord(char) < 32 for char in value) or any(char in value for char in "<>\"'`\\"):
        return "contains spaces, quotes or markup characters"
    if value.startswith("/") and not value.startswith("//"):
        return None
    parts = urlsplit(value)
    if parts.scheme not in schemes:
        return f"must be {' or '.join(schemes)} (or a path on this site, starting with /)"
    if parts.scheme != "mailto" and not parts.netloc:
        return "has no host"
    return None


@dataclass(frozen=True)
class Brand:
    """What templates read: ``brand.name``, ``brand.logo_url``, ``brand.accent``..."""

    name: str
    logo_url: str | None
    accent: str
    on_accent: str
    support_url: str | None
    privacy_url: str | None

    def absolute_logo_url(self) -> str | None:
        """The logo for an email, which has no site to be relative to: only an absolute one."""
        return self.logo_url if self.logo_url and self.logo_url.startswith("https://") else None


class BrandSettings(BaseSettings):
    model_config = SETTINGS_CONFIG

    brand_name: str = Field(
        default="postpay", min_length=1, max_length=100, description="Provider name shown on pages and emails."
    )
    brand_logo_url: str | None = Field(
        default=None,
        max_length=2000,
        description="Logo shown on every page and email: an https URL, or a path on the signup site (/...). "
        "Emails show only an https one. Unset: the name alone.",
    )
    brand_accent_colour: str = Field(
        default="#1d4ed8",
        description="Accent colour of buttons and the page header, as hex (#1d4ed8). Refused unless white or "
        "near-black text on it reaches WCAG AA contrast (4.5:1).",
    )
    brand_support_url: str | None = Field(
        default=None,
        max_length=2000,
        description="Where customers get help (https, a path, or mailto:), linked on every page and email.",
    )
    brand_privacy_url: str | None = Field(
        default=None,
        max_length=2000,
        description="The privacy policy (https or a path), linked on every page and email.",
    )

    @field_validator("brand_name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if any(char in value for char in "<>") or any(ord(char) < 32 for char in value):
            raise ValueError("the brand name must be plain text (no < or >, no control characters)")
        return value.strip()

    @field_validator("brand_accent_colour")
    @classmethod
    def _readable_accent(cls, value: str) -> str:
        colour = expand_hex(value.strip())
        if text_on(colour) is None:
            raise ValueError(
                f"{colour}: neither white nor near-black text on it reaches contrast "
                f"{WCAG_AA_TEXT}:1 (WCAG AA); choose a darker or a lighter colour"
            )
        return colour

    @field_validator("brand_logo_url")
    @classmethod
    def _logo(cls, value: str | None) -> str | None:
        return _checked(value, "the logo URL", ("https",))

    @field_validator("brand_support_url")
    @classmethod
    def _support(cls, value: str | None) -> str | None:
        return _checked(value, "the support URL", ("https", "http", "mailto"))

    @field_validator("brand_privacy_url")
    @classmethod
    def _privacy(cls, value: str | None) -> str | None:
        return _checked(value, "the privacy URL", ("https", "http"))

    @property
    def brand(self) -> Brand:
        return Brand(
            self.brand_name,
            self.brand_logo_url,
            self.brand_accent_colour,
            text_on(self.brand_accent_colour) or WHITE,
            self.brand_support_url,
            self.brand_privacy_url,
        )


def _checked(value: str | None, what: str, schemes: tuple[str, ...]) -> str | None:
    if value is None or not value.strip():
        return None
    problem = _link_problem(value.strip(), schemes=schemes)
    if problem:
        raise ValueError(f"{what} {problem}")
    return value.strip()
