"""The enrollment journey end to end, as a customer lives it: real headless Chromium against the
signup service on real RabbitMQ and PostgreSQL, the WHMCS and SolusVM 2 simulators and an SMTP
capture. A mail scanner opens the emailed link first (it must change nothing); the customer then
presses its confirm button. The second journey runs with JavaScript off. Every page is saved as a
screenshot at desktop (1440 px) and phone (390 px) width in the test artifacts."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from shared.bus.rabbit import RabbitBus
from shared.db import Database
from shared.periods import BillingPeriod
from shared.upstream.http import Timeouts
from simulators.faults import FaultRule
from simulators.solusvm.seeding import seed as seed_solusvm
from tests.support.enrollment import Enrollment, local_public_url, signup_settings, unique_email
from tests.support.system import Upstreams

pytestmark = [pytest.mark.browser, pytest.mark.rabbit, pytest.mark.postgres]

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "Orchid-Lantern-5521"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def upstreams() -> Iterator[Upstreams]:
    with Upstreams() as running:
        yield running


@pytest.fixture
def enrollment(upstreams: Upstreams, rabbit_bus: RabbitBus, postgres_database: Database) -> Iterator[Enrollment]:
    settings = signup_settings(
        public_url=local_public_url(),
        brand_name="Acme Cloud",
        brand_accent_colour="#0f766e",
        brand_support_url="https://acme.example/help",
        brand_privacy_url="https://acme.example/privacy",
        panel_usage_max_age_seconds=10,
    )  # the first VM starts after the first figure
    with Enrollment(
        upstreams,
        rabbit_bus,
        postgres_database,
        settings=settings,
        timeouts=Timeouts(connect=1.0, read=0.5),
        usage_collector=True,
    ).start() as running:
        running.serve()
        yield running


DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=DESKTOP)
    yield context.new_page()
    context.close()


@pytest.fixture
def page_without_javascript(browser: Browser) -> Iterator[Page]:
    """Every signup page, the confirm button included, must work with JavaScript off."""
    context = browser.new_context(viewport=DESKTOP, java_script_enabled=False)
    yield context.new_page()
    context.close()


class Screenshots:
    """Each page at desktop and at phone width, numbered in the order a customer sees them."""

    def __init__(self, page: Page, artifacts: Path) -> None:
        self.page, self.artifacts, self.shots = page, artifacts, 0
        for stale in artifacts.glob("*.png"):  # an earlier run's pages, perhaps under other numbers
            stale.unlink()

    def shot(self, name: str) -> None:
        self.shots += 1
        for width, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
            self.page.set_viewport_size(viewport)
            self.page.screenshot(path=str(self.artifacts / f"{self.shots:02d}-{name}-{width}.png"), full_page=True)
        self.page.set_viewport_size(DESKTOP)


class Journey(Screenshots):
    def __init__(self, page: Page, enrollment: Enrollment, artifacts: Path) -> None:
        super().__init__(page, artifacts)
        self.enrollment = enrollment

    def run_a_machine(self, email: str) -> None:
        """The new customer's first VM, running since the month began (seeded in the SolusVM 2 simulator)."""
        (user,) = self.enrollment.solusvm_users(email)
        state = self.enrollment.upstreams.solusvm_state
        now = datetime.now(UTC)
        started = max(now - timedelta(hours=30), BillingPeriod.containing(now).starts_at)
        plan = min(state.plans.values(), key=lambda plan: plan.id)
        seed_solusvm(
            state,
            {
                "servers": [
                    {
                        "user_id": user.id,
                        "plan_id": plan.id,
                        "name": "web-1",
                        "created_at": started.isoformat(),
                        "intervals": [[started.isoformat(), None]],
                    }
                ]
            },
            now,
        )

    def run(self, email: str, *, javascript: bool = True) -> Any:
        page, enrollment = self.page, self.enrollment
        page.goto(enrollment.settings.public_url + "/")
        expect(page.get_by_role("heading", level=1)).to_have_text("Virtual machines on demand, billed after use")
        expect(page.get_by_role("table", name="Price of one token")).to_contain_text("0.0010")
        plans = page.get_by_role("table", name="Plans in the control panel, per machine")
        expect(plans).to_contain_text("Monthly cap (EUR)")
        expect(page.get_by_role("heading", name="A worked example")).to_be_visible()
        self.shot("landing")

        expect(page.get_by_role("heading", name="Invoices and payment")).to_be_visible()
        expect(page.locator("footer")).to_contain_text("Support")

        page.get_by_role("link", name="Sign up").first.click()
        self.shot("registration-form")
        page.get_by_role("button", name="Create my account").click()  # nothing filled in
        summary = page.locator(".error-summary")
        expect(summary).to_contain_text("Please choose your country")
        if javascript:  # focus is checked by script; the autofocus that moves it needs none
            expect(summary).to_be_focused()
        self.shot("registration-problems")
        page.get_by_label("Full name").fill("Ada Lovelace")
        page.get_by_label("Company").fill("Analytical Engines")
        page.get_by_label("Email address").fill(email)
        page.get_by_label("Country").select_option("GB")
        page.get_by_label("Currency of your invoices").select_option("EUR")
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        page.get_by_role("button", name="Create my account").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Check your email")
        self.shot("check-your-email")

        (link,) = enrollment.verification_links(email, timeout=30)
        for _ in range(2):  # a mail gateway (Safe Links and the like) opens the link before the customer does
            scanned = httpx.get(link, timeout=10)
            assert scanned.status_code == 200 and "Confirm your email address" in scanned.text
        assert "postpay_session" not in scanned.headers.get("set-cookie", ""), "opening the link starts no session"
        page.goto(link)
        expect(page.get_by_role("heading", level=1)).to_have_text("Confirm your email address")
        expect(page.get_by_text(email)).to_be_visible()
        self.shot("confirm-email")
        page.get_by_role("button", name="Confirm my email address").click()
        terms = page.get_by_label("Terms of Service", exact=False)
        expect(terms).to_be_visible(timeout=20_000)
        self.shot("terms")
        terms.check()
        page.get_by_label("post-pay terms", exact=False).check()
        page.get_by_role("button", name="Accept and create my SolusVM 2 account").click()
        self.shot("setting-up")
        expect(page.get_by_role("heading", level=1)).to_have_text("Enrolled", timeout=30_000)
        expect(page.get_by_role("heading", name="Latest invoices")).to_be_visible()
        self.run_a_machine(email)
        usage = page.get_by_role("table", name=re.compile("Virtual machines that ran in"))
        for _ in range(60):  # the figure arrives by events; the page shows the newest it holds
            if usage.count():
                break
            page.wait_for_timeout(500)
            page.reload()
        expect(usage).to_contain_text("web-1")
        expect(page.get_by_text("Estimated for the whole month")).to_be_visible()
        self.shot("enrolled")

        with page.expect_response(lambda response: "/auth/by_token" in response.url) as landing:
            page.get_by_role("button", name="Log in to SolusVM 2").click()
        expect(page.get_by_text("Signed in as")).to_be_visible()
        self.shot("solusvm")
        return landing.value


