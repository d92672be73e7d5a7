"""Email over SMTP: verification links, welcome, suspension and reactivation notices.

A send that fails raises ``MailUnavailable`` (transient), so the bus retries the handler.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings

from shared.logging import get_logger
from shared.settings import SETTINGS_CONFIG

log = get_logger("postpay.mail")


class MailSettings(BaseSettings):
    model_config = SETTINGS_CONFIG

    smtp_host: str = Field(default="127.0.0.1", description="SMTP server host.")
    smtp_port: int = Field(default=8025, ge=1, le=65535, description="SMTP server port.")
    smtp_username: str | None = Field(default=None, description="SMTP user, if the server wants one.")
    smtp_password: SecretStr | None = Field(default=None, description="SMTP password.")
    smtp_starttls: bool = Field(default=False, description="Upgrade the connection with STARTTLS.")
    smtp_ssl: bool = Field(default=False, description="Connect with implicit TLS (port 465 style).")
    smtp_timeout: float = Field(default=10.0, gt=0, description="Seconds before an SMTP call gives up.")
    mail_from: str = Field(default="postpay <billing@example.com>", description="From address of every email.")


@dataclass(frozen=True)
class Email:
    to: str
    subject: str
    text: str
    html: str | None = None


class MailUnavailable(Exception):
    """The SMTP server could not take the message; try again later."""


class SmtpMailer:
    def __init__(self, settings: MailSettings) -> None:
        self.settings = settings

    def send(self, email: Email, *, idempotency_key: str | None = None) -> str:
        """Send one email; return its Message-ID (stable for a given idempotency key)."""
        message = EmailMessage()
        message["From"] = self.settings.mail_from
        message["To"] = email.to
        message["Subject"] = email.subject
        message["Date"] = formatdate(localtime=False, usegmt=True)
        domain = self.settings.mail_from.rsplit("@", 1)[-1].strip("> ") or "postpay.local"
        message_id = f"<{idempotency_key}@{domain}>" if idempotency_key else make_msgid(domain=domain)
        message["Message-ID"] = message_id
        message.set_content(email.text)
        if email.html:
            message.add_alternative(email.html, subtype="html")
        try:
            self._deliver(message)
        except (OSError, smtplib.SMTPException) as exc:
            log.warning("email not sent", error=type(exc).__name__, subject=email.subject)
            raise MailUnavailable(f"SMTP delivery failed: {type(exc).__name__}") from exc
        log.info("email sent", subject=email.subject, message_id=message_id)
        return message_id

    def _deliver(self, message: EmailMessage) -> None:
        settings = self.settings
        smtp_class = smtplib.SMTP_SSL if settings.smtp_ssl else smtplib.SMTP
        with smtp_class(settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout) as smtp:
            if settings.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if settings.smtp_username and settings.smtp_password:
                smtp.login(settings.smtp_username, settings.smtp_password.get_secret_value())
            smtp.send_message(message)
