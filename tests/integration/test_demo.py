"""``postpay demo`` itself, as a person runs it: a fresh process with no POSTPAY_* settings (embedded
defaults), then the same over RabbitMQ. Its printed invoices are checked against amounts this test
computes on its own from the seeded intervals (the demo's scenario is the input; the arithmetic here
shares nothing with the invoicer nor with the demo's own check). With ``--serve`` the pages it prints
answer, and SIGTERM stops it cleanly."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import httpx
import pytest

from postpay.bootstrap import System
from postpay.demo.scenario import TOKEN_PRICES, CustomerSpec, customers
from shared.bus.rabbit import RabbitBus
from shared.bus.topology import Naming
from shared.db import Database
from shared.periods import BillingPeriod
from shared.settings import KernelSettings
from tests.conftest import unique_namespace

CUSTOMERS = 4
INVOICE = re.compile(r"Invoice #(\d+) · (.+?) <(\S+?)>, WHMCS client (\d+) · (\d{4}-\d{2}) · ([A-Z]{3}) (\d+\.\d\d) ·")
LINE = re.compile(
    r"\| (\w+) \(#\d+, plan (\w+)\): (\d+) hours?, (\d+) tokens?, ran (\S+)(?: to (\S+))?\s+\|\s+(\d+\.\d\d) \|"
)
NOTHING = re.compile(r"(.+?) <(\S+?)>, WHMCS client \d+: nothing to bill for (\d{4}-\d{2})")


@dataclass(frozen=True)
class Line:
    plan: str
    hours: int
    tokens: int
    amount: Decimal


def oracle(customer: CustomerSpec, period: BillingPeriod) -> dict[str, Line]:
    """Per VM that ran in the period: whole hours up, tokens capped monthly, priced, rounded to the cent."""
    lines = {}
    for vm in customer.vms:
        seconds = 0.0
        for start, end in vm.runs:
            seconds += max(
                0.0, (min(end or period.ends_at, period.ends_at) - max(start, period.starts_at)).total_seconds()
            )
        if seconds:
            hours = int(-(-seconds // 3600))
            tokens = min(hours * vm.plan.tokens_per_hour, vm.plan.tokens_per_month)
            amount = (TOKEN_PRICES[customer.currency] * tokens).quantize(Decimal("0.01"), ROUND_HALF_UP)
            lines[vm.name] = Line(vm.plan.name, hours, tokens, amount)
    return lines


def printed_invoices(output: str) -> tuple[str, dict[str, tuple[str, Decimal, dict[str, Line]]], set[str]]:
    """(period, {email: (currency, subtotal, {vm: line})}, emails with nothing to bill) from the output."""
    (period,) = set(re.findall(r"billed for (\d{4}-\d{2})", output))
    invoices: dict[str, tuple[str, Decimal, dict[str, Line]]] = {}
    current: dict[str, Line] | None = None
    for text in output.splitlines():
        if found := INVOICE.search(text):
            assert found.group(5) == period
            current = {}
            assert found.group(3) not in invoices, f"two invoices for {found.group(3)}"
            invoices[found.group(3)] = (found.group(6), Decimal(found.group(7)), current)
        elif (found := LINE.search(text)) and current is not None:
            name, plan, hours, tokens, _first, _last, amount = found.groups()
            current[name] = Line(plan, int(hours), int(tokens), Decimal(amount))
    nothing = {found.group(2) for text in output.splitlines() if (found := NOTHING.search(text))}
    return period, invoices, nothing


def check_invoices(output: str) -> str:
    key, invoices, nothing = printed_invoices(output)
    period = BillingPeriod.parse(key)
    expected_invoices = 0
    for customer in customers(period, CUSTOMERS):
        expected = oracle(customer, period)
        if not expected:
            assert customer.email in nothing and customer.email not in invoices, customer.email
            continue
        expected_invoices += 1
        currency, subtotal, lines = invoices[customer.email]
        assert currency == customer.currency
        assert lines == expected, (customer.email, lines, expected)
        assert subtotal == sum(line.amount for line in expected.values())
    assert len(invoices) == expected_invoices == 3 and len(nothing) == 1
    # The scenario's promises hold: a VM capped at its monthly price, and one billed a whole hour for minutes.
    ada = invoices["ada.lovelace@example.com"][2]
    assert ada["web"].tokens == 15000 < ada["web"].hours * 30
    assert invoices["alan.turing@example.com"][2]["batch"] == Line("Starter", 1, 5, Decimal("0.01"))
    assert "every amount is what the seeded intervals imply" in output
    return key


def environment(**settings: str) -> dict[str, str]:
    """This machine's environment without any postpay setting: the embedded defaults."""
    clean = {name: value for name, value in os.environ.items() if not name.startswith("POSTPAY_")}
    return {**clean, "COLUMNS": "200", **settings}


def demo(*args: str) -> list[str]:
    return [sys.executable, "-m", "postpay.cli", "demo", "--non-interactive", "--customers", str(CUSTOMERS), *args]


