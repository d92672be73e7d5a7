"""Both simulators, each in its own process, built from the benchmark's world (see bench.simulator)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.processes import PYTHON, ROOT, Child, child_env, free_port, start, stop_all, wait_http
from bench.simulator import SOLUSVM_TOKEN, WHMCS_IDENTIFIER, WHMCS_SECRET
from bench.world import World


@dataclass
class Simulators:
    solusvm: Child
    whmcs: Child
    solusvm_url: str
    whmcs_url: str

    @property
    def children(self) -> list[Child]:
        return [self.solusvm, self.whmcs]

    def postpay_settings(self) -> dict[str, str]:
        """The POSTPAY_* variables that point postpay's upstream clients at these simulators."""
        return {
            "POSTPAY_SOLUSVM_URL": self.solusvm_url,
            "POSTPAY_SOLUSVM_API_TOKEN": SOLUSVM_TOKEN,
            "POSTPAY_WHMCS_URL": self.whmcs_url,
            "POSTPAY_WHMCS_IDENTIFIER": WHMCS_IDENTIFIER,
            "POSTPAY_WHMCS_SECRET": WHMCS_SECRET,
        }

    def capacity(self, product: str) -> dict[str, Any]:
        """The capacity model's figures of one simulator (requests admitted, shed, peak in flight)."""
        url = self.solusvm_url if product == "solusvm" else self.whmcs_url
        return dict(httpx.get(f"{url}/_sim/faults", timeout=30).json().get("capacity") or {})

    def whmcs_calls(self) -> dict[str, int]:
        return dict(httpx.get(f"{self.whmcs_url}/_sim/calls", timeout=30).json()["calls"])

    def whmcs_invoices(self) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.whmcs_url}/_sim/invoices", timeout=600)
        response.raise_for_status()
        return list(response.json()["invoices"])

    def stop(self) -> None:
        stop_all(self.children)


def start_simulators(
    world: World,
    *,
    solusvm_latency_ms: float,
    whmcs_latency_ms: float,
    log_dir: Path,
    timeout: float = 600.0,
    capacity: int | None = None,
    overload: str = "unavailable",
) -> Simulators:
    common = [
        "--clients",
        str(world.clients),
        "--baseline-clients",
        str(world.baseline_clients),
        "--vms",
        str(world.vms),
        "--period",
        world.period.key,
    ]
    ports = {"solusvm": free_port(), "whmcs": free_port()}
    latency = {"solusvm": solusvm_latency_ms, "whmcs": whmcs_latency_ms}
    limits = ["--capacity", str(capacity), "--overload", overload] if capacity else []
    children = {
        product: start(
            f"sim-{product}",
            "simulator",
            [
                PYTHON,
                "-m",
                "bench.simulator",
                product,
                *common,
                "--latency-ms",
                str(latency[product]),
                "--port",
                str(ports[product]),
                *limits,
            ],
            env=child_env({}),
            log_dir=log_dir,
            cwd=ROOT,
        )
        for product in ("solusvm", "whmcs")
    }
    urls = {product: f"http://127.0.0.1:{port}" for product, port in ports.items()}
    try:
        for product, child in children.items():
            # /_sim/clock is a control route: no injected latency, no authentication.
            wait_http(child, f"{urls[product]}/_sim/clock", timeout=timeout)
    except Exception:
        stop_all(list(children.values()))
        raise
    return Simulators(children["solusvm"], children["whmcs"], urls["solusvm"], urls["whmcs"])
