"""Settings of the operator console (``postpay run console``)."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings

from shared.forwarded import check_trusted_proxies
from shared.settings import SETTINGS_CONFIG


class ConsoleSettings(BaseSettings):
    """Where the console listens, and how long its sessions and login limits last."""

    model_config = SETTINGS_CONFIG

    console_host: str = Field(default="127.0.0.1", description="Interface the operator console listens on.")
    console_port: int = Field(
        default=8490,
        ge=0,
        le=65535,
        description="Port of the operator console (0: `postpay run all` does not serve it).",
    )
    console_public_url: str = Field(
        default="http://127.0.0.1:8490",
        description="Origin operators reach the console at; an https origin marks its cookies Secure.",
    )
    console_session_hours: float = Field(
        default=8.0, gt=0, le=24 * 30, description="Lifetime of an operator's console session, hours."
    )
    console_login_attempts: int = Field(
        default=5,
        ge=1,
        description="Failed logins per username or IP address before logins are refused for the window.",
    )
    console_login_window_seconds: int = Field(default=900, ge=1, description="Window of the login limit, seconds.")
    console_forwarded_allow_ips: str = Field(
        default="127.0.0.1",
        description="Reverse proxies whose X-Forwarded-For is believed for the operator's IP address (login "
        "limits, the audit log), comma-separated IP addresses or networks; the operator is the right-most "
        "address that is not one of them. Never '*': anyone could then claim any address. Empty: no header "
        "is believed.",
    )

    @field_validator("console_forwarded_allow_ips")
    @classmethod
    def _explicit_proxies_only(cls, value: str) -> str:
        return check_trusted_proxies(value)

    @property
    def secure_cookies(self) -> bool:
        return self.console_public_url.startswith("https://")
