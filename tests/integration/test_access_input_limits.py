"""Input limits (issue 15, item 8): a request body limit answered 413 before anything is parsed, a real
password-strength check with every rule shown on the form up front, names that WHMCS templates could
mis-render refused, and a Content-Security-Policy on every page."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.signup.schema import signups, tables
from services.signup.web import create_app
from shared.db import Database
from tests.support.enrollment import STRONG_PASSWORD, csrf_from, signup_settings, unique_email


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'signup.sqlite'}")
    tables.metadata.create_all(database.engine)
    yield database
    database.dispose()


@pytest.fixture
def app(db: Database) -> FastAPI:
    return create_app(db, signup_settings(registrations_per_ip=10_000), solusvm=None)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, base_url="http://testserver", follow_redirects=False) as test_client:
        yield test_client


def stored(db: Database) -> int:
    with db.transaction() as session:
        return len(session.execute(signups.select()).all())


def test_a_20_mb_json_body_is_refused_with_413_before_it_is_parsed(client: TestClient, db: Database) -> None:
    huge = b'{"name": "Ada Lovelace", "email": "ada@example.com", "password": "' + b"x" * (20 * 1024 * 1024) + b'"}'
    response = client.post("/api/v1/signups", content=huge, headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and response.json()["code"] == "too_large"
    assert stored(db) == 0


def test_a_large_body_without_a_length_is_refused_too(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(200):
            yield b"x" * 1024

    response = client.post("/api/v1/signups", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413


def test_a_large_form_post_gets_a_413_page(client: TestClient) -> None:
    token = csrf_from(client.get("/signup").text)
    response = client.post("/signup", data={"csrf_token": token, "name": "x" * (100 * 1024)})
    assert response.status_code == 413 and "<h1>" in response.text


def test_a_body_under_the_limit_is_read_as_before(client: TestClient) -> None:
    body = {"name": "Ada Lovelace", "company": "", "email": unique_email(), "password": STRONG_PASSWORD}
    assert client.post("/api/v1/signups", json=body).status_code == 202


@pytest.mark.parametrize("password", ["abcd123456", "Password2024!", "qwerty123456", "P@ssw0rd2024", "Welcome2024!"])
def test_an_easily_guessed_password_is_refused(client: TestClient, password: str) -> None:
    body = {"name": "Ada Lovelace", "company": "", "email": unique_email(), "password": password}
    response = client.post("/api/v1/signups", json=body)
    assert response.status_code == 422 and [e["field"] for e in response.json()["errors"]] == ["password"]


def test_every_password_rule_is_on_the_form_before_anything_is_submitted(client: TestClient) -> None:
    form = client.get("/signup").text
    for rule in ("at least 10 characters", "at most 128", "easy to guess", "your name or email address"):
        assert rule in form, rule


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "Ada <b>Lovelace</b>"),
        ("name", "Ada > Lovelace"),
        ("company", "<script>x</script>"),
        ("company", "A<B"),
    ],
)
def test_angle_brackets_in_a_name_are_refused_by_the_api_and_the_form(
    client: TestClient, db: Database, field: str, value: str
) -> None:
    body = {"name": "Ada Lovelace", "company": "", "email": unique_email(), "password": STRONG_PASSWORD, field: value}
    api = client.post("/api/v1/signups", json=body)
    assert api.status_code == 422 and [e["field"] for e in api.json()["errors"]] == [field]
    token = csrf_from(client.get("/signup").text)
    page = client.post("/signup", data={"csrf_token": token, **body})
    assert page.status_code == 422 and "not allowed" in page.text
    assert stored(db) == 0


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/signup",
        "/signup/check-email",
        "/signup/status",
        "/signup/terms",
        "/no-such-page",
        "/verify/not-a-token",
        "/sso/not-a-token",
        "/api/v1/signups/not-a-uuid",
        "/openapi.json",
        "/api/docs",
    ],
)
def test_every_page_carries_a_content_security_policy(client: TestClient, path: str) -> None:
    policy = client.get(path).headers.get("content-security-policy", "")
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy, policy
    assert "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy


def test_the_pages_work_under_their_policy_no_inline_style_or_script(client: TestClient) -> None:
    for path in ("/", "/signup", "/signup/check-email"):
        html = client.get(path).text
        assert "<style" not in html and "style=" not in html and "<script" not in html, path
    stylesheet = client.get("/assets/signup.css")
    assert stylesheet.status_code == 200 and stylesheet.headers["content-type"].startswith("text/css")
