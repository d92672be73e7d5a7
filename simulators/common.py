"""Pieces both simulators share: a controllable clock, the fault admin routes, a server in a thread."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from simulators.faults import FaultConfig, FaultInjector, FaultRule


class SimClock:
    """Wall time, or a time a test sets and moves by hand."""

    def __init__(self, fixed: datetime | None = None) -> None:
        self._lock = threading.Lock()
        self._fixed = fixed
        self._offset = timedelta()

    def now(self) -> datetime:
        with self._lock:
            if self._fixed is not None:
                return self._fixed
            return datetime.now(UTC) + self._offset

    def set(self, moment: datetime) -> None:
        if moment.tzinfo is None:
            raise ValueError("the simulator clock takes timezone-aware times only")
        with self._lock:
            self._fixed = moment.astimezone(UTC)

    def advance(self, seconds: float) -> None:
        with self._lock:
            if self._fixed is not None:
                self._fixed += timedelta(seconds=seconds)
            else:
                self._offset += timedelta(seconds=seconds)

    def follow_wall_time(self) -> None:
        with self._lock:
            self._fixed = None
            self._offset = timedelta()


def admin_routes(faults: FaultInjector, clock: SimClock) -> list[Route]:
    """``/_sim/faults`` and ``/_sim/clock``: test and demo controls, not part of either product."""

    async def get_faults(request: Request) -> JSONResponse:
        body: dict[str, Any] = {"rules": [r.model_dump(mode="json") for r in faults.rules], "injected": faults.stats()}
        if faults.capacity.config.limit is not None:  # the capacity model's figures, when one is set
            body["capacity"] = faults.capacity.stats()
        return JSONResponse(body)

    async def put_faults(request: Request) -> JSONResponse:
        config = FaultConfig.model_validate(await request.json())
        faults.configure(config)
        return JSONResponse({"rules": len(config.rules)})

    async def add_fault(request: Request) -> JSONResponse:
        faults.add(FaultRule.model_validate(await request.json()))
        return JSONResponse({"rules": len(faults.rules)}, status_code=201)

    async def clear_faults(request: Request) -> JSONResponse:
        faults.clear()
        return JSONResponse({"rules": 0})

    async def get_clock(request: Request) -> JSONResponse:
        return JSONResponse({"now": clock.now().isoformat().replace("+00:00", "Z")})

    async def set_clock(request: Request) -> JSONResponse:
        body: dict[str, Any] = await request.json()
        if "now" in body:
            clock.set(datetime.fromisoformat(str(body["now"]).replace("Z", "+00:00")))
        if "advance_seconds" in body:
            clock.advance(float(body["advance_seconds"]))
        if body.get("follow_wall_time"):
            clock.follow_wall_time()
        return await get_clock(request)

    return [
        Route("/_sim/faults", get_faults, methods=["GET"]),
        Route("/_sim/faults", put_faults, methods=["PUT"]),
        Route("/_sim/faults", add_fault, methods=["POST"]),
        Route("/_sim/faults", clear_faults, methods=["DELETE"]),
        Route("/_sim/clock", get_clock, methods=["GET"]),
        Route("/_sim/clock", set_clock, methods=["POST"]),
    ]


def _not_a_simulated_drop(record: logging.LogRecord) -> bool:
    return not (record.exc_info and isinstance(record.exc_info[1], ConnectionAbortedError))


# A dropped connection is a fault the test asked for, not a server bug worth a traceback.
logging.getLogger("uvicorn.error").addFilter(_not_a_simulated_drop)


class ServerThread:
    """Serve an ASGI app on loopback from a background thread (tests, the demo).

    Port 0 picks a free port; ``url`` tells which one was taken.
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, *, log_level: str = "warning") -> None:
        # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on sockets whose proto says TCP, and
        # accepted sockets inherit it; with proto 0 every response stalls ~40 ms on delayed ACKs.
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.host = host
        self.port = self._socket.getsockname()[1]
        config = uvicorn.Config(
            app, log_level=log_level, lifespan="off", access_log=False, timeout_keep_alive=30, backlog=2048
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name=f"server-{self.port}", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _run(self) -> None:
        asyncio.run(self._server.serve(sockets=[self._socket]))

    def start(self, timeout: float = 10.0) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server on port {self.port} did not start")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout)
        self._socket.close()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
