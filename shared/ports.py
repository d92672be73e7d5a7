"""The ports: what postpay asks of the world outside its own database, one Protocol each.

A handler's signature names the ports it is given (``whmcs: Whmcs``, ``mailer: Mailer``), so it says
which calls it may make; nothing else reaches an upstream. The real adapters (``WhmcsClient``,
``SolusVMClient``, ``SmtpMailer``, the bus publishers) and the tests' in-memory fakes satisfy these
structurally: neither inherits from them. Each Protocol lists only what postpay calls, so a fake needs
no more than that.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pydantic import SecretStr

from shared.bus.messages import OutgoingMessage, PublishResult
from shared.clock import Clock
from shared.mail import Email
from shared.upstream.solusvm_models import PeriodUsage, SolusUser
from shared.upstream.whmcs_models import InvoiceLine, WhmcsClientDetails, WhmcsInvoice, WhmcsInvoiceSummary

__all__ = ["Clock", "Mailer", "Publisher", "SolusVM", "Whmcs"]


@runtime_checkable
class Whmcs(Protocol):
    """WHMCS's API, as the services and the operator commands use it (``shared.upstream.whmcs``)."""

    def get_client(self, client_id: int) -> WhmcsClientDetails | None: ...

    def get_client_by_email(self, email: str) -> WhmcsClientDetails | None: ...

    def find_or_add_client(
        self,
        *,
        firstname: str,
        lastname: str,
        email: str,
        password: SecretStr,
        companyname: str = "",
        country: str = "US",
        currency_id: int | None = None,
        clientip: str | None = None,
        noemail: bool = True,
        skipvalidation: bool = True,
        customfields: Mapping[int, str] | None = None,
    ) -> WhmcsClientDetails:
        """The client with this email, created if there is none; safe to call again after any failure."""
        ...

    def create_invoice(
        self,
        client_id: int,
        lines: Sequence[InvoiceLine],
        *,
        date: date,
        due_date: date,
        notes: str,
        send_invoice: bool,
        payment_method: str | None,
        draft: bool = False,
        tax_rate: Decimal | None = None,
        tax_rate2: Decimal | None = None,
    ) -> int:
        """CreateInvoice, sent once; a lost outcome is found again by the marker in ``notes``."""
        ...

    def get_invoices(self, client_id: int, status: str | None = None) -> list[WhmcsInvoiceSummary]: ...

    def find_invoice_by_marker(self, client_id: int, marker: str) -> WhmcsInvoiceSummary | None: ...

    def get_invoice(self, invoice_id: int, *, include_currency: bool = False) -> WhmcsInvoice: ...


@runtime_checkable
class SolusVM(Protocol):
    """SolusVM 2's API, as the services and the operator commands use it (``shared.upstream.solusvm``)."""

    def find_user_by_email(self, email: str) -> SolusUser | None: ...

    def get_user(self, user_id: int) -> SolusUser: ...

    def find_or_create_user(
        self,
        email: str,
        password: SecretStr | str,
        *,
        billing_user_id: int | str | None,
        limit_group_id: int | None = None,
        roles: list[int] | None = None,
        status: str = "active",
    ) -> SolusUser:
        """The user with ``email``, created only if a lookup proves there is none."""
        ...

    def patch_user(self, user_id: int, **fields: Any) -> SolusUser: ...

    def set_status(self, user_id: int, status: str) -> SolusUser: ...

    def create_one_time_token(self, user_id: int) -> str: ...

    def sso_login_url(self, token: str) -> str: ...

    def period_usage(self, user_id: int, start: datetime, end: datetime) -> PeriodUsage: ...

    # The meter's inventory reads: raw pages, parsed by shared.upstream.solusvm_inventory.
    def server_page(self, page: int, *, per_page: int = 100) -> tuple[list[Any], int | None]: ...

    def activity_log_pages(
        self, *, event: str | None = None, per_page: int = 100, max_pages: int | None = None
    ) -> Iterator[list[Any]]: ...

    def plan_pages(self) -> Iterator[list[Any]]: ...


@runtime_checkable
class Mailer(Protocol):
    """Email out (``shared.mail.SmtpMailer``): raises ``MailUnavailable`` when it could not send."""

    def send(self, email: Email, *, idempotency_key: str | None = None) -> str:
        """Send one email; return its Message-ID (stable for a given idempotency key)."""
        ...


class Publisher(Protocol):
    """The bus, as the outbox relay publishes to it (``RabbitPublisher``, ``InMemoryPublisher``)."""

    def publish(self, messages: Sequence[OutgoingMessage]) -> PublishResult:
        """Publish and wait for the broker's confirms; say which were confirmed and which unroutable."""
        ...

    def close(self) -> None: ...


if TYPE_CHECKING:  # mypy checks here that the real adapters satisfy their ports
    from shared.bus.memory import InMemoryPublisher
    from shared.bus.rabbit_publish import RabbitPublisher
    from shared.mail import SmtpMailer
    from shared.upstream.solusvm import SolusVMClient
    from shared.upstream.whmcs import WhmcsClient

    _whmcs: type[Whmcs] = WhmcsClient
    _solusvm: type[SolusVM] = SolusVMClient
    _mailer: type[Mailer] = SmtpMailer
    _publishers: tuple[type[Publisher], ...] = (RabbitPublisher, InMemoryPublisher)
