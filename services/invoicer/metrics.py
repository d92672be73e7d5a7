"""The invoicer's own metrics, on the process registry every postpay process serves on /metrics."""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from services.invoicer import holds_store
from shared.logging import get_logger
from shared.metrics import REGISTRY

log = get_logger("postpay.invoicer.metrics")

INVOICES_HELD = Counter(
    "postpay_invoices_held_total",
    "Invoices held for an operator instead of created, per reason (a hold with two reasons counts in both).",
    ["reason"],
    registry=REGISTRY,
)
INVOICES_PAUSED = Counter(
    "postpay_invoices_paused_total",
    "Invoices kept instead of created because their period is paused.",
    registry=REGISTRY,
)
PERIODS_PAUSED = Counter(
    "postpay_billing_periods_paused_total",
    "Billing periods paused because too many of their customers were held.",
    registry=REGISTRY,
)
OUTCOMES_UNCERTAIN = Counter(
    "postpay_invoice_outcomes_uncertain_total",
    "CreateInvoice calls whose outcome was lost (timeout, dropped connection, 5xx): the invoice is looked up "
    "after the quiet time before another is created.",
    registry=REGISTRY,
)


class WaitingHolds(Collector):
    """What waits for an operator, read from the invoicer's tables at each scrape: decisions are made by
    other processes (``postpay holds``, the console), so a counter here could not follow them.

    ``postpay_invoice_hold_oldest_waiting_timestamp_seconds`` is the one to alert on (``time()`` minus it:
    how long the oldest held invoice has waited); it is absent while nothing waits. Exported by the
    processes that run the invoicer, each the same figures: aggregate with max/min.
    """

    def __init__(self) -> None:
        self._db: Any = None

    def watch(self, db: Any) -> None:
        self._db = db

    def unwatch(self, db: Any) -> None:
        if self._db is db:
            self._db = None

    def _families(self) -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                "postpay_invoice_holds_waiting",
                "Invoices held or paused, waiting for an operator's decision.",
                labels=["status"],
            ),
            GaugeMetricFamily(
                "postpay_invoice_hold_oldest_waiting_timestamp_seconds",
                "When the oldest invoice still waiting was held or paused (Unix time); absent when none waits.",
                labels=["status"],
            ),
            GaugeMetricFamily("postpay_billing_periods_paused_active", "Billing periods paused and not yet resumed."),
        )

    def describe(self) -> list[Metric]:
        return list(self._families())

    def collect(self) -> list[Metric]:
        db = self._db
        if db is None:
            return []
        try:
            with db.transaction() as session:
                waiting = holds_store.waiting_summary(session)
                paused = len(holds_store.active_pauses(session))
        except Exception as exc:
            log.warning("held invoices not counted for this scrape", error=f"{type(exc).__name__}: {exc}")
            return []
        count, oldest, periods = self._families()
        for status in holds_store.WAITING:
            number, since = waiting.get(status, (0, None))
            count.add_metric([status], number)
            if since is not None:
                oldest.add_metric([status], since.timestamp())
        periods.add_metric([], paused)
        return [count, oldest, periods]


WAITING_HOLDS = WaitingHolds()
REGISTRY.register(WAITING_HOLDS)
