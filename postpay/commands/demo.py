"""``postpay demo``: try the whole product in one command, on the embedded defaults.

Starts both simulators, an SMTP capture server and every service in this process, signs a few
customers up through the signup web app's real HTTP endpoints, seeds how their VMs ran last month,
has the meter sweep that month at accelerated time, closes the month and prints each WHMCS invoice next
to the amounts the seeded intervals imply, and the meter's hours beside the exact ones. ``--serve`` keeps
it running and prints where everything is, the operator console on loopback with a fresh operator among
it.
With ``POSTPAY_AMQP_URL`` set, the same runs over RabbitMQ (in a namespace of its own).
"""

from __future__ import annotations

import os
import signal
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console

from postpay.demo import metering, month
from postpay.demo.console import start_console
from postpay.demo.expected import expected_lines
from postpay.demo.journey import Enrolled, JourneyError, ScriptedSignup
from postpay.demo.narration import InvoiceCheck, Narrator, render_check
from postpay.demo.scenario import TOKEN_PRICES, CustomerSpec
from postpay.demo.scenario import customers as scenario_customers
from postpay.demo.showcase import Links, create_showcase
from postpay.demo.stack import BILLING_TIMEZONE, DemoClock, Stack, journey_time
from postpay.ops.reports import follow_status, render_status
from postpay.ops.status import PeriodStatus, count_parked, period_status
from shared.clock import utcnow
from shared.logging import configure_logging
from shared.periods import BillingPeriod
from shared.settings import KernelSettings
from simulators.common import ServerThread


def demo(
    customers: Annotated[
        int, typer.Option("--customers", "-n", min=1, max=200, help="How many customers sign up.")
    ] = 4,
    serve: Annotated[
        bool, typer.Option("--serve", help="Keep everything running afterwards and print the URLs.")
    ] = False,
    non_interactive: Annotated[
        bool, typer.Option("--non-interactive", help="Plain output, no live spinners (CI).")
    ] = False,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir", help="Keep the SQLite database here (an empty directory) instead of a temporary one."
        ),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds any one stage may take.", min=1)] = 60.0,
) -> None:
    """Run postpay end to end on its embedded defaults and print last month's invoices."""
    kernel = KernelSettings()
    configure_logging(kernel.log_level if "log_level" in kernel.model_fields_set else "ERROR")
    console = _console()
    narrator = Narrator(console, interactive=console.is_terminal and not non_interactive)
    with _directory(data_dir) as directory:
        ok = _run(narrator, directory, customers=customers, serve=serve, timeout=timeout)
    if not ok:
        raise typer.Exit(1)


def _console() -> Console:
    probe = Console()
    if probe.is_terminal:
        return probe
    # A log or a pipe: wide enough that no invoice line is wrapped or cut.
    return Console(width=max(int(os.environ.get("COLUMNS", "0") or 0), 160))


@contextmanager
def _directory(data_dir: Path | None) -> Iterator[Path]:
    if data_dir is None:
        with tempfile.TemporaryDirectory(prefix="postpay-demo-") as temporary:
            yield Path(temporary)
        return
    data_dir.mkdir(parents=True, exist_ok=True)
    if (data_dir / "postpay.sqlite").exists():
        raise typer.BadParameter(
            f"{data_dir} already holds a demo database; give an empty directory", param_hint="--data-dir"
        )
    yield data_dir


def _run(narrator: Narrator, directory: Path, *, customers: int, serve: bool, timeout: float) -> bool:
    period = BillingPeriod.containing(utcnow(), BILLING_TIMEZONE).previous()
    specs = scenario_customers(period, customers)
    clock = DemoClock()
    clock.start_at(journey_time(period.starts_at))
    narrator.title(f"postpay demo: {customers} customers, billed for {period.key}")
    try:
        with ExitStack() as running:
            with narrator.step("Starting both simulators, SMTP capture and every postpay service"):
                stack = running.enter_context(Stack(directory, customers=customers, clock=clock))
            narrator.note(
                f"{stack.bus_name}; SQLite at {directory / 'postpay.sqlite'}; signup web at {stack.signup_url}"
            )
            enrolled = _sign_up(narrator, stack, specs, timeout)
            with httpx.Client(timeout=10) as http:
                ok = _bill_month(narrator, stack, http, enrolled, period, timeout)
            if serve:
                _serve(narrator, stack, enrolled)
            return ok
    except (JourneyError, month.MonthError, TimeoutError) as exc:
        narrator.failure(str(exc))
        return False
    except KeyboardInterrupt:
        narrator.failure("interrupted; everything the demo started is stopped")
        return False


def _sign_up(narrator: Narrator, stack: Stack, specs: Sequence[CustomerSpec], timeout: float) -> list[Enrolled]:
    journey = ScriptedSignup(
        stack.signup_url, stack.smtp, whmcs_url=stack.whmcs.url, solusvm_url=stack.solusvm.url, timeout=timeout
    )
    day = stack.clock.now().date().isoformat()
    with (
        narrator.step(f"{len(specs)} customers sign up on {day}: form, emailed link, terms, provisioning"),
        ThreadPoolExecutor(max_workers=min(len(specs), 4), thread_name_prefix="demo-customer") as pool,
    ):
        enrolled = list(pool.map(journey.enroll, specs))
    for customer in enrolled:
        narrator.note(
            f"{customer.spec.name} <{customer.spec.email}>: WHMCS client #{customer.whmcs_client_id}, "
            f"SolusVM 2 user #{customer.solusvm_user_id}, pays in {customer.spec.currency}"
        )
    return enrolled


