"""A verification link is no login key (issue 15, item 2), on the real broker and PostgreSQL.

Issuing or using a link revokes every older one; no link works once the terms are accepted; single
sign-on from the signup site is offered only in the browser that accepted the terms, and only for
``POSTPAY_SIGNUP_SSO_MINUTES`` (15) after that. Later, the way in is WHMCS's client area.
"""

from __future__ import annotations

import pytest

from shared.clock import ManualClock
from tests.support.access import journey_state, real_enrollment, starts_session  # noqa: F401 - fixtures used by name
from tests.support.enrollment import Enrollment, clean_upstreams, clock, csrf_from, unique_email, upstreams  # noqa: F401 - fixtures used by name

pytestmark = [pytest.mark.rabbit, pytest.mark.postgres]


def test_after_enrolment_an_older_unused_link_gives_a_fresh_browser_no_session_and_no_login(
    real_enrollment: Enrollment,
) -> None:
    email = unique_email()
    real_enrollment.register(email)
    (older,) = real_enrollment.verification_links(email)
    assert real_enrollment.resend(email).status_code == 200
    _, newer = real_enrollment.verification_links(email, count=2)
    real_enrollment.open_link(newer)
    real_enrollment.accept_terms()
    real_enrollment.wait_enrolled()
    before = journey_state(real_enrollment)

    with real_enrollment.browser() as fresh:
        opened = real_enrollment.fetch_link(older, fresh)
        assert opened.status_code in (409, 410) and "Confirm my email address</button>" not in opened.text
        token = csrf_from(fresh.get("/signup").text)  # a valid CSRF token of this browser's own
        pressed = fresh.post("/verify/" + older.rsplit("/", 1)[1], data={"csrf_token": token})
        assert pressed.status_code in (409, 410) and not starts_session(pressed)
        assert fresh.get("/signup/status").status_code == 403
        assert fresh.post("/sso", data={"csrf_token": token}).status_code == 403
    assert journey_state(real_enrollment) == before, "no link used, no SolusVM 2 token asked for"


def test_issuing_a_link_revokes_every_older_one(real_enrollment: Enrollment) -> None:
    email = unique_email()
    real_enrollment.register(email)
    (first,) = real_enrollment.verification_links(email)
    real_enrollment.resend(email)
    _, second = real_enrollment.verification_links(email, count=2)
    real_enrollment.resend(email)
    *_, third = real_enrollment.verification_links(email, count=3)

    for older in (first, second):
        refused = real_enrollment.open_link(older)
        assert refused.status_code == 410 and "replaced by a newer" in refused.text and not starts_session(refused)
    assert real_enrollment.stage(email) == "awaiting_verification"
    assert real_enrollment.open_link(third).status_code == 303


def test_using_a_link_revokes_the_others_and_no_link_works_after_the_terms(real_enrollment: Enrollment) -> None:
    """A second browser may still continue before the terms (with a newer link); none may after them."""
    email = unique_email()
    real_enrollment.register(email)
    (first,) = real_enrollment.verification_links(email)
    assert real_enrollment.open_link(first).status_code == 303
    real_enrollment.wait_for_terms()
    with real_enrollment.browser() as other:
        real_enrollment.resend(email, other)
        _, second = real_enrollment.verification_links(email, count=2)
        real_enrollment.accept_terms()  # in the first browser, before the second link is used
        refused = real_enrollment.open_link(second, other)
        assert refused.status_code == 410 and not starts_session(refused)
        assert other.get("/signup/status").status_code == 403


def test_signup_site_sso_only_in_the_browser_that_accepted_the_terms_and_only_for_15_minutes(
    real_enrollment: Enrollment, clock: ManualClock
) -> None:
    email = unique_email()
    real_enrollment.register(email)
    (first,) = real_enrollment.verification_links(email)
    assert real_enrollment.open_link(first).status_code == 303
    real_enrollment.wait_for_terms()
    with real_enrollment.browser() as other:
        real_enrollment.resend(email, other)
        _, second = real_enrollment.verification_links(email, count=2)
        assert real_enrollment.open_link(second, other).status_code == 303, "verified in a second browser too"
        assert real_enrollment.accept_terms().status_code == 303  # the terms are accepted in the first one
        enrolled = real_enrollment.wait_enrolled()
        elsewhere = real_enrollment.wait_enrolled(other)

        assert "Log in to SolusVM 2</button>" not in elsewhere.text
        assert real_enrollment.settings.whmcs_client_area_url in elsewhere.text
        tokens = len(real_enrollment.upstreams.solusvm_state.tokens)
        refused = other.post("/sso", data={"csrf_token": csrf_from(other.get("/signup").text)})
        assert refused.status_code == 403 and len(real_enrollment.upstreams.solusvm_state.tokens) == tokens

    assert "Log in to SolusVM 2</button>" in enrolled.text
    assert real_enrollment.log_in_to_solusvm(enrolled).status_code == 302, "the browser that accepted the terms"

    clock.advance(minutes=15, seconds=1)
    later = real_enrollment.client.get("/signup/status")
    assert "Log in to SolusVM 2</button>" not in later.text
    assert real_enrollment.settings.whmcs_client_area_url in later.text
    token = csrf_from(real_enrollment.client.get("/signup").text)
    assert real_enrollment.client.post("/sso", data={"csrf_token": token}).status_code == 403
