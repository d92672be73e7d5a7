"""The enrollment services (signup + provisioner) inside a test, on the bus and database it chose.

    with Upstreams() as upstreams, Enrollment(upstreams, bus, db).start() as enrollment:
        enrollment.client.post("/signup", ...)        # the web app in-process (TestClient)
        enrollment.serve()                              # ... or on a real port, for a browser

Only signup and provisioner are built (through the real ``service_builder``), so these tests do not
depend on the billing services. The web's commits wake the relay, as the composition root wires it.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from pydantic_settings import BaseSettings
from sqlalchemy import func, select

from postpay.bootstrap import service_builder
from services.provisioner.settings import ProvisionerSettings
from services.signup import schema, store
from services.signup.settings import SignupSettings
from shared.bus.memory import InMemoryBus
from shared.clock import Clock, ManualClock, utcnow
from shared.db import Database
from shared.runtime import Runtime
from shared.service import ServiceDefinition
from shared.upstream.http import Timeouts
from simulators.common import ServerThread
from simulators.smtp import free_port, text_of
from tests.support.bus_helpers import wait_until
from tests.support.system import Upstreams

TEST_SECRET_KEY = "test-signup-secret-key-0123456789abcdef"
TEST_PASSWORD_KEY = "dGVzdC1wYXNzd29yZC1rZXktMDEyMzQ1Njc4OWFiY2Q="
TEST_PANEL_SECRET = "test-panel-secret-0123456789"
STRONG_PASSWORD = "Tr0ub4dor&3-horse-staple"
TEST_CLIENT_IP = "192.0.2.10"  # every in-process browser's address (TEST-NET-1): a real IP, as a socket's is
LINK = re.compile(r"https?://\S+/verify/[A-Za-z0-9_\-.]+")


@pytest.fixture(scope="module")
def upstreams() -> Iterator[Upstreams]:
    """The simulators and SMTP capture, shared by a module's tests (each test uses its own emails)."""
    with Upstreams() as running:
        running.solusvm_state.limit_groups[7] = "Post-pay"
        yield running


@pytest.fixture
def clean_upstreams(upstreams: Upstreams) -> Iterator[Upstreams]:
    """The module's upstreams, with whatever faults a test injected removed after it."""
    yield upstreams
    upstreams.whmcs.faults.clear()
    upstreams.solusvm_faults.clear()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime.now(UTC))


@pytest.fixture
def enrollment(
    clean_upstreams: Upstreams, memory_bus: InMemoryBus, database: Database, clock: ManualClock
) -> Iterator[Enrollment]:
    """signup and provisioner on the in-process bus, their clock in the test's hand."""
    with Enrollment(clean_upstreams, memory_bus, database, clock=clock).start() as running:
        yield running


def signup_settings(**overrides: Any) -> SignupSettings:
    values: dict[str, Any] = {
        "public_url": "http://testserver",
        "signup_port": 0,
        "secret_key": SecretStr(TEST_SECRET_KEY),
        "password_keys": [SecretStr(TEST_PASSWORD_KEY)],
        "panel_shared_secret": SecretStr(TEST_PANEL_SECRET),
        "postpay_terms_url": "https://example.com/postpay-terms",
        "postpay_terms_version": "2026-11",
        "terms_of_service_version": "2026-10",
        "token_prices": {"USD": "0.0010", "EUR": "0.0009"},
    }
    values.update(overrides)
    return SignupSettings(**values)


def signup_web(signup: ServiceDefinition, db: Database) -> Any:
    """The signup service's web app on ``db``, served in-process (no port)."""
    assert signup.web_app is not None, "the signup definition carries its web app"
    return signup.web_app(db)


