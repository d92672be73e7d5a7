"""The month close under chaos: 2,000 customers with 3 VMs each, closed by two usage-collector and two
invoicer processes (competing consumers) and a relay process, all started as production starts them.
Meanwhile the simulators answer with 5xx, timeouts, 429s and "commit then fail"; every process is
SIGKILLed at least three times and restarted; the broker (a private node) is restarted once.

Afterwards every customer has exactly one WHMCS invoice whose lines and amounts match what the test
computes on its own, no invoice is duplicated, no customer is missing, no parking lot holds anything and
every outbox is empty. The test prints the faults it injected.
"""

from __future__ import annotations

import random
import time
from datetime import timedelta
from pathlib import Path

import pytest

from postpay.bootstrap import SERVICES, service_builder
from services.scheduler.settings import SchedulerSettings
from shared.bus.rabbit import RabbitBus
from shared.bus.topology import Naming
from shared.clock import ManualClock
from shared.db import Database
from shared.periods import BillingPeriod
from simulators.faults import FaultConfig, FaultRule
from tests.chaos.chaos import SOLUSVM_FAULTS, WHMCS_FAULTS, ChaosReport, Victim, plan_kills
from tests.chaos.month_close import (
    Phases,
    check_every_customer_invoiced_once,
    outbox_backlogs,
    parked_counts,
    seed_customers,
    wait_quiet,
)
from tests.support.billing import PRICES, BillingHarness
from tests.support.private_broker import PrivateBroker
from tests.support.service_processes import ProcessEnvironment, ServiceProcess, wait_for_log
from tests.support.system import Upstreams

pytestmark = [pytest.mark.rabbit, pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(600)]

CUSTOMERS = 2000
VMS_PER_CUSTOMER = 3
SEED = 20261130
PERIOD = "2026-11"
TIMEZONE = "Europe/Berlin"
KILLS_PER_PROCESS = 3
CLOSE_TIMEOUT = 420.0
RETRY_DELAYS = "0.3,1,2,4,8"


def test_month_close_of_2000_customers_under_kills_faults_and_a_broker_restart(
    private_broker_up: PrivateBroker, postgres_database: Database, tmp_path: Path, artifacts_dir: Path
) -> None:
    phase = Phases()
    rng = random.Random(SEED)
    period = BillingPeriod.parse(PERIOD, TIMEZONE)
    now = period.ends_at + timedelta(minutes=20)
    namespace = f"chaos-{SEED}-{rng.randrange(10**6)}"
    bus = RabbitBus(
        private_broker_up.url,
        naming=Naming(namespace),
        retry_delays=[float(d) for d in RETRY_DELAYS.split(",")],
        confirm_timeout=15,
    )
    processes: list[ServiceProcess] = []

    with Upstreams(now=now) as upstreams:
        harness = BillingHarness(
            upstreams,
            bus,
            postgres_database,
            clock=ManualClock(now),
            scheduler=SchedulerSettings(billing_timezone=TIMEZONE),
            chunk_size=100,
        )
        harness.runtime.declare()
        for name in SERVICES:  # the relay process ships every service's outbox, as in production
            service_builder(name)(harness.context.deps).metadata.create_all(postgres_database.engine)
        customers, oracle = seed_customers(harness, rng, CUSTOMERS, VMS_PER_CUSTOMER, period, now)

        phase.done("seeded")
        env = ProcessEnvironment(
            private_broker_up.url, postgres_database, namespace, upstreams, PRICES, retry_delays=RETRY_DELAYS
        ).variables()
        collectors = [ServiceProcess("usage-collector", env, tmp_path, label=f"usage-collector-{n}") for n in (1, 2)]
        invoicers = [ServiceProcess("invoicer", env, tmp_path, label=f"invoicer-{n}") for n in (1, 2)]
        relay = ServiceProcess("relay", env, tmp_path, label="relay")
        processes = [*collectors, *invoicers, relay]
        try:
            for process in processes:
                process.start()
            for process in [*collectors, *invoicers]:
                wait_for_log(process, '"consuming"', timeout=90)
            wait_for_log(relay, "postpay running", timeout=90)
            phase.done("processes started")
            harness.enroll(customers)
            phase.done("customers enrolled")

            upstreams.whmcs.faults.configure(
                FaultConfig(seed=SEED, rules=[FaultRule.model_validate(r) for r in WHMCS_FAULTS])
            )
            upstreams.solusvm_faults.configure(
                FaultConfig(seed=SEED + 1, rules=[FaultRule.model_validate(r) for r in SOLUSVM_FAULTS])
            )
            report = run_chaos(harness, private_broker_up, rng, collectors, invoicers, relay)
            phase.done("close settled under chaos")
            faults = (upstreams.whmcs.faults.stats(), upstreams.solusvm_faults.stats())
            upstreams.whmcs.faults.clear()
            upstreams.solusvm_faults.clear()
            wait_quiet(harness, bus)
            for process in processes:
                assert process.terminate() == 0, f"{process.label} did not stop cleanly:\n{process.log_tail()}"
            phase.done("quiet and stopped")
        finally:
            for process in processes:
                process.stop()

        report.whmcs_faults, report.solusvm_faults = faults
        report.whmcs_calls = upstreams.whmcs.calls.snapshot()
        # Printed (seen with -s or on failure) and kept with the test's artifacts (seen always).
        print("\n" + "\n".join(report.lines()))
        (artifacts_dir / "chaos-report.txt").write_text("\n".join(report.lines()) + "\n")
        check_every_customer_invoiced_once(harness, customers, oracle, period)
        phase.done("checked")
        assert report.broker_restarts == 1
        for victim in report.victims:
            assert victim.process.kills >= KILLS_PER_PROCESS, (victim.process.label, victim.killed_at_progress)
        assert sum(report.whmcs_faults.values()) > 0 and sum(report.solusvm_faults.values()) > 0
        assert any(key.startswith("commit_then_fail:") for key in report.whmcs_faults), report.whmcs_faults
        assert any(key.startswith("rate_limit:") for key in report.whmcs_faults | report.solusvm_faults)
        assert any(key.startswith("timeout:") for key in report.whmcs_faults | report.solusvm_faults)