class Reader:
    """A process's stdout, line by line, readable with a deadline."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        assert process.stdout is not None
        stdout = process.stdout
        threading.Thread(
            target=lambda: ([self.lines.put(line) for line in stdout], self.lines.put(None)), daemon=True
        ).start()

    def until(self, pattern: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            assert line is not None, "the demo ended early:\n" + "".join(self.seen)
            self.seen.append(line)
            if re.search(pattern, line):
                return line

    @property
    def text(self) -> str:
        return "".join(self.seen)


@pytest.fixture
def serving(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Reader]]:
    process = subprocess.Popen(
        demo("--serve"), cwd=tmp_path, env=environment(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        yield process, Reader(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def test_the_demo_on_embedded_defaults_prints_the_invoices_the_intervals_imply_and_serves(
    serving: tuple[subprocess.Popen[str], Reader],
) -> None:
    process, output = serving
    output.until(r"postpay demo is running", timeout=60)
    urls = {}
    for _ in range(10):
        label, url = re.match(r"\s+(.+?)\s{2,}(\S+)", output.until(r"\S", timeout=5)).groups()  # type: ignore[union-attr]
        urls[label] = url
    assert "in-process bus" in output.text
    billed = check_invoices(output.text)

    landing = httpx.get(urls["landing page"], timeout=10)
    assert landing.status_code == 200 and "0.0010" in landing.text
    panel_url = next(url for label, url in urls.items() if label.endswith("panel"))
    panel = httpx.get(panel_url, timeout=10)
    assert (
        panel.status_code == 200 and "Enrolled in SolusVM 2" in panel.text and 'href="solusvm2_sso.php"' in panel.text
    )
    stranger = httpx.get(re.sub(r"/clients/\d+/", "/clients/999/", panel_url), timeout=10)
    assert "Not enrolled in SolusVM 2" in stranger.text
    login = httpx.get(panel_url + "solusvm2_sso.php", timeout=10)
    assert login.status_code == 302 and login.headers["location"].startswith(urls["landing page"] + "sso/")
    mail = httpx.get(urls["captured email"], timeout=10).text
    assert "ada.lovelace@example.com" in mail and "/verify/" in mail
    invoices = httpx.get(urls["WHMCS simulator"], timeout=10).json()["invoices"]
    assert len(invoices) == 3
    assert urls["database"].startswith("sqlite:///")

    # The operator console, on loopback only, opens with the operator and password printed, once.
    console = urls["operator console"]
    assert console.startswith("http://127.0.0.1:") and console.endswith("/")
    with httpx.Client(base_url=console, timeout=10) as browser:
        token = re.search(r'name="login_token" value="([^"]+)"', browser.get("/login").text).group(1)  # type: ignore[union-attr]
        credentials = {"login_token": token, "username": urls["console user"]}
        assert browser.post("/login", data={**credentials, "password": "not-the-password"}).status_code == 401
        token = re.search(r'name="login_token" value="([^"]+)"', browser.get("/login").text).group(1)  # type: ignore[union-attr]
        opened = browser.post(
            "/login",
            data={**credentials, "login_token": token, "password": urls["console password"]},
            follow_redirects=True,
        )
        assert opened.status_code == 200 and "Billing periods" in opened.text
        assert billed in opened.text and "Held invoices" in opened.text
    assert len(urls["console password"]) >= 12

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0, output.text


@pytest.mark.rabbit
def test_the_demo_runs_the_same_over_rabbitmq(rabbit_url: str, tmp_path: Path) -> None:
    namespace = unique_namespace()
    bus = RabbitBus(rabbit_url, naming=Naming(namespace))
    try:
        result = subprocess.run(
            demo(),
            check=False,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            env=environment(POSTPAY_AMQP_URL=rabbit_url, POSTPAY_BUS_NAMESPACE=namespace),
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"RabbitMQ, namespace {namespace}" in result.stdout
        check_invoices(result.stdout)
        # It ran on the broker: its queues are there (the demo keeps a namespace it was given).
        with bus.connection() as connection:
            bus.open_channel(connection).queue_declare(queue=bus.naming.queue("invoicer.create_invoice"), passive=True)
    finally:
        db = Database("sqlite://")
        system = System(kernel=KernelSettings(), db=db, bus=bus)
        bus.delete_topology([s for service in system.services for s in service.subscriptions])
        for client in (system.deps.whmcs, system.deps.solusvm):
            client.close()
        db.dispose()


@pytest.mark.parametrize("key", ["2026-02", "2028-02", "2026-04", "2026-12"])
def test_the_story_holds_in_every_month_length(key: str) -> None:
    """Whatever month the demo runs after: the capped VM is capped, the mid-month moments stay inside it."""
    period = BillingPeriod.parse(key)
    for customer in customers(period, 80):
        lines = oracle(customer, period)
        for vm in customer.vms:
            if vm.name == "web":
                assert lines["web"].tokens == vm.plan.tokens_per_month
            inside = [moment for run in vm.runs for moment in run if moment and moment >= period.starts_at]
            assert all(moment < period.ends_at for moment in inside), (customer.email, vm.name)
        assert bool(lines) == (customer.vms[0].name != "legacy")