class Enrollment:
    def __init__(
        self,
        upstreams: Upstreams,
        bus: Any,
        db: Database,
        *,
        settings: SignupSettings | None = None,
        provisioner: ProvisionerSettings | None = None,
        clock: Clock = utcnow,
        extra_settings: Sequence[BaseSettings] = (),
        timeouts: Timeouts | None = None,
        usage_collector: bool = False,
    ) -> None:
        self.upstreams = upstreams
        self.bus = bus
        self.db = db
        self.settings = settings or signup_settings()
        overrides = [self.settings, provisioner or ProvisionerSettings(), *extra_settings]
        self.deps = upstreams.dependencies(clock=clock, overrides=overrides, timeouts=timeouts)
        self.deps.db = db
        self.signup = service_builder("signup")(self.deps)
        self.provisioner = service_builder("provisioner")(self.deps)
        # The usage collector answers the account page's month-to-date figures, when a test wants them.
        extra = [service_builder("usage_collector")(self.deps)] if usage_collector else []
        self.runtime = Runtime(bus, db, [self.signup, self.provisioner, *extra], relay_poll_seconds=0.05, clock=clock)
        self.runtime.create_tables()
        self.app = signup_web(self.signup, db)
        self.client = self.browser()
        self._server: ServerThread | None = None

    def start(self) -> Enrollment:
        self.runtime.start(background=False)
        consumer = self.runtime.consumer
        if hasattr(consumer, "connected"):
            assert consumer.connected.wait(10), "consumer did not connect"
        return self

    def serve(self) -> str:
        """Serve the web app on the port of ``settings.public_url`` (a browser needs a real socket)."""
        port = int(self.settings.public_url.rsplit(":", 1)[1])
        self._server = ServerThread(self.app, port=port).start()
        return self._server.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
        self.client.close()
        self.runtime.stop()

    def __enter__(self) -> Enrollment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # Helpers ---------------------------------------------------------------------------------------

    def signup_row(self, email: str) -> schema.Signup | None:
        with self.db.transaction() as session:
            return store.signup_by_email_key(session, email.strip().casefold())

    def stage(self, email: str) -> str | None:
        signup = self.signup_row(email)
        return signup.stage.value if signup else None

    def count(self, table: Any) -> int:
        with self.db.transaction() as session:
            return int(session.execute(select(func.count()).select_from(table)).scalar_one())

    def whmcs_clients(self, email: str) -> list[Any]:
        return [c for c in self.upstreams.whmcs.state.clients.values() if c.email.lower() == email.lower()]

    def solusvm_users(self, email: str) -> list[Any]:
        return [u for u in self.upstreams.solusvm_state.users.values() if u.email.lower() == email.lower()]

    def verification_links(self, email: str, count: int = 1, timeout: float = 20.0) -> list[str]:
        messages = self.upstreams.smtp.wait_for(to=email, matching=is_verification, count=count, timeout=timeout)
        return [link_in(message) for message in messages]

    # The journey through the web app, one step at a time -------------------------------------------

    def register(
        self,
        email: str,
        *,
        name: str = "Ada Lovelace",
        company: str = "Analytical Engines",
        password: str = STRONG_PASSWORD,
        client: TestClient | None = None,
        currency: str = "USD",
        country: str = "GB",
    ) -> Any:
        client = client or self.client
        token = csrf_from(client.get("/signup").text)
        form = {
            "csrf_token": token,
            "name": name,
            "company": company,
            "email": email,
            "password": password,
            "currency": currency,
            "country": country,
        }
        return client.post("/signup", data=form)

    def open_link(self, link: str, client: TestClient | None = None, *, password: str | None = None) -> Any:
        """Open the emailed link and press "Confirm my email address", as a customer does. A link the
        page refuses (tampered, expired, used) answers with its problem page, and nothing is pressed.
        ``password``: typed into the page, as in a browser other than the one that registered."""
        client = client or self.client
        shown = self.fetch_link(link, client)
        if shown.status_code != 200:
            return shown
        return self.confirm(shown, client, password=password)

    def fetch_link(self, link: str, client: TestClient | None = None) -> Any:
        """Only open the link (GET), as a mail scanner does before the customer: it must change nothing."""
        return (client or self.client).get(path_of(link))

    def confirm(
        self,
        confirm_page: Any,
        client: TestClient | None = None,
        *,
        csrf_token: str | None = None,
        password: str | None = None,
    ) -> Any:
        """Submit the confirm page's form as a browser would: to its action, with its CSRF token unless
        another is given (and the password, when one is typed)."""
        action = confirm_form_action(confirm_page.text)
        token = csrf_from(confirm_page.text) if csrf_token is None else csrf_token
        form = {"csrf_token": token} if token else {}
        if password is not None:
            form["password"] = password
        return (client or self.client).post(action, data=form)

    def browser(self) -> TestClient:
        """Another browser: none of the cookies of ``client`` or of any other."""
        return TestClient(
            self.app, base_url=self.settings.public_url, follow_redirects=False, client=(TEST_CLIENT_IP, 50000)
        )

    def resend(self, email: str, client: TestClient | None = None) -> Any:
        """Ask for a new link with the "No email?" form of the check-your-email page."""
        client = client or self.client
        token = csrf_from(client.get("/signup/check-email").text)
        return client.post("/signup/resend", data={"csrf_token": token, "email": email})

    def owner_password_sha256(self, email: str) -> str:
        """The SHA-256 of the password the WHMCS client's owner logs in with (the simulator keeps it)."""
        (client,) = self.whmcs_clients(email)
        return str(self.upstreams.whmcs.state.users[client.owner_user_id].password_sha256)

    def wait_for_terms(self, client: TestClient | None = None, timeout: float = 20.0) -> Any:
        client = client or self.client
        return wait_until(
            lambda: _if(client.get("/signup/terms"), lambda r: 'type="checkbox"' in r.text),
            timeout=timeout,
            what="terms page",
        )

    def accept_terms(
        self, client: TestClient | None = None, kinds: Sequence[str] = ("terms_of_service", "postpay_terms")
    ) -> Any:
        client = client or self.client
        page = self.wait_for_terms(client)
        form = {"csrf_token": csrf_from(page.text), **{f"accept_{kind}": "yes" for kind in kinds}}
        return client.post("/signup/terms", data=form)

    def wait_enrolled(self, client: TestClient | None = None, timeout: float = 30.0) -> Any:
        client = client or self.client
        return wait_until(
            lambda: _if(client.get("/signup/status"), lambda r: "<h1>Enrolled</h1>" in r.text),
            timeout=timeout,
            what="enrolled page",
        )

    def enroll(self, email: str, client: TestClient | None = None) -> Any:
        """The whole journey through the web; returns the "Enrolled" page."""
        response = self.register(email, client=client)
        assert response.status_code == 303, response.text
        (link,) = self.verification_links(email)
        assert self.open_link(link, client).status_code == 303
        assert self.accept_terms(client).status_code == 303
        return self.wait_enrolled(client)

    def log_in_to_solusvm(self, enrolled_page: Any, client: TestClient | None = None) -> Any:
        """Press "Log in to SolusVM 2": the redirect to the one-time link, then its redeeming."""
        client = client or self.client
        minted = client.post("/sso", data={"csrf_token": csrf_from(enrolled_page.text)})
        assert minted.status_code == 303, minted.text
        return client.get(minted.headers["location"])


