"""The signup JSON API: what a separate frontend relies on, and schemathesis against its OpenAPI
(no 5xx, no answer outside the documented schema), bounded to a few seconds."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance

from services.signup.schema import tables
from services.signup.web import create_app
from shared.db import Database
from tests.support.enrollment import STRONG_PASSWORD, signup_settings, unique_email


@pytest.fixture
def app(tmp_path: Path) -> Iterator[FastAPI]:
    """The web app alone: the API writes the outbox, no bus or upstream is needed to answer."""
    db = Database(f"sqlite:///{tmp_path / 'signup.sqlite'}")
    tables.metadata.create_all(db.engine)
    yield create_app(db, signup_settings(registrations_per_ip=1000), solusvm=None)
    db.dispose()


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, base_url="http://testserver") as test_client:
        yield test_client


def register(client: TestClient, **changes: object) -> object:
    body = {"name": "Grace Hopper", "company": "", "email": unique_email(), "password": STRONG_PASSWORD, **changes}
    return client.post("/api/v1/signups", json=body)


def test_a_registration_is_accepted_and_its_progress_readable(client: TestClient) -> None:
    response = register(client)
    assert response.status_code == 202  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert body["status"] == "awaiting_verification"
    progress = client.get(body["status_url"])
    assert progress.status_code == 200 and progress.json()["signup_id"] == body["signup_id"]


def test_registering_the_same_email_again_is_a_new_registration_that_replaces_the_first(client: TestClient) -> None:
    email = unique_email()
    first = register(client, email=email).json()  # type: ignore[attr-defined]
    again = register(client, email=email.upper())
    assert again.status_code == 202 and again.json()["signup_id"] != first["signup_id"]  # type: ignore[attr-defined]
    assert client.get(first["status_url"]).json()["status"] == "awaiting_verification", (
        "the replaced one tells nothing more"
    )


def test_invalid_fields_are_each_explained(client: TestClient) -> None:
    response = register(client, name="", email="not-an-email", password="short")
    assert response.status_code == 422  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert body["code"] == "invalid"
    assert {error["field"] for error in body["errors"]} == {"name", "email", "password"}


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        "text",
        {"name": "x"},
        {"name": 1, "email": [], "password": {}},
        {"name": "A B", "email": "a@b.co", "password": STRONG_PASSWORD, "admin": True},
    ],
)
def test_malformed_bodies_are_422_not_500(client: TestClient, body: object) -> None:
    response = client.post("/api/v1/signups", json=body)
    assert response.status_code == 422 and response.json()["code"] == "invalid"


def test_a_form_posted_cross_site_is_not_json_and_is_refused(client: TestClient) -> None:
    response = client.post(
        "/api/v1/signups",
        content=b'{"name":"A","email":"a@b.co","password":"x"}',
        headers={"Content-Type": "text/plain"},
    )
    assert response.status_code == 422


def test_unknown_signup_is_404_and_a_bad_id_422(client: TestClient) -> None:
    assert client.get(f"/api/v1/signups/{uuid.uuid4()}").status_code == 404
    assert client.get("/api/v1/signups/not-a-uuid").status_code == 422
    assert client.post(f"/api/v1/signups/{uuid.uuid4()}/resend").status_code == 404


def test_resend_is_accepted(client: TestClient) -> None:
    signup_id = register(client).json()["signup_id"]  # type: ignore[attr-defined]
    response = client.post(f"/api/v1/signups/{signup_id}/resend")
    assert response.status_code == 202 and response.json()["status"] == "awaiting_verification"


def test_the_openapi_document_describes_every_route(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert set(paths) == {
        "/api/v1/signups",
        "/api/v1/signups/{signup_id}",
        "/api/v1/signups/{signup_id}/resend",
        "/api/v1/panel/{client_id}",
        "/api/v1/panel/{client_id}/sso",
        "/api/v1/panel/{client_id}/finish",
    }
    assert paths["/api/v1/signups"]["post"]["requestBody"]["content"]["application/json"]


def test_the_api_honours_its_own_schema(app: FastAPI) -> None:
    """Every operation, with generated valid and invalid input: never a 5xx, never an undocumented answer."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 6

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None
        )
        def honours_schema(case: schemathesis.Case) -> None:
            # A schema cannot say "not a common password": valid-looking input may still be refused (422).
            case.call_and_validate(excluded_checks=[positive_data_acceptance])

        honours_schema()
