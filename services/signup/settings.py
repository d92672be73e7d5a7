"""Settings of the signup service (``POSTPAY_*`` variables; see ``shared.settings``)."""

from __future__ import annotations

import json
import re
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from services.signup.countries import country_name
from shared.branding import BrandSettings
from shared.customer_terms import (
    billing_timezone_field,
    check_invoice_url,
    check_zone,
    grace_days_field,
    invoice_due_days_field,
    invoice_url_field,
)
from shared.forwarded import Network, check_trusted_proxies, trusted_networks
from shared.mail import MailSettings
from shared.prices import TokenPrices, token_prices_field
from shared.secrets import fernet_key_problem, placeholder_problem, secret_problem
from shared.settings import SETTINGS_CONFIG, UpstreamSettings

# Demo values so an unconfigured install starts; every production install must set its own.
DEMO_SECRET_KEY = "demo-signup-secret-key-change-me"
DEMO_PASSWORD_KEY = "ZGVtby1wYXNzd29yZC1rZXktY2hhbmdlLW1lLW5vdyE="
DEMO_PANEL_SECRET = "demo-panel-secret-change-me"
# The WHMCS ids of a fresh install's first currencies (and of the simulator's).
DEFAULT_CURRENCY_IDS = {"USD": 1, "EUR": 2}