def test_a_customer_signs_up_and_lands_in_solusvm(
    page: Page, enrollment: Enrollment, upstreams: Upstreams, artifacts_dir: Path
) -> None:
    email = unique_email("browser")
    landing = Journey(page, enrollment, artifacts_dir).run(email)

    assert landing.status == 200
    assert landing.url.startswith(f"{upstreams.solusvm_url}/auth/by_token?token=")
    assert email in page.content()
    assert len(enrollment.whmcs_clients(email)) == 1 and len(enrollment.solusvm_users(email)) == 1
    assert len(list(artifacts_dir.glob("*-desktop.png"))) == len(list(artifacts_dir.glob("*-phone.png"))) == 9


def test_the_same_journey_with_upstream_faults_and_no_javascript_still_makes_one_client_and_one_user(
    page_without_javascript: Page, enrollment: Enrollment, upstreams: Upstreams, artifacts_dir: Path
) -> None:
    page = page_without_javascript
    upstreams.whmcs.fault(kind="server_error", route="GetClientsDetails", count=2)
    upstreams.whmcs.fault(kind="commit_then_fail", route="AddClient", count=1, then="timeout", hang_seconds=1.5)
    for rule in (
        FaultRule(kind="server_error", route="GET /api/v1/users", count=2),
        FaultRule(kind="commit_then_fail", route="POST /api/v1/users", count=1, then="drop"),
        FaultRule(kind="latency", route="POST /api/v1/users/*/tokens", latency_ms=300),
    ):
        upstreams.solusvm_faults.add(rule)
    email = unique_email("faults")

    landing = Journey(page, enrollment, artifacts_dir).run(email, javascript=False)

    assert landing.status == 200
    (client,) = enrollment.whmcs_clients(email)
    (user,) = enrollment.solusvm_users(email)
    assert user.billing_user_id == client.id
    injected = {**upstreams.whmcs.faults.stats(), **upstreams.solusvm_faults.stats()}
    assert injected.get("commit_then_fail:AddClient") == 1 and injected.get("commit_then_fail:POST /api/v1/users") == 1


def test_every_other_page_at_desktop_and_phone_width(page: Page, enrollment: Enrollment, artifacts_dir: Path) -> None:
    """The pages a customer meets off the happy path: each readable at both widths, with the brand."""
    shots = Screenshots(page, artifacts_dir)
    base = enrollment.settings.public_url
    for path, name, heading in [
        ("/signup/check-email", "check-email-directly", "Check your email"),
        ("/verify/not-a-real-link", "link-not-valid", "This link is not valid"),
        ("/finish/not-a-real-link", "finish-link-not-valid", "This link is not valid"),
        ("/sso/not-a-real-link", "login-link-not-valid", "This login link is not valid"),
        ("/signup/status", "status-unknown-browser", "We don't know who you are yet"),
        ("/signup/terms", "terms-before-confirming", "Please open the link from your email first"),
        ("/no-such-page", "not-found", "Page not found"),
    ]:
        page.goto(base + path)
        expect(page.get_by_role("heading", level=1)).to_have_text(heading)
        expect(page.locator("header")).to_contain_text("Acme Cloud")
        expect(page.locator("footer")).to_contain_text("Privacy")
        shots.shot(name)
    page.goto(base + "/signup/check-email")
    page.get_by_role("button", name="Send a new link").click()
    expect(page.locator(".error")).to_be_focused()
    shots.shot("check-email-problem")
    page.emulate_media(color_scheme="dark")  # the colours of dark mode (their contrast: tests/unit/test_branding.py)
    for path, name in (("/", "landing-dark"), ("/signup", "registration-form-dark")):
        page.goto(base + path)
        assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(17, 24, 39)"
        shots.shot(name)
    assert len(list(artifacts_dir.glob("*-desktop.png"))) == len(list(artifacts_dir.glob("*-phone.png"))) == 10
