"""The fakes the handler tests run on (tests/fakes/) must not drift from the real adapters: each of a
fake's public methods is the adapter's method of the same name with the same signature (names, kinds,
defaults, annotations), except the test controls the fake lists in ``CONTROLS``, which the adapter must
not have. A renamed or re-typed adapter method, or a new parameter, fails here, not in production.
And each fake provides every method of its port (``shared.ports``), as the port declares it."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from shared.bus.memory import InMemoryPublisher
from shared.bus.rabbit_publish import RabbitPublisher
from shared.mail import SmtpMailer
from shared.ports import Mailer, Publisher, SolusVM, Whmcs
from shared.upstream.solusvm import SolusVMClient
from shared.upstream.whmcs import WhmcsClient
from tests.fakes.bus import FakePublisher
from tests.fakes.mailer import FakeMailer
from tests.fakes.solusvm import FakeSolusvm
from tests.fakes.whmcs import FakeWhmcs

PAIRS = [
    (FakeWhmcs, WhmcsClient),
    (FakeSolusvm, SolusVMClient),
    (FakeMailer, SmtpMailer),
    (FakePublisher, RabbitPublisher),
    (FakePublisher, InMemoryPublisher),
]


PORTS = [(FakeWhmcs, Whmcs), (FakeSolusvm, SolusVM), (FakeMailer, Mailer), (FakePublisher, Publisher)]


def public_methods(cls: type) -> dict[str, Any]:
    return {name: member for name, member in inspect.getmembers(cls, inspect.isfunction) if not name.startswith("_")}


def drift(fake: type, real: type) -> list[str]:
    """Every way ``fake`` is not ``real``: a method the adapter lacks, or a different signature."""
    controls = set(getattr(fake, "CONTROLS", ()))
    adapter = public_methods(real)
    problems = [
        f"{fake.__name__}.{name} is a test control but {real.__name__} has it too"
        for name in sorted(controls & adapter.keys())
    ]
    for name, method in sorted(public_methods(fake).items()):
        if name in controls:
            continue
        if name not in adapter:
            problems.append(f"{fake.__name__}.{name}: {real.__name__} has no such method")
            continue
        mine, theirs = inspect.signature(method), inspect.signature(adapter[name])
        if mine != theirs:
            problems.append(f"{fake.__name__}.{name}{mine} != {real.__name__}.{name}{theirs}")
    return problems


@pytest.mark.parametrize(("fake", "real"), PAIRS, ids=lambda c: c.__name__)
def test_every_method_of_the_fake_is_the_adapters_with_its_signature(fake: type, real: type) -> None:
    assert drift(fake, real) == []


@pytest.mark.parametrize(("fake", "real"), PAIRS, ids=lambda c: c.__name__)
def test_the_fake_declares_only_controls_that_exist(fake: type, real: type) -> None:
    assert set(getattr(fake, "CONTROLS", ())) <= set(public_methods(fake)) | set(vars(fake()))


@pytest.mark.parametrize(("fake", "port"), PORTS, ids=lambda c: c.__name__)
def test_the_fake_provides_its_port_as_declared(fake: type, port: type) -> None:
    declared = public_methods(port)
    assert declared, f"{port.__name__} declares no method"
    missing = sorted(declared.keys() - public_methods(fake).keys())
    assert missing == [], f"{fake.__name__} lacks {missing} of {port.__name__}"
    differing = [
        name for name, method in declared.items() if inspect.signature(getattr(fake, name)) != inspect.signature(method)
    ]
    assert differing == []
    if getattr(port, "_is_runtime_protocol", False):
        assert isinstance(fake(), port)


def test_drift_is_caught() -> None:
    class Renamed(FakeMailer):
        def send(self, message: Any, *, idempotency_key: str | None = None) -> str:
            return ""

    class Extra(FakeMailer):
        def send_later(self) -> None: ...

    class Retyped(FakeWhmcs):
        def get_client(self, client_id: str) -> Any:  # type: ignore[override]
            return None

    assert len(drift(Renamed, SmtpMailer)) == 1
    assert drift(Extra, SmtpMailer) == ["Extra.send_later: SmtpMailer has no such method"]
    assert len(drift(Retyped, WhmcsClient)) == 1
