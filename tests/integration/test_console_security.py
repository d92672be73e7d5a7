"""The operator console refuses what an attacker or a careless operator would try: pages without a
session, a login from a forged form, guessed passwords past the limit, a POST without the session's CSRF
token or without a reason; and it records every login and action in the audit log."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from postpay.bootstrap import SERVICES, service_builder
from postpay.console.app import create_app
from postpay.console.settings import ConsoleSettings
from postpay.console.web import Console
from postpay.operators import accounts, audit
from postpay.operators.schema import console_definition
from services.invoicer import holds_store
from services.invoicer import store as invoicer_store
from services.invoicer.public import tables as invoicer_tables
from shared import migrations
from shared.bus.memory import InMemoryBus
from shared.bus.topology import Naming
from shared.clock import ManualClock
from shared.db import Database
from shared.dependencies import Dependencies
from shared.periods import BillingPeriod
from shared.upstream.whmcs_models import InvoiceLine

PASSWORD = "Lantern-Orchid-7731"
NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


@pytest.fixture
def console(tmp_path: Path) -> Iterator[Console]:
    db = Database(f"sqlite:///{tmp_path / 'console.sqlite'}")
    deps = Dependencies(whmcs=None, solusvm=None, mailer=None)
    for name in SERVICES:
        migrations.upgrade(db, service_builder(name)(deps))
    migrations.upgrade(db, console_definition())
    with db.transaction() as session:
        accounts.add_operator(session, "ada", PASSWORD, created_by="test", now=NOW)
    bus = InMemoryBus(naming=Naming("t"))
    bus.declare(service_builder("invoicer")(deps).subscriptions)
    yield Console(
        db=db,
        bus=bus,
        whmcs=None,
        solusvm=None,
        settings=ConsoleSettings(console_login_attempts=3),
        clock=ManualClock(NOW),
        timezone="UTC",
        invoicer_settings=None,
        queues=frozenset({"invoicer.create_invoice"}),
    )
    db.dispose()


def client(console: Console) -> TestClient:
    return TestClient(create_app(console), follow_redirects=False)


def login(http: TestClient, username: str = "ada", password: str = PASSWORD) -> object:
    form = http.get("/login")
    token = re.search(r'name="login_token" value="([^"]+)"', form.text).group(1)  # type: ignore[union-attr]
    return http.post("/login", data={"login_token": token, "username": username, "password": password})


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/customers",
        "/invoices",
        "/parking",
        "/audit",
        "/periods/2026-10",
        "/customers/42",
        "/invoices/7",
        "/holds",
        "/holds/2026-10/42",
    ],
)
def test_every_page_needs_a_session(console: Console, path: str) -> None:
    response = client(console).get(path)
    assert response.status_code == 303 and response.headers["location"] == "/login"


def test_a_good_login_opens_a_strict_httponly_session_and_is_audited(console: Console) -> None:
    http = client(console)
    response = login(http)
    assert response.status_code == 303
    cookie = response.headers["set-cookie"]
    assert (
        "postpay_console=" in cookie
        and "HttpOnly" in cookie
        and "SameSite=strict" in cookie.replace("Strict", "strict")
    )
    assert "Secure" not in cookie  # http origin; an https one marks it Secure (below)
    page = http.get("/")
    assert page.status_code == 200 and "Billing periods" in page.text and "ada" in page.text
    assert (
        page.headers["x-frame-options"] == "DENY"
        and "frame-ancestors 'none'" in page.headers["content-security-policy"]
    )
    with console.db.transaction() as session:
        assert [(e.action, e.outcome) for e in audit.latest(session)][:1] == [("login", "done")]


def test_https_console_marks_the_session_cookie_secure(console: Console) -> None:
    console.settings = ConsoleSettings(console_public_url="https://console.example.com")
    assert "Secure" in login(client(console)).headers["set-cookie"]


def test_a_login_form_from_elsewhere_is_refused(console: Console) -> None:
    response = client(console).post("/login", data={"login_token": "x" * 32, "username": "ada", "password": PASSWORD})
    assert response.status_code == 403 and "postpay_console=" not in response.headers.get("set-cookie", "")


def test_guessing_is_stopped_after_the_limit_even_with_the_right_password(console: Console) -> None:
    http = client(console)
    for _ in range(3):
        assert login(http, password="wrong-password-123").status_code == 401
    refused = login(http)
    assert refused.status_code == 429 and "postpay_console=" not in refused.headers.get("set-cookie", "")
    with console.db.transaction() as session:
        outcomes = [e.outcome for e in audit.latest(session) if e.action == "login"]
    assert outcomes[:4] == ["refused", "failed", "failed", "failed"]


def test_an_unknown_user_and_a_wrong_password_get_the_same_answer(console: Console) -> None:
    http = client(console)
    nobody, wrong = login(http, username="mallory"), login(http, password="wrong-password-123")
    assert nobody.status_code == wrong.status_code == 401
    assert "Wrong username or password." in nobody.text and "Wrong username or password." in wrong.text


def test_posts_need_the_session_csrf_token_and_a_reason(console: Console) -> None:
    http = client(console)
    login(http)
    token = csrf_of(http.get("/parking/invoicer.create_invoice").text)
    forged = http.post("/parking/invoicer.create_invoice/purge", data={"all": "yes", "reason": "cleanup"})
    assert forged.status_code == 403
    wrong = http.post(
        "/parking/invoicer.create_invoice/purge",
        data={"all": "yes", "reason": "cleanup", "csrf_token": "not-the-token"},
    )
    assert wrong.status_code == 403
    no_reason = http.post(
        "/parking/invoicer.create_invoice/purge", data={"all": "yes", "reason": " ", "csrf_token": token}
    )
    assert no_reason.status_code == 400
    done = http.post(
        "/parking/invoicer.create_invoice/requeue", data={"all": "yes", "reason": "GBP priced now", "csrf_token": token}
    )
    assert done.status_code == 303
    with console.db.transaction() as session:
        entry = audit.latest(session)[0]
    assert (entry.actor, entry.action, entry.target, entry.reason) == (
        "ada",
        "parking.requeue",
        "invoicer.create_invoice",
        "GBP priced now",
    )


def test_logout_ends_the_session_for_good(console: Console) -> None:
    http = client(console)
    login(http)
    stolen = http.cookies.get("postpay_console")
    token = csrf_of(http.get("/").text)
    assert http.post("/logout", data={"csrf_token": token}).status_code == 303
    replay = TestClient(create_app(console), follow_redirects=False, cookies={"postpay_console": stolen})
    assert replay.get("/").status_code == 303


def test_a_disabled_operator_cannot_log_in_and_loses_open_sessions(console: Console) -> None:
    http = client(console)
    login(http)
    with console.db.transaction() as session:
        accounts.disable_operator(session, "ada", actor="test", reason="left", now=NOW)
    assert http.get("/").status_code == 303
    assert login(client(console)).status_code == 401


def test_weak_passwords_and_odd_usernames_are_refused(console: Console) -> None:
    with console.db.transaction() as session:
        for username, password in (("bob", "short"), ("bob", "bob-is-the-password"), ("Bob Smith", PASSWORD)):
            with pytest.raises(accounts.OperatorError):
                accounts.add_operator(session, username, password, created_by="test", now=NOW)
        with pytest.raises(accounts.OperatorError):
            accounts.add_operator(session, "ada", PASSWORD + "x", created_by="test", now=NOW)


def test_passwords_are_stored_as_argon2id_hashes(console: Console) -> None:
    from sqlalchemy import select

    from postpay.operators.schema import operators

    with console.db.transaction() as session:
        stored = session.execute(select(operators.c.password_hash)).scalar_one()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


def hold_one(console: Console, client_id: int = 42, period: str = "2026-10") -> None:
    """A held invoice, as the invoicer keeps one (its ledger row held, the hold with its reason)."""
    with console.db.transaction() as session:
        invoicer_store.settle(
            session, client_id, period, f"postpay:{client_id}:{period}", invoicer_store.HELD, NOW, fence=None
        )
        holds_store.keep(
            session,
            client_id,
            BillingPeriod.parse(period),
            holds_store.HELD,
            reasons=[holds_store.Reason("total-over-ceiling", "total USD 744000000.00 is above the ceiling")],
            currency="USD",
            lines=[InvoiceLine("web (#7, plan Broken): 744 hours", Decimal("744000000.00"))],
            now=NOW,
        )


def hold_status(console: Console) -> str:
    with console.db.transaction() as session:
        hold = holds_store.get(session, 42, "2026-10")
    assert hold is not None
    return hold.status


@pytest.mark.parametrize("path", ["/holds/2026-10/42/release", "/holds/2026-10/42/reject", "/holds/2026-10/resume"])
def test_hold_decisions_need_the_session_csrf_token_and_a_reason(console: Console, path: str) -> None:
    hold_one(console)
    with console.db.transaction() as session:
        holds_store.pause(session, "2026-10", held=1, seen=1, now=NOW)
    http = client(console)
    assert http.post(path, data={"reason": "looks fine"}).status_code == 303  # no session: to the login page
    login(http)
    token = csrf_of(http.get("/holds/2026-10/42").text)
    assert http.post(path, data={"reason": "looks fine"}).status_code == 403
    assert http.post(path, data={"reason": "looks fine", "csrf_token": "not-the-token"}).status_code == 403
    assert http.post(path, data={"reason": "  ", "csrf_token": token}).status_code == 400
    assert hold_status(console) == "held"
    with console.db.transaction() as session:
        assert holds_store.pause_of(session, "2026-10").active  # type: ignore[union-attr]
        assert not [e for e in audit.latest(session) if e.action.startswith("holds.")]
        assert invoicer_store.entry(session, 42, "2026-10").status == "held"  # type: ignore[union-attr]


def test_a_release_from_the_console_is_the_cli_s_release_and_is_audited_with_who_and_why(console: Console) -> None:
    hold_one(console)
    http = client(console)
    login(http)
    listed = http.get("/holds").text
    assert "total-over-ceiling" in listed and "USD 744000000.00" in listed
    token = csrf_of(http.get("/holds/2026-10/42").text)
    done = http.post("/holds/2026-10/42/release", data={"reason": "plan confirmed by sales", "csrf_token": token})
    assert done.status_code == 303
    assert hold_status(console) == "released"
    again = http.post("/holds/2026-10/42/reject", data={"reason": "changed my mind", "csrf_token": token})
    assert again.status_code == 409 and "not waiting" in again.text
    with console.db.transaction() as session:
        entry = audit.latest(session)[0]
        (history,) = [row for row in holds_store.history(session, "2026-10", 42) if row.action == "released"]
        assert invoicer_store.entry(session, 42, "2026-10").status == "releasing"  # type: ignore[union-attr]
        outbox = session.execute(select(invoicer_tables.outbox.table)).all()
    assert (entry.actor, entry.action, entry.target, entry.reason) == (
        "ada",
        "holds.release",
        "client 42, 2026-10",
        "plan confirmed by sales",
    )
    assert (history.actor, history.reason) == ("ada (console)", "plan confirmed by sales")
    assert [row.event_type for row in outbox] == ["InvoiceReleased"]


def test_resuming_a_paused_month_from_the_console_releases_what_it_kept(console: Console) -> None:
    with console.db.transaction() as session:
        invoicer_store.settle(session, 43, "2026-10", "postpay:43:2026-10", invoicer_store.PAUSED, NOW, fence=None)
        holds_store.keep(
            session,
            43,
            BillingPeriod.parse("2026-10"),
            holds_store.PAUSED,
            reasons=(),
            currency="EUR",
            lines=[InvoiceLine("db (#8, plan S): 31 hours", Decimal("0.90"))],
            now=NOW,
        )
        holds_store.pause(session, "2026-10", held=10, seen=12, now=NOW)
    http = client(console)
    login(http)
    listed = http.get("/holds").text
    assert "2026-10 is paused" in listed and "EUR 0.90" in listed
    done = http.post(
        "/holds/2026-10/resume", data={"reason": "the broken plan is fixed", "csrf_token": csrf_of(listed)}
    )
    assert done.status_code == 303
    with console.db.transaction() as session:
        assert not holds_store.pause_of(session, "2026-10").active  # type: ignore[union-attr]
        assert holds_store.get(session, 43, "2026-10").status == "released"  # type: ignore[union-attr]
        entry = audit.latest(session)[0]
    assert (entry.actor, entry.action, entry.reason, entry.detail) == (
        "ada",
        "holds.resume",
        "the broken plan is fixed",
        "1 paused invoice(s) released",
    )
