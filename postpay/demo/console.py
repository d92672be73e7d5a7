"""The operator console in the demo (``--serve``): served on loopback only, with an operator ``demo``
whose random password is printed once; nothing else can reach it, and the next demo has another."""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass

import httpx

from postpay.console.server import console_for, serve
from postpay.console.settings import ConsoleSettings
from postpay.demo.stack import Stack
from postpay.operators import accounts
from postpay.operators.schema import console_definition
from shared import migrations
from simulators.smtp import free_port

USERNAME = "demo"


@dataclass
class DemoConsole:
    url: str
    username: str
    password: str
    stop: threading.Event


def start_console(stack: Stack, *, timeout: float = 15.0) -> DemoConsole:
    assert stack.system is not None
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # Loopback only, and no proxy in front: no X-Forwarded-For is believed.
    settings = ConsoleSettings(
        console_host="127.0.0.1", console_port=port, console_public_url=url, console_forwarded_allow_ips=""
    )
    migrations.upgrade(stack.system.db, console_definition())
    password = secrets.token_hex(12)  # hex never holds the username, as the password rules ask
    with stack.system.db.transaction() as session:
        accounts.add_operator(session, USERNAME, password, created_by="postpay demo", now=stack.clock.now())
    stop = threading.Event()
    thread = threading.Thread(
        target=serve(console_for(stack.system, settings)), args=(stop,), name="demo-console", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{url}/login", timeout=2).status_code == 200:
                return DemoConsole(url, USERNAME, password, stop)
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or not thread.is_alive():
            stop.set()
            raise RuntimeError(f"the operator console did not start on {url}")
        time.sleep(0.05)
