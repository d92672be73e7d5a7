"""What a handler may touch, checked where the types cannot see: a batched subscription refuses a
handler with an upstream or the mailer bound to it, and the ports are what the real adapters meet."""

from __future__ import annotations

import pytest

from shared.bus.handler_context import DatabaseContext, HandlerContext
from shared.bus.topology import DATABASE_ONLY_BATCH, Subscription, bind
from shared.mail import Email, MailSettings, SmtpMailer
from shared.ports import Mailer, SolusVM, Whmcs
from shared.settings import UpstreamSettings
from shared.upstream.solusvm import SolusVMClient
from shared.upstream.whmcs import WhmcsClient
from tests.support.toy import ProbeHappened


class CountingMailer:
    def __init__(self) -> None:
        self.sent: list[Email] = []

    def send(self, email: Email, *, idempotency_key: str | None = None) -> str:
        self.sent.append(email)
        return f"<{len(self.sent)}@test>"


def mail_on_probe(event: ProbeHappened, ctx: HandlerContext, *, mailer: Mailer) -> None:
    mailer.send(Email(to="someone@example.com", subject="probe", text="probe"))


def count_probe(event: ProbeHappened, ctx: DatabaseContext, *, step: int) -> None:
    pass


def test_a_batched_subscription_refuses_a_handler_with_the_mailer_bound() -> None:
    handler = bind(mail_on_probe, mailer=CountingMailer())
    with pytest.raises(ValueError, match="toy.mail is batched, so it may touch only its own database"):
        Subscription("toy", "mail", (ProbeHappened,), handler, batch=DATABASE_ONLY_BATCH)  # type: ignore[arg-type]


def test_the_same_handler_may_be_subscribed_one_event_at_a_time() -> None:
    subscription = Subscription("toy", "mail", (ProbeHappened,), bind(mail_on_probe, mailer=CountingMailer()))
    assert subscription.batch == 1


def test_a_batched_handler_may_have_settings_bound() -> None:
    subscription = Subscription("toy", "count", (ProbeHappened,), bind(count_probe, step=2), batch=8)
    assert subscription.batch == 8


def test_bind_gives_the_handler_its_arguments() -> None:
    mailer = CountingMailer()
    bind(mail_on_probe, mailer=mailer)(ProbeHappened(key="p"), None)  # type: ignore[arg-type]
    assert [email.subject for email in mailer.sent] == ["probe"]


def test_the_real_adapters_are_what_their_ports_describe() -> None:
    upstream = UpstreamSettings()
    whmcs, solusvm = WhmcsClient.from_settings(upstream), SolusVMClient.from_settings(upstream)
    try:
        assert isinstance(whmcs, Whmcs) and isinstance(solusvm, SolusVM)
        assert isinstance(SmtpMailer(MailSettings()), Mailer)
    finally:
        whmcs.close()
        solusvm.close()


def test_a_database_context_has_no_other_transaction() -> None:
    assert not hasattr(DatabaseContext, "separate_transaction")
    assert not hasattr(DatabaseContext, "record_now")
    assert all(hasattr(HandlerContext, name) for name in ("record_now", "checkpoint", "read_first"))
