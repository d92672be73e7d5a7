"""Everything the demo runs, in this one process: both simulators, an SMTP capture server, every
postpay service on the configured bus (in-process unless ``POSTPAY_AMQP_URL`` is set) and a fresh
SQLite file, and the signup web app served on a free loopback port by the service's own server task.

One clock drives it all. It starts two days before last month, so the customers sign up before the
month they will be billed for, and jumps to the real time once their VMs' month is told.
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import kombu
from cryptography.fernet import Fernet
from pydantic import SecretStr

from postpay.bootstrap import System, make_dependencies
from postpay.demo.scenario import TOKEN_PRICES
from services.invoicer.public import InvoicerSettings
from services.meter.public import MeterSettings
from services.scheduler.public import SchedulerSettings
from services.signup.public import SignupSettings
from services.usage_collector.public import UsageCollectorSettings
from shared.bus.rabbit import RabbitBus
from shared.mail import MailSettings
from shared.runtime import Runtime
from shared.settings import KernelSettings, UpstreamSettings
from simulators.common import ServerThread, SimClock
from simulators.smtp import SmtpCapture, free_port
from simulators.solusvm.app import create_app as create_solusvm_app
from simulators.whmcs.app import create_app as create_whmcs_app

BILLING_TIMEZONE = "UTC"
# Hourly in the demo (a month is ~750 sweeps, a few seconds); production sweeps every minute.
DEMO_METER_INTERVAL_SECONDS = 3600


def demo_meter_settings() -> MeterSettings:
    return MeterSettings(meter_interval_seconds=DEMO_METER_INTERVAL_SECONDS)


class DemoClock(SimClock):
    """Wall time moved by an offset: ``start_at`` a moment in the past, ``catch_up`` to the present."""

    def start_at(self, moment: datetime) -> None:
        self.advance(-(datetime.now(moment.tzinfo) - moment).total_seconds())

    def move_to(self, moment: datetime) -> None:
        """Jump to ``moment`` from wherever the clock is now (the meter's sweeps, an interval at a time)."""
        self.advance((moment - self.now()).total_seconds())

    def catch_up(self) -> None:
        self.follow_wall_time()


class Stack:
    def __init__(self, data_dir: Path, *, customers: int, clock: DemoClock) -> None:
        self.data_dir = data_dir
        self.clock = clock
        self.smtp = SmtpCapture()
        self.solusvm_token = secrets.token_urlsafe(24)
        self.whmcs_identifier, self.whmcs_secret = secrets.token_hex(12), secrets.token_urlsafe(24)
        self.solusvm = ServerThread(create_solusvm_app(api_token=self.solusvm_token, clock=clock))
        self.whmcs = ServerThread(
            create_whmcs_app(identifier=self.whmcs_identifier, secret=self.whmcs_secret, clock=clock)
        )
        self.panel_secret = secrets.token_urlsafe(32)
        self.signup_url = f"http://127.0.0.1:{free_port()}"
        self.kernel = self._kernel_settings()
        self.owns_namespace = self.kernel.amqp_url is not None and not self.kernel.bus_namespace
        if self.owns_namespace:
            # Never the production namespace: the demo's consumers would take real work.
            self.kernel = self.kernel.model_copy(update={"bus_namespace": f"postpay-demo-{uuid.uuid4().hex[:8]}"})
        self.customers = customers
        self.system: System | None = None
        self.runtime: Runtime | None = None
        self._web: list[threading.Thread] = []
        self._undo: list[Callable[[], None]] = []  # how to stop what has started, in start order

    def _kernel_settings(self) -> KernelSettings:
        """The bus comes from the environment (POSTPAY_AMQP_URL, POSTPAY_BUS_NAMESPACE); the database is
        the demo's own file, never one configured for production."""
        kernel = KernelSettings()
        database = SecretStr(f"sqlite:///{self.data_dir / 'postpay.sqlite'}")
        update: dict[str, object] = {"database_url": database, "relay_poll_seconds": 0.05}
        if kernel.amqp_url is not None and "broker_users" not in kernel.model_fields_set:
            # Every service in one process, over one login: that user speaks for every producer.
            update["broker_users"] = kombu.Connection(kernel.amqp_url.get_secret_value()).userid or "guest"
        return kernel.model_copy(update=update)

    @property
    def database_url(self) -> str:
        return self.kernel.database_url.get_secret_value()

    @property
    def bus_name(self) -> str:
        if self.kernel.amqp_url is None:
            return "in-process bus"
        return f"RabbitMQ, namespace {self.kernel.bus_namespace}"

    def signup_settings(self) -> SignupSettings:
        return SignupSettings(
            public_url=self.signup_url,
            signup_host="127.0.0.1",
            signup_port=int(self.signup_url.rsplit(":", 1)[1]),
            forwarded_allow_ips="127.0.0.1",
            brand_name="postpay demo",
            token_prices=TOKEN_PRICES,
            terms_of_service_url="https://example.com/terms-of-service",
            terms_of_service_version="demo-1",
            postpay_terms_url="https://example.com/post-pay-terms",
            postpay_terms_version="demo-1",
            whmcs_client_area_url=f"{self.whmcs.url}/clientarea.php",
            secret_key=SecretStr(secrets.token_urlsafe(32)),
            password_keys=[SecretStr(Fernet.generate_key().decode())],
            panel_shared_secret=SecretStr(self.panel_secret),
            # Every demo customer registers from 127.0.0.1 within the same minute.
            registrations_per_ip=max(10, 2 * self.customers),
        )

    def start(self) -> Stack:
        for part in (self.smtp, self.solusvm, self.whmcs):
            part.start()
            self._undo.append(part.stop)
        upstream = UpstreamSettings(
            solusvm_url=self.solusvm.url,
            solusvm_api_token=SecretStr(self.solusvm_token),
            whmcs_url=self.whmcs.url,
            whmcs_identifier=SecretStr(self.whmcs_identifier),
            whmcs_secret=SecretStr(self.whmcs_secret),
            whmcs_accesskey=None,
            upstream_max_attempts=4,
            upstream_deadline=10.0,
        )
        mail = MailSettings(
            smtp_host=self.smtp.host,
            smtp_port=self.smtp.port,
            smtp_username=None,
            smtp_password=None,
            smtp_starttls=False,
            smtp_ssl=False,
            mail_from="postpay demo <billing@example.com>",
        )
        overrides = [
            self.signup_settings(),
            InvoicerSettings(token_prices=TOKEN_PRICES, currency_minor_units={}, invoice_zero_usage=False),
            SchedulerSettings(billing_timezone=BILLING_TIMEZONE),
            # The demo bills from the usage endpoint (checked to the cent); the meter is shown beside it.
            UsageCollectorSettings(usage_source="endpoint"),
            demo_meter_settings(),
        ]
        deps = make_dependencies(upstream, mail, clock=self.clock.now, overrides=overrides)
        system = self.system = System(kernel=self.kernel, deps=deps)
        self._undo.append(self._release_system)
        system.create_tables()
        runtime = self.runtime = system.runtime()
        signup = self.system.service("signup")  # the runtime wakes its relay on the web's commits
        # Consumers and relays only: the scheduler's daily loop stays off, the demo closes the month itself.
        runtime.start(background=False)
        self._undo.append(self._stop_services)
        connected = getattr(runtime.consumer, "connected", None)
        if connected is not None and not connected.wait(30):
            raise RuntimeError("the consumers did not connect to RabbitMQ within 30 s")
        for index, serve in enumerate(signup.background):
            thread = threading.Thread(target=serve, args=(runtime.stop_event,), name=f"signup-web-{index}", daemon=True)
            thread.start()
            self._web.append(thread)
        self._wait_for_web()
        return self

    def _wait_for_web(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{self.signup_url}/", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or not any(thread.is_alive() for thread in self._web):
                raise RuntimeError(f"the signup web app did not start on {self.signup_url}")
            time.sleep(0.05)

    def stop(self) -> None:
        while self._undo:
            self._undo.pop()()

    def _stop_services(self) -> None:
        assert self.runtime is not None
        self.runtime.stop(timeout=15)
        for thread in self._web:
            thread.join(10)

    def _release_system(self) -> None:
        assert self.system is not None
        if self.owns_namespace and isinstance(self.system.bus, RabbitBus):
            self.system.bus.delete_topology([s for service in self.system.services for s in service.subscriptions])
        for client in (self.system.deps.whmcs, self.system.deps.solusvm):
            client.close()
        self.system.db.dispose()

    def __enter__(self) -> Stack:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()


def journey_time(period_start: datetime) -> datetime:
    """When the demo's customers sign up: the morning two days before the billed month begins."""
    return period_start - timedelta(days=2) + timedelta(hours=9)
