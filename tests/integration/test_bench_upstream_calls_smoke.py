"""The upstream-calls benchmark at a tiny N: both transports bill every customer through postpay's
clients against the simulators, and the figures are recorded. A harness check, not a timing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.upstream_calls import TRANSPORTS, main

pytestmark = pytest.mark.usefixtures("suite_logging_restored")

CUSTOMERS = 5


def test_both_transports_bill_every_customer_and_the_figures_are_recorded(tmp_path: Path) -> None:
    code = main(
        [
            "--customers",
            str(CUSTOMERS),
            "--threads",
            "1,3",
            "--repeat",
            "1",
            "--solusvm-latency-ms",
            "1",
            "--whmcs-latency-ms",
            "1",
            "--results-dir",
            str(tmp_path),
        ]
    )

    assert code == 0
    (path,) = tmp_path.glob("upstream-calls-*.json")
    result = json.loads(path.read_text())
    assert [round_["threads"] for round_ in result["rounds"]] == [1, 3]
    for round_ in result["rounds"]:
        assert set(round_["figures"]) == set(TRANSPORTS)
        for figures in round_["figures"].values():
            # One distinct WHMCS invoice per customer, three calls each, and CPU that was measured.
            assert figures["invoices"] == CUSTOMERS and figures["calls"] == 3 * CUSTOMERS
            assert figures["cpu_ms_per_call"] > 0
    assert [row["threads"] for row in result["summary"]] == [1, 3]
    assert all(row["ratio_median"] > 0 for row in result["summary"])
