"""A whole postpay system inside a test: both simulators and an SMTP capture on loopback, real
clients pointed at them, and every service built by the real bootstrap on the bus and database the
test chose.

    with Upstreams() as upstreams:
        system = upstreams.system(bus, database)
        runtime = system.runtime()
        ...
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import SecretStr
from pydantic_settings import BaseSettings

from postpay.bootstrap import System
from shared.clock import Clock, utcnow
from shared.db import Database
from shared.dependencies import Dependencies
from shared.mail import MailSettings, SmtpMailer
from shared.settings import KernelSettings
from shared.upstream.http import Timeouts
from shared.upstream.retries import RetryPolicy
from shared.upstream.solusvm import SolusVMClient
from shared.upstream.whmcs import WhmcsClient
from simulators.common import ServerThread, SimClock
from simulators.smtp import SmtpCapture
from simulators.solusvm.app import create_app as create_solusvm_app
from simulators.whmcs.testing import RunningWhmcs

# Upstream calls in tests retry quickly: the behaviour is the same, the waiting is not.
FAST_RETRY = RetryPolicy(
    max_attempts=4, deadline_seconds=5.0, initial_backoff=0.01, max_backoff=0.1, max_retry_after=1.0
)
SOLUSVM_TOKEN = "test-solusvm-token"


class Upstreams:
    """SolusVM 2 and WHMCS simulators and an SMTP capture server, for one test."""

    def __init__(
        self, *, now: datetime | None = None, solusvm: dict[str, Any] | None = None, whmcs: dict[str, Any] | None = None
    ) -> None:
        self.solusvm_clock = SimClock(now)
        self.solusvm_app = create_solusvm_app(api_token=SOLUSVM_TOKEN, clock=self.solusvm_clock, **(solusvm or {}))
        self.solusvm_state = self.solusvm_app.state.sim
        self.solusvm_faults = self.solusvm_app.state.faults
        self.solusvm_server = ServerThread(self.solusvm_app)
        self.whmcs = RunningWhmcs(now=now, **(whmcs or {}))
        self.smtp = SmtpCapture()
        self._clients: list[Any] = []

    def start(self) -> Upstreams:
        self.solusvm_server.start()
        self.whmcs.start()
        self.smtp.start()
        return self

    def stop(self) -> None:
        for client in self._clients:
            client.close()
        self.smtp.stop()
        self.whmcs.stop()
        self.solusvm_server.stop()

    def __enter__(self) -> Upstreams:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def solusvm_url(self) -> str:
        return self.solusvm_server.url

    def solusvm_client(self, retry: RetryPolicy = FAST_RETRY, timeouts: Timeouts | None = None) -> SolusVMClient:
        client = SolusVMClient(
            self.solusvm_url, SecretStr(SOLUSVM_TOKEN), retry=retry, timeouts=timeouts or Timeouts(connect=2, read=5)
        )
        self._clients.append(client)
        return client

    def whmcs_client(self, retry: RetryPolicy = FAST_RETRY, timeouts: Timeouts | None = None) -> WhmcsClient:
        client = WhmcsClient(
            self.whmcs.url,
            SecretStr(self.whmcs.identifier),
            SecretStr(self.whmcs.secret),
            retry=retry,
            timeouts=timeouts or Timeouts(connect=2, read=5),
        )
        self._clients.append(client)
        return client

    def mail_settings(self) -> MailSettings:
        return MailSettings(
            smtp_host=self.smtp.host, smtp_port=self.smtp.port, mail_from="postpay <billing@example.com>"
        )

    def dependencies(
        self, *, clock: Clock = utcnow, overrides: Sequence[BaseSettings] = (), timeouts: Timeouts | None = None
    ) -> Dependencies:
        return Dependencies(
            whmcs=self.whmcs_client(timeouts=timeouts),
            solusvm=self.solusvm_client(timeouts=timeouts),
            mailer=SmtpMailer(self.mail_settings()),
            clock=clock,
            overrides={type(settings): settings for settings in overrides},
        )

    def system(
        self,
        bus: Any,
        db: Database,
        *,
        clock: Clock = utcnow,
        overrides: Sequence[BaseSettings] = (),
        kernel: KernelSettings | None = None,
        timeouts: Timeouts | None = None,
    ) -> System:
        system = System(
            kernel=kernel or KernelSettings(relay_poll_seconds=0.05),
            db=db,
            bus=bus,
            deps=self.dependencies(clock=clock, overrides=overrides, timeouts=timeouts),
        )
        system.create_tables()
        return system
