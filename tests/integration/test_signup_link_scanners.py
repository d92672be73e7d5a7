"""Mail gateways (Microsoft Safe Links and the like) open the links in an email before the customer
does. So opening the verification link only shows a "Confirm my email address" button, and the
button's POST uses the link: opening it changes nothing however often, the button needs the page's
CSRF token, and a used, expired or tampered link gets the same clear page opened or confirmed."""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from services.signup import schema, throttle
from shared.clock import ManualClock
from tests.support.bus_helpers import wait_until
from tests.support.enrollment import (  # noqa: F401 - fixtures used by name
    Enrollment,
    clean_upstreams,
    clock,
    confirm_form_action,
    csrf_from,
    enrollment,
    path_of,
    unique_email,
    upstreams,
)

# The page's rules (its form, CSRF, which page a bad link gets) are the web's, not the database's: one
# database is enough for them. Whether opening the link writes nothing is checked on both.
WEB_RULE = pytest.mark.parametrize("database", ["sqlite"], indirect=True)


def state(enrollment: Enrollment) -> tuple[object, ...]:
    """Everything opening or confirming a link could write."""
    with enrollment.db.transaction() as session:
        links = session.execute(select(schema.links.c.id, schema.links.c.used_at)).all()
        stages = session.execute(
            select(schema.signups.c.id, schema.signups.c.stage, schema.signups.c.email_verified_at)
        ).all()
        limits = session.execute(select(throttle.rate_limits.c.key, throttle.rate_limits.c.hits)).all()
    return (
        tuple(sorted(map(str, links))),
        tuple(sorted(map(str, stages))),
        tuple(sorted(map(str, limits))),
        enrollment.count(schema.consents),
        enrollment.count(enrollment.signup.outbox.table),
    )


def browser(enrollment: Enrollment) -> TestClient:
    """Another browser (or a scanner): no cookies of the customer's."""
    return TestClient(enrollment.app, base_url=enrollment.settings.public_url, follow_redirects=False)


def starts_session(response: httpx.Response) -> bool:
    return "postpay_session" in response.headers.get("set-cookie", "")


def registered(enrollment: Enrollment, client: TestClient | None = None) -> tuple[str, str]:
    email = unique_email()
    assert enrollment.register(email, client=client).status_code == 303
    (link,) = enrollment.verification_links(email)
    return email, link


def test_opening_the_link_changes_nothing_however_often_then_the_customers_button_works(enrollment: Enrollment) -> None:
    email, link = registered(enrollment)
    before = state(enrollment)
    with browser(enrollment) as scanner:
        for _ in range(2):  # gateways fetch a link more than once (at delivery, again at the click)
            scanned = enrollment.fetch_link(link, scanner)
            assert scanned.status_code == 200 and heading(scanned.text) == "Confirm your email address"
            assert email in scanned.text and not starts_session(scanned)
    shown = enrollment.fetch_link(link)
    assert shown.status_code == 200 and not starts_session(shown)
    assert state(enrollment) == before, "opening the link wrote nothing"
    assert enrollment.stage(email) == "awaiting_verification"
    assert enrollment.client.get("/signup/terms").status_code == 403, "opening the link gave no verified session"

    confirmed = enrollment.confirm(shown)

    assert confirmed.status_code == 303 and confirmed.headers["location"] == "/signup/terms"
    assert starts_session(confirmed)
    wait_until(lambda: enrollment.stage(email) == "awaiting_terms", what="terms unlocked")
    assert 'type="checkbox"' in enrollment.wait_for_terms().text


@WEB_RULE
def test_the_confirm_page_is_a_plain_form_that_works_without_javascript(enrollment: Enrollment) -> None:
    _, link = registered(enrollment)
    html = enrollment.fetch_link(link).text
    assert re.search(r'<form method="post" action="/verify/[^"]+"', html)
    assert confirm_form_action(html) == path_of(link), "the button posts to the link itself"
    assert f'<input type="hidden" name="csrf_token" value="{csrf_from(html)}">' in html
    assert '<button class="button" type="submit">Confirm my email address</button>' in html
    assert "<script" not in html.lower() and "onclick" not in html.lower()
    assert '<meta name="robots" content="noindex">' in html


@WEB_RULE
def test_pressing_confirm_without_the_pages_csrf_token_changes_nothing(enrollment: Enrollment) -> None:
    email, link = registered(enrollment)
    shown = enrollment.fetch_link(link)
    with browser(enrollment) as other:
        token_of_another_browser = csrf_from(enrollment.fetch_link(link, other).text)
    before = state(enrollment)
    for token in ("", "forged-token", token_of_another_browser):
        refused = enrollment.confirm(shown, csrf_token=token)
        assert refused.status_code == 403 and "form has expired" in refused.text, token
        assert not starts_session(refused)
    assert state(enrollment) == before and enrollment.stage(email) == "awaiting_verification"
    assert enrollment.confirm(shown).status_code == 303, "the page's own token still works"


@WEB_RULE
def test_a_used_expired_or_tampered_link_gets_the_same_clear_page_opened_or_confirmed(
    enrollment: Enrollment, clock: ManualClock
) -> None:
    used_email, used = registered(enrollment)
    with browser(enrollment) as registering_elsewhere:  # this browser holds the first registration only
        _, unused = registered(enrollment, registering_elsewhere)
    used_page = enrollment.fetch_link(used)
    assert enrollment.confirm(used_page).status_code == 303
    wait_until(lambda: enrollment.stage(used_email) == "awaiting_terms", what="terms unlocked")
    base, token = unused.rsplit("/", 1)
    tampered = f"{base}/{token[:3]}{'A' if token[3] != 'A' else 'B'}{token[4:]}"  # another link id, same MAC
    before = state(enrollment)

    with browser(enrollment) as someone_else:
        csrf = csrf_from(someone_else.get("/signup").text)

        def opened_and_confirmed(link: str) -> list[tuple[int, str]]:
            opened = enrollment.fetch_link(link, someone_else)
            confirmed = someone_else.post(path_of(link), data={"csrf_token": csrf})
            return [(response.status_code, heading(response.text)) for response in (opened, confirmed)]

        assert opened_and_confirmed(used) == [(409, "This link has already been used")] * 2
        assert opened_and_confirmed(tampered) == [(400, "This link is not valid")] * 2
        clock.advance(hours=48)
        assert opened_and_confirmed(unused) == [(410, "This link has expired")] * 2
    assert state(enrollment) == before

    pressed_again = enrollment.confirm(used_page)  # the customer's second press (a double click, the back button)
    assert pressed_again.status_code == 409 and "Continue where you left off" in pressed_again.text
    assert state(enrollment) == before


def heading(html: str) -> str:
    found = re.search(r"<h1[^>]*>(.*?)</h1>", html)
    assert found, "no heading on the page"
    return found.group(1)
