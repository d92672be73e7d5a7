"""Every consuming handler of every service has a unit test here: a subscription added to a service's
``build()`` without one fails this test, naming it."""

from __future__ import annotations

import re
from pathlib import Path

from postpay.bootstrap import SERVICES, service_builder
from tests.fakes.service import ServiceUnderTest

HERE = Path(__file__).resolve().parent
for _name in SERVICES:
    service_builder(_name)  # imported while collecting (the signup's web app is slow to import), not timed


def test_each_subscription_is_delivered_to_by_a_handler_test() -> None:
    delivered: dict[str, set[str]] = {}
    for path in HERE.glob("test_*.py"):
        text = path.read_text()
        service = re.search(r'ServiceUnderTest\("(\w+)"', text)
        if service:
            delivered.setdefault(service.group(1), set()).update(re.findall(r'\.deliver\(\s*"(\w+)"', text))
    untested = []
    for name in SERVICES:
        with ServiceUnderTest(name) as built:
            untested += [s.queue for s in built.service.subscriptions if s.name not in delivered.get(name, set())]
    assert delivered, "no handler test found"
    assert untested == []
