"""The invoicer's own metrics, on the process registry every postpay process serves on /metrics."""

from __future__ import annotations

from prometheus_client import Counter

from shared.metrics import REGISTRY

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
