"""The Grafana dashboard and the Prometheus alert rules shipped in deploy/: the rules pass
``promtool check rules``, the Kubernetes PrometheusRule carries exactly the Compose rules, and every
metric any query names is one postpay exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

import services.invoicer.metrics
import services.meter.metrics  # noqa: F401 - registers the meter's series
from shared.metrics import REGISTRY

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "postpay-rules.yml"
K8S_RULES = DEPLOY / "prometheus" / "k8s-prometheus-rule.yaml"
DASHBOARD = DEPLOY / "grafana" / "postpay-dashboard.json"
# PromQL words that look like metric names but are functions, keywords or label matchers.
_KEYWORDS = {"by", "and", "on", "or", "unless", "without", "ignoring", "group_left", "group_right", "bool", "offset"}
_IDENTIFIER = re.compile(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()")


def exported_series() -> set[str]:
    names = set()
    for collector in REGISTRY._collector_to_names:
        for metric in collector.describe():
            for sample_suffix in ("", "_total", "_bucket", "_count", "_sum", "_created"):
                names.add(metric.name + sample_suffix)
    return names


def metric_names(expr: str) -> set[str]:
    """Identifiers that are not functions, keywords, label lists (``by (...)``), matchers or ranges."""
    text = re.sub(r'"[^"]*"', '""', expr)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|on|without|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    return {name for name in _IDENTIFIER.findall(text) if name not in _KEYWORDS}


def dashboard_queries() -> list[str]:
    document = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in document["panels"] for target in panel["targets"]]


def rule_queries() -> list[str]:
    document = yaml.safe_load(RULES.read_text())
    return [rule["expr"] for group in document["groups"] for rule in group["rules"]]


def test_promtool_accepts_the_rules(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: install Debian's prometheus package (.ci/run does)"
    result = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    spec = yaml.safe_load(K8S_RULES.read_text())["spec"]
    extracted = tmp_path / "k8s-rules.yml"
    extracted.write_text(yaml.safe_dump(spec))
    result = subprocess.run([promtool, "check", "rules", str(extracted)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_prometheus_rule_for_kubernetes_is_the_compose_rules() -> None:
    document = yaml.safe_load(K8S_RULES.read_text())
    assert document["kind"] == "PrometheusRule" and document["apiVersion"] == "monitoring.coreos.com/v1"
    assert document["spec"] == yaml.safe_load(RULES.read_text())


def test_the_alerts_the_issue_asks_for_are_there() -> None:
    alerts = {rule["alert"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]}
    assert alerts == {
        "PostpayMessagesParked",
        "PostpayOutboxBacklogGrowing",
        "PostpayMonthCloseNotFinished",
        "PostpayUpstreamErrorRate",
        "PostpayNoSchedulerTick",
        "PostpayHeldInvoiceWaiting",
        "PostpayBillingPeriodPaused",
    }


def test_held_invoices_and_paused_months_are_on_the_dashboard() -> None:
    queries = " ".join(dashboard_queries())
    for series in (
        "postpay_invoice_holds_waiting",
        "postpay_invoice_hold_oldest_waiting_timestamp_seconds",
        "postpay_billing_periods_paused_active",
        "postpay_invoices_held_total",
    ):
        assert series in queries, series


@pytest.mark.parametrize("source", ["dashboard", "rules"])
def test_every_query_names_only_exported_metrics(source: str) -> None:
    queries = dashboard_queries() if source == "dashboard" else rule_queries()
    assert queries
    exported = exported_series()
    for expr in queries:
        names = metric_names(expr)
        assert names, f"no metric found in {expr!r}"
        unknown = names - exported
        assert not unknown, f"{expr!r} names {sorted(unknown)}, which postpay does not export"


def test_the_name_extraction_would_catch_a_misspelt_metric() -> None:
    assert metric_names('sum by (handler) (rate(postpay_messages_parkd_total{handler=~"a.b"}[5m]))') == {
        "postpay_messages_parkd_total"
    }
    assert "postpay_messages_parkd_total" not in exported_series()
