"""The client IP cannot be spoofed (issue 15, item 4), through the signup service's own web server.

Only proxies listed in ``POSTPAY_FORWARDED_ALLOW_IPS`` (addresses or networks, never ``*``) are
believed, and of their ``X-Forwarded-For`` the right-most address that is not a trusted proxy is the
client. What is stored (the registration IP, the consent ledger) is always a valid IP address.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import select

from services.signup import schema
from services.signup.settings import SignupSettings
from services.signup.web.server import serve
from shared.bus.rabbit import RabbitBus
from shared.clock import ManualClock
from shared.db import Database
from simulators.smtp import free_port
from tests.support.bus_helpers import wait_until
from tests.support.enrollment import (  # noqa: F401 - fixtures used by name
    Enrollment,
    clean_upstreams,
    clock,
    csrf_from,
    link_in,
    path_of,
    signup_settings,
    unique_email,
    upstreams,
)
from tests.support.system import Upstreams

pytestmark = [pytest.mark.rabbit, pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[2]
K8S_TRUSTED = yaml.safe_load((ROOT / "deploy" / "k8s" / "configmap.yaml").read_text())["data"][
    "POSTPAY_FORWARDED_ALLOW_IPS"
]


class Served:
    """The signup service's web server (``services.signup.web.server.serve``, as ``postpay run`` starts it)."""

    def __init__(self, enrollment: Enrollment) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._stop = threading.Event()
        run = serve(lambda: enrollment.app, host="127.0.0.1", port=self.port)
        self._thread = threading.Thread(target=run, args=(self._stop,), daemon=True)
        self._thread.start()
        wait_until(lambda: self._answers(), timeout=10, what="the signup web server")

    def _answers(self) -> bool:
        try:
            return httpx.get(self.url + "/", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def served_enrollment(
    upstreams: Upstreams, bus: RabbitBus, db: Database, clock: ManualClock, trusted: str, **settings: object
) -> Enrollment:
    return Enrollment(
        upstreams, bus, db, clock=clock, settings=signup_settings(forwarded_allow_ips=trusted, **settings)
    )


@pytest.fixture
def trusted_loopback(
    clean_upstreams: Upstreams, rabbit_bus: RabbitBus, postgres_database: Database, clock: ManualClock
) -> Iterator[tuple[Enrollment, Served]]:
    """The signup web behind a proxy at 127.0.0.1 (this test plays the proxy)."""
    with served_enrollment(clean_upstreams, rabbit_bus, postgres_database, clock, "127.0.0.1").start() as enrollment:
        server = Served(enrollment)
        yield enrollment, server
        server.stop()


def register(browser: httpx.Client, email: str, forwarded_for: str) -> httpx.Response:
    token = csrf_from(browser.get("/signup").text)
    form = {
        "csrf_token": token,
        "name": "Ada Lovelace",
        "email": email,
        "password": "Tr0ub4dor&3-horse-staple",
        "currency": "USD",
        "country": "GB",
    }
    return browser.post("/signup", data=form, headers={"X-Forwarded-For": forwarded_for})


def valid_ip(value: str | None) -> bool:
    try:
        ipaddress.ip_address(value or "")
    except ValueError:
        return False
    return True


def test_the_shipped_deploy_config_never_trusts_every_proxy() -> None:
    assert "*" not in K8S_TRUSTED
    assert SignupSettings(forwarded_allow_ips=K8S_TRUSTED).forwarded_allow_ips == K8S_TRUSTED
    compose = yaml.safe_load((ROOT / "deploy" / "docker-compose.yml").read_text())
    assert "*" not in str(compose)
    for everyone in ("*", "127.0.0.1,*", "0.0.0.0/0", "::/0"):
        with pytest.raises(ValidationError, match="forwarded_allow_ips"):
            SignupSettings(forwarded_allow_ips=everyone)


def test_rotating_x_forwarded_for_does_not_escape_the_per_ip_limit_with_the_shipped_config(
    clean_upstreams: Upstreams, rabbit_bus: RabbitBus, postgres_database: Database, clock: ManualClock
) -> None:
    with served_enrollment(
        clean_upstreams, rabbit_bus, postgres_database, clock, K8S_TRUSTED, registrations_per_ip=3
    ).start() as enrollment:
        server = Served(enrollment)
        try:
            with httpx.Client(base_url=server.url, timeout=10) as browser:
                answers = [register(browser, unique_email(), f"198.51.100.{n}").status_code for n in range(1, 6)]
        finally:
            server.stop()
    assert answers == [303, 303, 303, 429, 429], "a made-up X-Forwarded-For from an untrusted peer is ignored"


def test_garbage_in_x_forwarded_for_is_never_stored_as_the_clients_ip(
    trusted_loopback: tuple[Enrollment, Served],
) -> None:
    enrollment, server = trusted_loopback
    email = unique_email()
    garbage = "not-an-ip-<script>alert(1)</script>"
    with httpx.Client(base_url=server.url, timeout=10, follow_redirects=False) as browser:
        assert register(browser, email, garbage).status_code == 303
        message = enrollment.upstreams.smtp.wait_for(to=email, matching=lambda m: "Confirm" in str(m["Subject"]))
        page = browser.get(path_of(link_in(message[0])), headers={"X-Forwarded-For": garbage})
        action = page.text.split('action="', 1)[1].split('"', 1)[0]
        assert (
            browser.post(
                action, data={"csrf_token": csrf_from(page.text)}, headers={"X-Forwarded-For": garbage}
            ).status_code
            == 303
        )
        terms = wait_until(
            lambda: (r := browser.get("/signup/terms")).status_code == 200 and 'type="checkbox"' in r.text and r,
            what="terms page",
        )
        accepted = browser.post(
            "/signup/terms",
            data={"csrf_token": csrf_from(terms.text), "accept_terms_of_service": "yes", "accept_postpay_terms": "yes"},
            headers={"X-Forwarded-For": garbage},
        )
        assert accepted.status_code == 303
    signup = enrollment.signup_row(email)
    assert signup is not None and valid_ip(signup.registration_ip), signup.registration_ip
    with enrollment.db.transaction() as session:
        stored = session.execute(select(schema.consents.c.ip_address)).scalars().all()
    assert stored and all(valid_ip(ip) for ip in stored), stored


def test_behind_trusted_proxies_the_right_most_untrusted_hop_is_the_client(
    trusted_loopback: tuple[Enrollment, Served],
) -> None:
    enrollment, server = trusted_loopback
    email = unique_email()
    with httpx.Client(base_url=server.url, timeout=10) as browser:
        # The client claims 192.0.2.1; the proxy in front of us appended the address it saw.
        assert register(browser, email, "192.0.2.1, 203.0.113.9, 127.0.0.1").status_code == 303
    signup = enrollment.signup_row(email)
    assert signup is not None and signup.registration_ip == "203.0.113.9"


def test_addresses_of_one_ipv6_network_share_the_per_ip_limit(
    clean_upstreams: Upstreams, rabbit_bus: RabbitBus, postgres_database: Database, clock: ManualClock
) -> None:
    """Anyone routed an IPv6 network has 2^64 addresses of it: the limit counts the /64, not the address."""
    with served_enrollment(
        clean_upstreams, rabbit_bus, postgres_database, clock, "127.0.0.1", registrations_per_ip=2
    ).start() as enrollment:
        answers = []
        for host in ("2001:db8:1:2::1", "2001:db8:1:2::ffff", "2001:db8:1:2:abcd::9"):
            with TestClient(
                enrollment.app, base_url=enrollment.settings.public_url, follow_redirects=False, client=(host, 50000)
            ) as browser:
                answers.append(enrollment.register(unique_email(), client=browser).status_code)
        with TestClient(
            enrollment.app,
            base_url=enrollment.settings.public_url,
            follow_redirects=False,
            client=("2001:db8:1:3::1", 50000),
        ) as elsewhere:
            answers.append(enrollment.register(unique_email(), client=elsewhere).status_code)
    assert answers == [303, 303, 429, 303]
