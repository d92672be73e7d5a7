"""A signed WHMCS hook request works once (issue 15, item 6), on the real broker and PostgreSQL.

Each request carries a random nonce inside its signature; the signup service remembers it for the
freshness window, so the same request sent again (captured in a log, replayed by a proxy) is refused
and mints nothing, across replicas.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from services.signup import schema
from tests.support.access import real_enrollment  # noqa: F401 - fixtures used by name
from tests.support.enrollment import Enrollment, clean_upstreams, clock, panel_headers, unique_email, upstreams  # noqa: F401 - fixtures used by name

pytestmark = [pytest.mark.rabbit, pytest.mark.postgres]


def sso_links(enrollment: Enrollment) -> int:
    with enrollment.db.transaction() as session:
        return len(session.execute(select(schema.links.c.id).where(schema.links.c.purpose == "sso")).all())


@pytest.fixture
def client_id(real_enrollment: Enrollment) -> int:
    email = unique_email()
    real_enrollment.enroll(email)
    signup = real_enrollment.signup_row(email)
    assert signup is not None and signup.whmcs_client_id is not None
    return signup.whmcs_client_id


def test_the_same_signed_login_request_three_times_mints_one_link(real_enrollment: Enrollment, client_id: int) -> None:
    before = sso_links(real_enrollment)
    headers = panel_headers(client_id, "sso", clock=real_enrollment.deps.clock)
    answers = [real_enrollment.client.post(f"/api/v1/panel/{client_id}/sso", headers=headers) for _ in range(3)]
    assert [answer.status_code for answer in answers] == [200, 401, 401]
    assert all("replayed" in answer.json()["message"] for answer in answers[1:])
    assert sso_links(real_enrollment) == before + 1


def test_a_replay_is_refused_by_another_replica_too(real_enrollment: Enrollment, client_id: int) -> None:
    from fastapi.testclient import TestClient

    from services.signup.web import create_app

    headers = panel_headers(client_id, "sso", clock=real_enrollment.deps.clock)
    assert real_enrollment.client.post(f"/api/v1/panel/{client_id}/sso", headers=headers).status_code == 200
    other = create_app(
        real_enrollment.db, real_enrollment.settings, real_enrollment.deps.solusvm, clock=real_enrollment.deps.clock
    )
    with TestClient(other, base_url=real_enrollment.settings.public_url) as replica:
        assert replica.post(f"/api/v1/panel/{client_id}/sso", headers=headers).status_code == 401


def test_a_panel_request_works_once_too_and_fresh_requests_keep_working(
    real_enrollment: Enrollment, client_id: int
) -> None:
    headers = panel_headers(client_id, "panel", clock=real_enrollment.deps.clock)
    assert real_enrollment.client.get(f"/api/v1/panel/{client_id}", headers=headers).status_code == 200
    assert real_enrollment.client.get(f"/api/v1/panel/{client_id}", headers=headers).status_code == 401
    for _ in range(2):  # every page view signs a new request: each works
        fresh = panel_headers(client_id, "panel", clock=real_enrollment.deps.clock)
        assert real_enrollment.client.get(f"/api/v1/panel/{client_id}", headers=fresh).status_code == 200