def _bill_month(
    narrator: Narrator,
    stack: Stack,
    http: httpx.Client,
    enrolled: list[Enrolled],
    period: BillingPeriod,
    timeout: float,
) -> bool:
    with narrator.step("Currencies set in WHMCS for the customers who pay in EUR"):
        month.set_currencies(http, stack.whmcs.url, enrolled)
    with narrator.step(f"{period.key} happens: the VMs' running intervals seeded in the SolusVM 2 simulator"):
        seeded = month.seed_month(http, stack.solusvm.url, enrolled)
    for customer in enrolled:
        for vm in customer.spec.vms:
            server = seeded.server_ids[(customer.spec.email, vm.name)]
            narrator.note(
                f"{customer.spec.first_name}'s {vm.name} (#{server}, {vm.plan.name}: {vm.plan.tokens_per_hour}"
                f" tokens/h, at most {vm.plan.tokens_per_month}/month): {vm.story}"
            )
    with narrator.step(f"The meter sweeps SolusVM 2 hourly through {period.key} (accelerated), documented calls only"):
        sweeps = metering.meter_month(stack, stack.clock, period.ends_at + timedelta(hours=2), timeout=timeout)
    narrator.note(f"{sweeps} sweeps of GET /api/v1/servers and GET /api/v1/activity_logs")
    stack.clock.catch_up()
    assert stack.runtime is not None
    with narrator.step(f"{period.key} closed: usage collected from SolusVM 2, invoices created in WHMCS"):
        emitted = month.close_month(stack.runtime, period, stack.clock.now())
        status = _follow(narrator, stack, period, timeout)
    narrator.note(f"close event {emitted.event_id}")
    render_status(narrator.console, status)
    invoices_ok = _print_invoices(narrator, http, stack, enrolled, period)
    rows = metering.meter_view(stack, enrolled, period, stack.clock.now())
    if not metering.render_meter_view(narrator.console, rows):
        narrator.failure("the meter's hours are outside the documented bound (docs/usage-sources.md)")
        return False
    narrator.console.print(
        "[bold green]✓ the meter (POSTPAY_USAGE_SOURCE=meter) would bill every VM within the "
        "documented bound, never above the exact hours[/bold green]"
    )
    return invoices_ok


def _follow(narrator: Narrator, stack: Stack, period: BillingPeriod, timeout: float) -> PeriodStatus:
    runtime = stack.runtime
    assert runtime is not None
    if not narrator.interactive:
        return month.follow_close(runtime, period, timeout=timeout)
    deadline = time.monotonic() + timeout

    def poll() -> PeriodStatus:
        return period_status(runtime.db, period, parked=count_parked(runtime.bus, period))

    def wait() -> bool:
        time.sleep(0.2)
        return time.monotonic() < deadline

    status = follow_status(narrator.console, poll, wait)
    if not status.complete:
        raise month.MonthError(f"the close of {period.key} did not finish within {timeout:g} s")
    return status


def _print_invoices(
    narrator: Narrator, http: httpx.Client, stack: Stack, enrolled: list[Enrolled], period: BillingPeriod
) -> bool:
    narrator.title(f"Invoices for {period.key} in the WHMCS simulator")
    now = stack.clock.now()
    results = []
    for customer in enrolled:
        spec = customer.spec
        check = InvoiceCheck(
            customer=spec.name,
            email=spec.email,
            client_id=customer.whmcs_client_id,
            currency=spec.currency,
            expected=expected_lines(spec, period, TOKEN_PRICES[spec.currency], now),
            invoices=month.invoices_of(http, stack.whmcs.url, customer.whmcs_client_id),
        ).check()
        render_check(narrator.console, period.key, check)
        results.append(check)
    wrong = [result for result in results if result.problems]
    invoiced = sum(1 for result in results if result.expected)
    if wrong:
        narrator.failure(
            f"{len(wrong)} of {len(results)} customers' invoices differ from what the seeded intervals imply"
        )
        return False
    idle = len(results) - invoiced
    narrator.console.print(
        f"[bold green]✓ {invoiced} {_plural(invoiced, 'invoice')} and {idle} "
        f"{_plural(idle, 'customer')} with nothing to bill: every amount is what the seeded "
        "intervals imply[/bold green]"
    )
    return True


def _plural(count: int, word: str) -> str:
    return word if count == 1 else f"{word}s"


def _serve(narrator: Narrator, stack: Stack, enrolled: list[Enrolled]) -> None:
    links = Links(landing=stack.signup_url, whmcs=stack.whmcs.url, solusvm=stack.solusvm.url)
    showcase = ServerThread(create_showcase(links, stack.smtp, stack.panel_secret, enrolled)).start()
    operator_console = start_console(stack)
    try:
        narrator.title("postpay demo is running (Ctrl-C to stop)")
        first = enrolled[0]
        rows: list[tuple[str, Any]] = [
            ("landing page", f"{stack.signup_url}/"),
            ("demo index", f"{showcase.url}/"),
            (f"{first.spec.name}'s panel", f"{showcase.url}/clients/{first.whmcs_client_id}/"),
            ("captured email", f"{showcase.url}/mail"),
            ("WHMCS simulator", f"{stack.whmcs.url}/_sim/invoices"),
            ("SolusVM 2 simulator", f"{stack.solusvm.url}/_sim/users"),
            ("operator console", f"{operator_console.url}/"),
            ("console user", operator_console.username),
            ("console password", operator_console.password),
            ("database", stack.database_url),
        ]
        for label, url in rows:
            narrator.console.print(f"  {label:<24} {url}", highlight=False, soft_wrap=True)
        _wait_for_signal()
    finally:
        operator_console.stop.set()
        showcase.stop()


def _wait_for_signal() -> None:
    stopped = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopped.set())
    while not stopped.wait(0.5):
        pass


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