def run_chaos(
    harness: BillingHarness,
    broker: PrivateBroker,
    rng: random.Random,
    collectors: list[ServiceProcess],
    invoicers: list[ServiceProcess],
    relay: ServiceProcess,
) -> ChaosReport:
    """Close the period, then kill and restart processes and the broker as the close progresses."""

    def delay() -> float:
        return rng.uniform(0.0, 1.5)

    victims = [Victim(p, "collection", '"consuming"', plan_kills(rng, KILLS_PER_PROCESS), delay) for p in collectors]
    victims += [Victim(p, "invoicing", '"consuming"', plan_kills(rng, KILLS_PER_PROCESS), delay) for p in invoicers]
    victims.append(Victim(relay, "invoicing", "postpay running", plan_kills(rng, KILLS_PER_PROCESS), delay))
    broker_restart_at = round(rng.uniform(0.25, 0.6), 3)
    broker_restarts = 0

    started = time.monotonic()
    harness.close(PERIOD)
    deadline = started + CLOSE_TIMEOUT
    while True:
        status = harness.status(PERIOD)
        progress = {"collection": status.collected / CUSTOMERS, "invoicing": status.settled / CUSTOMERS}
        if status.settled >= CUSTOMERS and all(not v.kill_at and v.restart_due is None for v in victims):
            break
        now = time.monotonic()
        for victim in victims:
            assert victim.process.crashed() is None, victim.process.crashed()
            victim.step(progress[victim.stage], now)
        if broker_restarts == 0 and progress["invoicing"] >= broker_restart_at:
            broker.restart()
            broker_restarts += 1
        if now > deadline:
            raise AssertionError(
                f"the close did not finish in {CLOSE_TIMEOUT}s: {status}; parked {parked_counts(harness.bus)}; "
                f"outboxes {outbox_backlogs(harness)}; kills left "
                f"{ {v.process.label: v.kill_at for v in victims} }\n"
                + "\n".join(f"--- {p.label}\n{p.log_tail(1500)}" for p in [*collectors, *invoicers, relay])
            )
        time.sleep(0.2)
    # A kill planned for a moment the close had already passed lands on an idle process: say so.
    for victim in victims:
        assert all(fraction < 1.0 for fraction in victim.killed_at_progress), (
            f"{victim.process.label} was killed after the close had finished: {victim.killed_at_progress}"
        )
    return ChaosReport(victims, broker_restarts, {}, {}, {}, time.monotonic() - started)
