"""Nobody learns who is a customer (issue 15, item 7), on the real broker and PostgreSQL.

Registering, by the API or the form, and asking for a new link answer the same for an address that
is new, one with a signup waiting, and one already enrolled. The owner of an enrolled address gets an
email telling them how to log in instead of a link.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.support.access import real_enrollment  # noqa: F401 - fixtures used by name
from tests.support.enrollment import (  # noqa: F401 - fixtures used by name
    STRONG_PASSWORD,
    Enrollment,
    clean_upstreams,
    clock,
    is_verification,
    unique_email,
    upstreams,
)

pytestmark = [pytest.mark.rabbit, pytest.mark.postgres]


def is_login_notice(message: Any) -> bool:
    return "already" in str(message["Subject"]).lower()


def addresses(enrollment: Enrollment) -> dict[str, str]:
    """One address of each kind: enrolled, with a signup waiting for its link, and never seen."""
    enrolled, waiting = unique_email("enrolled"), unique_email("waiting")
    with enrollment.browser() as customer:
        enrollment.enroll(enrolled, customer)
    with enrollment.browser() as other:
        enrollment.register(waiting, client=other)
    enrollment.verification_links(waiting)
    return {"enrolled": enrolled, "waiting": waiting, "new": unique_email("new")}


def api_register(enrollment: Enrollment, email: str) -> Any:
    body = {"name": "Grace Hopper", "company": "", "email": email, "password": STRONG_PASSWORD}
    return enrollment.client.post("/api/v1/signups", json=body)


def same_page(html: str, email: str) -> str:
    """The page with what differs by design taken out: the address typed, and the browser's CSRF token."""
    return re.sub(r'name="csrf_token" value="[^"]+"', 'name="csrf_token" value="TOKEN"', html.replace(email, "EMAIL"))


def shape(answer: Any) -> tuple[object, ...]:
    body = answer.json()
    return answer.status_code, tuple(sorted(body)), body.get("status")


def test_the_api_answers_the_same_for_every_address_and_mails_an_enrolled_owner_how_to_log_in(
    real_enrollment: Enrollment,
) -> None:
    kinds = addresses(real_enrollment)
    answers = {kind: api_register(real_enrollment, email) for kind, email in kinds.items()}
    assert len({shape(answer) for answer in answers.values()}) == 1, {
        k: (a.status_code, a.text) for k, a in answers.items()
    }
    assert answers["new"].status_code == 202
    progress = {kind: real_enrollment.client.get(answer.json()["status_url"]) for kind, answer in answers.items()}
    assert len({(p.status_code, p.json()["status"]) for p in progress.values()}) == 1, "progress tells nothing either"

    (notice,) = real_enrollment.upstreams.smtp.wait_for(to=kinds["enrolled"], matching=is_login_notice)
    text = notice.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert real_enrollment.settings.whmcs_client_area_url in text and "/verify/" not in text
    assert len([m for m in real_enrollment.upstreams.smtp.to(kinds["enrolled"]) if is_verification(m)]) == 1, (
        "no new link"
    )


def test_the_form_answers_the_same_for_every_address(real_enrollment: Enrollment) -> None:
    kinds = addresses(real_enrollment)
    answers = {}
    for kind, email in kinds.items():
        with real_enrollment.browser() as someone:
            registered = real_enrollment.register(email, client=someone)
            page = someone.get(registered.headers.get("location", "/signup/check-email"))
            answers[kind] = (
                registered.status_code,
                registered.headers.get("location"),
                page.status_code,
                same_page(page.text, email),
            )
    assert answers["enrolled"] == answers["new"] == answers["waiting"]
    real_enrollment.upstreams.smtp.wait_for(to=kinds["enrolled"], matching=is_login_notice)


def test_the_resend_form_answers_the_same_for_every_address(real_enrollment: Enrollment) -> None:
    kinds = addresses(real_enrollment)
    answers = {}
    for kind, email in kinds.items():
        with real_enrollment.browser() as someone:
            resent = real_enrollment.resend(email, someone)
            answers[kind] = (resent.status_code, same_page(resent.text, email))
    assert answers["enrolled"] == answers["new"] == answers["waiting"]
    assert answers["new"][0] == 200
    real_enrollment.upstreams.smtp.wait_for(to=kinds["enrolled"], matching=is_login_notice)
