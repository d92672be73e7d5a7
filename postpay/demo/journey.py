"""Signing a demo customer up the way a person would, through the signup web app's HTTP endpoints:
the form, the verification link from the captured email and its confirm button, the terms, and the
wait until enrolled.

Each customer gets a client of their own (their own cookies), as each person has their own browser.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import httpx

from postpay.demo.scenario import CustomerSpec
from simulators.smtp import SmtpCapture, text_of

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_TERMS_BOX = re.compile(r'type="checkbox"[^>]*name="(accept_[a-z_]+)"|name="(accept_[a-z_]+)"[^>]*type="checkbox"')
_VERIFY_LINK = re.compile(r"https?://\S+/verify/[A-Za-z0-9_\-.]+")
_CONFIRM_FORM = re.compile(r'<form method="post" action="(/verify/[^"]+)"')


class JourneyError(RuntimeError):
    """A step of the signup journey did not go as a customer would expect."""


@dataclass(frozen=True)
class Enrolled:
    spec: CustomerSpec
    whmcs_client_id: int
    solusvm_user_id: int


Step = Callable[[str], None]


class ScriptedSignup:
    """A customer signing up through the real signup pages over HTTP, as a browser would: the demo's."""

    def __init__(
        self, signup_url: str, smtp: SmtpCapture, *, whmcs_url: str, solusvm_url: str, timeout: float = 30.0
    ) -> None:
        self.signup_url = signup_url
        self.smtp = smtp
        self.whmcs_url = whmcs_url
        self.solusvm_url = solusvm_url
        self.timeout = timeout

    def enroll(self, customer: CustomerSpec, step: Step = lambda _: None) -> Enrolled:
        with httpx.Client(base_url=self.signup_url, timeout=10, follow_redirects=False) as browser:
            landing = browser.get("/")
            _expect(landing, 200, "the landing page")
            form = browser.get("/signup")
            password = f"demo-{secrets.token_urlsafe(12)}-9"
            registered = browser.post(
                "/signup",
                data={
                    "csrf_token": _csrf(form.text),
                    "name": customer.name,
                    "company": customer.company,
                    "email": customer.email,
                    "password": password,
                    "currency": customer.currency,
                    "country": "DE" if customer.currency == "EUR" else "US",
                },
            )
            _expect(registered, 303, "registration")
            step("registered")
            link = self._verification_link(customer.email)
            confirm = browser.get(_path_of(link))
            _expect(confirm, 200, "the verification link")
            step("opened the link from the verification email")
            verified = browser.post(_confirm_action(confirm.text), data={"csrf_token": _csrf(confirm.text)})
            _expect(verified, 303, "confirming the email address")
            step("confirmed the email address")
            terms = self._wait(
                lambda: _if(browser.get("/signup/terms"), lambda r: _TERMS_BOX.search(r.text)), "the terms"
            )
            boxes = {a or b for a, b in _TERMS_BOX.findall(terms.text)}
            accepted = browser.post(
                "/signup/terms", data={"csrf_token": _csrf(terms.text), **dict.fromkeys(boxes, "yes")}
            )
            _expect(accepted, 303, "accepting the terms")
            step(f"accepted {len(boxes)} terms")
            self._wait(lambda: _if(browser.get("/signup/status"), lambda r: "<h1>Enrolled</h1>" in r.text), "enrolment")
            step("enrolled")
        return Enrolled(customer, self._whmcs_client_id(customer.email), self._solusvm_user_id(customer.email))

    def _verification_link(self, email: str) -> str:
        def has_link(message: EmailMessage) -> bool:
            return _VERIFY_LINK.search(text_of(message)) is not None

        try:
            (message,) = self.smtp.wait_for(to=email, matching=has_link, count=1, timeout=self.timeout)
        except TimeoutError as exc:
            raise JourneyError(f"no verification email reached {email} within {self.timeout:g} s") from exc
        found = _VERIFY_LINK.search(text_of(message))
        assert found is not None
        return found.group(0)

    def _wait(self, probe: Callable[[], Any], what: str) -> Any:
        deadline = time.monotonic() + self.timeout
        while True:
            found = probe()
            if found:
                return found
            if time.monotonic() > deadline:
                raise JourneyError(f"waited {self.timeout:g} s for {what}")
            time.sleep(0.05)

    def _whmcs_client_id(self, email: str) -> int:
        clients = httpx.get(f"{self.whmcs_url}/_sim/clients", params={"email": email}, timeout=10).json()["clients"]
        if len(clients) != 1:
            raise JourneyError(f"WHMCS has {len(clients)} clients with the email {email}, not one")
        return int(clients[0]["id"])

    def _solusvm_user_id(self, email: str) -> int:
        users = httpx.get(f"{self.solusvm_url}/_sim/users", params={"email": email}, timeout=10).json()["data"]
        if len(users) != 1:
            raise JourneyError(f"SolusVM 2 has {len(users)} users with the email {email}, not one")
        return int(users[0]["id"])


def _expect(response: httpx.Response, status: int, what: str) -> None:
    if response.status_code != status:
        raise JourneyError(f"{what} answered {response.status_code}, not {status}: {response.text[:300]}")


def _csrf(html: str) -> str:
    found = _CSRF.search(html)
    if found is None:
        raise JourneyError("a signup page came without its CSRF token")
    return found.group(1)


def _confirm_action(html: str) -> str:
    """Opening the link only shows a button (mail scanners open links too); its form does the confirming."""
    found = _CONFIRM_FORM.search(html)
    if found is None:
        raise JourneyError("the verification link's page has no confirm button")
    return found.group(1)


def _if(value: Any, condition: Callable[[Any], Any]) -> Any:
    return value if condition(value) else None


def _path_of(url: str) -> str:
    return "/" + url.split("://", 1)[1].split("/", 1)[1]
