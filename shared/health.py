"""``/healthz``, ``/readyz`` and ``/metrics`` for every postpay process.

Liveness says the process serves; readiness says it can do its work: the database answers, the broker
answers and, in a consuming process, the consumer is connected. Kubernetes probes and Prometheus
scrape these.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shared.logging import get_logger
from shared.metrics import REGISTRY

log = get_logger("postpay.health")

Check = Callable[[], bool]


class HealthServer:
    def __init__(self, checks: dict[str, Check], *, host: str = "0.0.0.0", port: int = 0) -> None:
        self.checks = checks
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                if path == "/healthz":
                    self._answer(200, "application/json", b'{"status":"ok"}')
                elif path == "/readyz":
                    results = server.readiness()
                    status = 200 if all(results.values()) else 503
                    body = {"status": "ready" if status == 200 else "not ready", "checks": results}
                    self._answer(status, "application/json", json.dumps(body).encode())
                elif path == "/metrics":
                    self._answer(200, CONTENT_TYPE_LATEST, generate_latest(REGISTRY))
                else:
                    self._answer(404, "application/json", b'{"status":"not found"}')

            def _answer(self, status: int, content_type: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._http = ThreadingHTTPServer((host, port), Handler)
        self._http.daemon_threads = True
        self.port = self._http.server_address[1]
        self._thread = threading.Thread(target=self._http.serve_forever, name="health", daemon=True)

    def readiness(self) -> dict[str, bool]:
        results = {}
        for name, check in self.checks.items():
            try:
                results[name] = bool(check())
            except Exception:
                results[name] = False
        return results

    def start(self) -> HealthServer:
        self._thread.start()
        log.info("health endpoints serving", port=self.port)
        return self

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()
