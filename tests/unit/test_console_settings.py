"""The console believes X-Forwarded-For only from the proxies it is given, as the signup does: addresses
or networks, never '*' nor a network that holds every address (anyone could then claim any address,
slip past the per-address login limit and sign the audit log with it)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from postpay.console.server import uvicorn_config
from postpay.console.settings import ConsoleSettings
from postpay.console.web import Console
from shared.clock import ManualClock


@pytest.mark.parametrize("everyone", ["*", "10.0.0.0/8,*", "0.0.0.0/0", "::/0", "proxy.internal"])
def test_the_console_refuses_to_trust_everyone_or_a_name(everyone: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="console_forwarded_allow_ips"):
        ConsoleSettings(console_forwarded_allow_ips=everyone)
    monkeypatch.setenv("POSTPAY_CONSOLE_FORWARDED_ALLOW_IPS", everyone)
    with pytest.raises(ValidationError):
        ConsoleSettings()


def console(allowed: str) -> Console:
    settings = ConsoleSettings(console_forwarded_allow_ips=allowed, console_port=0)
    return Console(
        db=None,
        bus=None,
        whmcs=None,
        solusvm=None,
        settings=settings,  # type: ignore[arg-type]
        clock=ManualClock(datetime(2026, 11, 1, tzinfo=UTC)),
        timezone="UTC",
        invoicer_settings=None,
        queues=frozenset(),
    )


def test_the_server_believes_only_the_networks_given() -> None:
    config = uvicorn_config(console("10.244.0.0/16, 192.0.2.7"))
    assert config.proxy_headers
    assert config.forwarded_allow_ips == ["10.244.0.0/16", "192.0.2.7/32"]


def test_without_proxies_no_forwarded_header_is_read() -> None:
    assert not uvicorn_config(console("")).proxy_headers
