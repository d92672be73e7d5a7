"""Serving the signup web app with uvicorn as a background task of the service."""

from __future__ import annotations

import threading
from collections.abc import Callable

import uvicorn
from fastapi import FastAPI

from shared.logging import get_logger

log = get_logger("postpay.signup.server")


def serve(app_factory: Callable[[], FastAPI], *, host: str, port: int) -> Callable[[threading.Event], None]:
    """A background task: serve the app on ``host:port`` until the stop event is set.

    uvicorn's proxy headers stay off: the app reads X-Forwarded-For itself (``web_support.client_ip``),
    believing only the configured proxies and never a hop that is not an IP address.
    """

    def run(stop: threading.Event) -> None:
        config = uvicorn.Config(
            app_factory(),
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            proxy_headers=False,
            server_header=False,
        )
        server = uvicorn.Server(config)

        def stop_when_told() -> None:
            stop.wait()
            server.should_exit = True

        watcher = threading.Thread(target=stop_when_told, daemon=True)
        watcher.start()
        log.info("signup web serving", host=host, port=port)
        server.run()
        log.info("signup web stopped")

    return run