def _if(value: Any, condition: Any) -> Any:
    return value if condition(value) else None


def is_verification(message: EmailMessage) -> bool:
    return "Confirm your email" in str(message["Subject"])


def is_welcome(message: EmailMessage) -> bool:
    return "Welcome" in str(message["Subject"])


def link_in(message: EmailMessage) -> str:
    found = LINK.search(text_of(message))
    assert found, "no verification link in the email"
    return found.group(0)


def path_of(url: str) -> str:
    return "/" + url.split("://", 1)[1].split("/", 1)[1]


CONFIRM_FORM = re.compile(r'<form method="post" action="(/verify/[^"]+)"')


def confirm_form_action(html: str) -> str:
    """The confirm page's form target: a plain POST form, which works without JavaScript."""
    found = CONFIRM_FORM.search(html)
    assert found, "no confirm form on the page"
    return found.group(1)


def csrf_from(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF token on the page"
    return found.group(1)


def unique_email(prefix: str = "customer") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}@example.com"


def local_public_url() -> str:
    """An origin on a free loopback port, for settings of an app that will really be served."""
    return f"http://127.0.0.1:{free_port()}"


class RecordingBus:
    """A bus that keeps a copy of every message its publishers send (the outbox relay's): the body,
    and the headers rendered as JSON."""

    def __init__(self, bus: Any) -> None:
        self._bus = bus
        self.bodies: list[bytes] = []

    def publisher(self, producer: str | None = None) -> Any:
        inner = self._bus.publisher(producer)
        bodies = self.bodies

        class Recording:
            def publish(self, messages: Any) -> Any:
                for message in messages:
                    bodies.append(message.body + b"\n" + json.dumps(message.headers, default=str).encode())
                return inner.publish(messages)

            def close(self) -> None:
                inner.close()

        return Recording()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._bus, name)


def panel_headers(
    client_id: int,
    purpose: str,
    *,
    secret: str = TEST_PANEL_SECRET,
    at: float | None = None,
    clock: Clock | None = None,
) -> dict[str, str]:
    """The headers the WHMCS hook signs one request with (at ``at``, or the clock's now), a new nonce each."""
    from services.signup.panel_auth import panel_signature

    timestamp = int(at if at is not None else (clock() if clock is not None else datetime.now(UTC)).timestamp())
    nonce = uuid.uuid4().hex
    return {
        "X-Postpay-Timestamp": str(timestamp),
        "X-Postpay-Nonce": nonce,
        "X-Postpay-Signature": panel_signature(secret, timestamp, nonce, client_id, purpose),
    }  # type: ignore[arg-type]