def parse_currency_ids(value: object) -> object:
    """``{"USD": 1}`` from JSON or a mapping: three-letter codes, upper-cased, to positive WHMCS ids."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise ValueError(f'currency ids must be a JSON object such as {{"USD": 1, "EUR": 2}}: {exc}') from None
    if not isinstance(value, dict):
        raise ValueError('currency ids must be a JSON object of currency code to WHMCS id, e.g. {"USD": 1}')
    ids: dict[str, int] = {}
    for code, currency_id in value.items():
        upper = str(code).strip().upper()
        if not re.fullmatch(r"[A-Z]{3}", upper):
            raise ValueError(f"{code!r} is not a three-letter currency code")
        if isinstance(currency_id, bool) or not isinstance(currency_id, int) or currency_id <= 0:
            raise ValueError(f"the WHMCS id of {upper} must be a whole number > 0, not {currency_id!r}")
        ids[upper] = currency_id
    return ids


def split_keys(value: object) -> object:
    if isinstance(value, str):
        return [SecretStr(part.strip()) for part in value.split(",") if part.strip()]
    return value


class SignupSettings(BrandSettings):
    model_config = SETTINGS_CONFIG

    public_url: str = Field(
        default="http://127.0.0.1:8480",
        description="Origin customers reach the signup pages at; links in emails start with it. "
        "An https origin also marks the cookies Secure.",
    )
    signup_host: str = Field(default="127.0.0.1", description="Interface the signup web server listens on.")
    signup_port: int = Field(
        default=8480, ge=0, le=65535, description="Port of the signup web server (0: the service does not serve it)."
    )
    forwarded_allow_ips: str = Field(
        default="127.0.0.1",
        description="Reverse proxies whose X-Forwarded-For is believed, comma-separated IP addresses or networks "
        "(e.g. the ingress controller's pod network); the client is the right-most address that is not one of "
        "them. Never '*': anyone could then claim any address. Empty: no header is believed.",
    )
    token_prices: TokenPrices = token_prices_field()
    whmcs_currency_ids: Annotated[dict[str, int], NoDecode] = Field(
        default_factory=lambda: dict(DEFAULT_CURRENCY_IDS),
        description="The WHMCS id (Setup > Payments > Currencies) of each currency a customer may choose at signup, "
        'as JSON: {"USD": 1, "EUR": 2}. The form offers the currencies that have both a token price and an id; '
        "a new WHMCS client is created in the one chosen.",
    )
    invoice_due_days: int = invoice_due_days_field()
    accounts_grace_days: int = grace_days_field()
    accounts_invoice_url: str = invoice_url_field()
    billing_timezone: str = billing_timezone_field()
    plans_cache_seconds: int = Field(
        default=300,
        ge=0,
        le=86_400,
        description="How long the landing page keeps SolusVM 2's plan list before asking again, seconds "
        "(0: every view asks).",
    )
    plans_timeout_seconds: float = Field(
        default=2.0,
        gt=0,
        le=10,
        description="How long a landing page view waits for SolusVM 2's plan list; after that it shows the last "
        "list it has (or the token prices alone).",
    )
    panel_usage_max_age_seconds: int = Field(
        default=300,
        ge=10,
        le=86_400,
        description="Month-to-date usage older than this is asked for again when a customer views the client-area "
        "panel or the account page (the view shows what it has meanwhile, with its time).",
    )
    panel_usage_wait_seconds: float = Field(
        default=1.5,
        ge=0,
        le=3,
        description="How long one view waits for fresh month-to-date usage before it shows the older figure "
        "(the WHMCS hook gives up after 5 s).",
    )
    terms_of_service_url: str = Field(
        default="https://example.com/terms-of-service", description="Where the Terms of Service are published."
    )
    terms_of_service_version: str = Field(
        default="1", min_length=1, max_length=100, description="Version of the Terms of Service being accepted."
    )
    postpay_terms_url: str | None = Field(
        default=None, description="Where the post-pay terms are published (unset: there are none to accept)."
    )
    postpay_terms_version: str = Field(
        default="1", min_length=1, max_length=100, description="Version of the post-pay terms being accepted."
    )
    whmcs_client_area_url: str = Field(
        default="http://127.0.0.1:8482/clientarea.php",
        description="WHMCS client area, where an enrolled customer logs in later.",
    )
    whmcs_default_country: str = Field(
        default="US",
        min_length=2,
        max_length=2,
        description="ISO 3166 country code given to a new WHMCS client whose registration (through the API) named none.",
    )
    secret_key: SecretStr = Field(
        default=SecretStr(DEMO_SECRET_KEY),
        description="Signs email links, SSO links, session cookies and CSRF tokens (32+ random characters).",
    )
    password_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=lambda: [SecretStr(DEMO_PASSWORD_KEY)],
        description="Fernet keys encrypting a password until its WHMCS client exists, comma-separated; "
        "the first encrypts, all decrypt (rotation).",
    )
    panel_shared_secret: SecretStr = Field(
        default=SecretStr(DEMO_PANEL_SECRET),
        description="Secret shared with the WHMCS hook; signs its server-to-server requests (HMAC-SHA256).",
    )
    panel_max_skew_seconds: int = Field(
        default=300, ge=5, le=3600, description="How old (or early) a WHMCS hook request's timestamp may be."
    )
    panel_sso_action_url: str = Field(
        default="solusvm2_sso.php",
        description="Where the panel's 'Log in to SolusVM 2' button points inside WHMCS (the shipped PHP action).",
    )
    panel_finish_action_url: str = Field(
        default="solusvm2_finish_signup.php",
        description="Where the panel's 'Finish signing up' button points inside WHMCS (the shipped PHP action), for "
        "a customer who confirmed the email but never accepted the terms.",
    )
    panel_invoice_url: str = Field(
        default="viewinvoice.php?id={invoice_id}",
        description="Where the panel's 'pay invoice' links of a suspended customer point inside WHMCS; {invoice_id} is replaced.",
    )
    verification_link_hours: float = Field(
        default=48.0, gt=0, le=24 * 30, description="Lifetime of an email verification link, hours."
    )
    sso_link_seconds: int = Field(
        default=60, ge=5, le=60, description="Lifetime of a 'Log in to SolusVM 2' link, seconds (at most 60)."
    )
    session_days: float = Field(default=7.0, gt=0, le=90, description="Lifetime of the signup session cookie, days.")
    signup_sso_minutes: float = Field(
        default=15.0,
        gt=0,
        le=120,
        description="How long after accepting the terms the browser that accepted them may log in to SolusVM 2 "
        "from the signup site; after that (and in every other browser) the way in is the WHMCS client area.",
    )
    password_confirmations_per_link: int = Field(
        default=10,
        ge=1,
        description="Tries per window at typing the registration's password to confirm a verification link "
        "in a browser other than the one that registered.",
    )
    max_request_bytes: int = Field(
        default=65_536,
        ge=4096,
        le=1_048_576,
        description="Largest request body the signup web reads, bytes; a larger one is answered 413 unread.",
    )
    rate_limit_window_seconds: int = Field(
        default=3600, ge=1, description="Window of the registration and resend rate limits, seconds."
    )
    registrations_per_ip: int = Field(default=10, ge=1, description="Registrations one IP address may make per window.")
    registrations_per_email: int = Field(default=3, ge=1, description="Registrations per email address per window.")
    resends_per_ip: int = Field(default=10, ge=1, description="Verification resends one IP address may ask per window.")
    resends_per_email: int = Field(default=3, ge=1, description="Verification resends per email address per window.")

    @field_validator("whmcs_currency_ids", mode="before")
    @classmethod
    def _currency_ids(cls, value: object) -> object:
        return parse_currency_ids(value)

    @field_validator("accounts_invoice_url")
    @classmethod
    def _invoice_placeholder(cls, value: str) -> str:
        return check_invoice_url(value)

    @field_validator("billing_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return check_zone(value)

    @field_validator("whmcs_default_country")
    @classmethod
    def _known_country(cls, value: str) -> str:
        if country_name(value) is None:
            raise ValueError(f"{value!r} is not an ISO 3166 country code")
        return value.upper()

    @property
    def signup_currencies(self) -> tuple[str, ...]:
        """What a customer may choose: a token price to bill with and a WHMCS id to create the client in."""
        return tuple(code for code in sorted(self.token_prices) if code in self.whmcs_currency_ids)

    def invoice_url(self, invoice_id: int) -> str:
        return self.accounts_invoice_url.replace("{invoice_id}", str(invoice_id))

    def currency_problem(self) -> str | None:
        """Why customers could not sign up with these settings (checked when the signup starts, so a
        process that only builds the signup to know the topology is not stopped by it)."""
        if self.signup_currencies:
            return None
        return (
            "no currency has both a token price (POSTPAY_TOKEN_PRICES) and a WHMCS id "
            "(POSTPAY_WHMCS_CURRENCY_IDS): customers would have none to choose"
        )

    @field_validator("password_keys", mode="before")
    @classmethod
    def _split_password_keys(cls, value: object) -> object:
        return split_keys(value)

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _explicit_proxies_only(cls, value: str) -> str:
        return check_trusted_proxies(value)

    @property
    def trusted_proxies(self) -> tuple[Network, ...]:
        return trusted_networks(self.forwarded_allow_ips)

    @field_validator("public_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @property
    def secure_cookies(self) -> bool:
        return self.public_url.startswith("https://")

    def serves_only_this_machine(self) -> bool:
        """Customers reach the pages on loopback only: a demo or a developer's machine."""
        host = urlsplit(self.public_url).hostname or ""
        return host in ("localhost", "testserver") or host.startswith("127.") or host == "::1"

    def weak_secrets(self, upstream: UpstreamSettings, mail: MailSettings) -> list[str]:
        """Every secret setting that protects nothing, as "VARIABLE problem" (the value is never shown).

        The secrets postpay signs with, and the upstream API secrets (random strings their systems
        generate), must be long and random; the rest (a WHMCS API identifier or access key, an SMTP
        password: formats other systems choose) must at least be set and not an example's placeholder.
        """
        demo = frozenset({DEMO_SECRET_KEY, DEMO_PASSWORD_KEY, DEMO_PANEL_SECRET})
        found: list[tuple[str, str | None]] = [
            ("POSTPAY_SECRET_KEY", secret_problem(self.secret_key.get_secret_value(), demo_values=demo)),
            (
                "POSTPAY_PANEL_SHARED_SECRET",
                secret_problem(self.panel_shared_secret.get_secret_value(), demo_values=demo),
            ),
            ("POSTPAY_WHMCS_SECRET", secret_problem(upstream.whmcs_secret.get_secret_value())),
            ("POSTPAY_SOLUSVM_API_TOKEN", secret_problem(upstream.solusvm_api_token.get_secret_value())),
            ("POSTPAY_WHMCS_IDENTIFIER", placeholder_problem(upstream.whmcs_identifier.get_secret_value())),
        ]
        if not self.password_keys:
            found.append(("POSTPAY_PASSWORD_KEYS", "is empty"))
        for number, key in enumerate(self.password_keys, start=1):
            problem = fernet_key_problem(key.get_secret_value(), demo_values=demo)
            found.append(
                (
                    f"POSTPAY_PASSWORD_KEYS (key {number})" if len(self.password_keys) > 1 else "POSTPAY_PASSWORD_KEYS",
                    problem,
                )
            )
        for variable, optional in (
            ("POSTPAY_WHMCS_ACCESSKEY", upstream.whmcs_accesskey),
            ("POSTPAY_SMTP_PASSWORD", mail.smtp_password),
        ):
            if optional is not None:
                found.append((variable, placeholder_problem(optional.get_secret_value())))
        return [f"{variable} {problem}" for variable, problem in found if problem]
