"""``postpay consents list``: an operator reads the consent ledger by email or WHMCS client id."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from postpay.bootstrap import service_builder
from postpay.cli import app
from services.signup import store
from shared import migrations
from shared.db import Database
from shared.dependencies import Dependencies


@pytest.fixture
def database_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    monkeypatch.setenv("POSTPAY_DATABASE_URL", url)
    db = Database(url)
    migrations.upgrade(db, service_builder("signup")(Dependencies(whmcs=None, solusvm=None, mailer=None)))
    accepted_at = datetime(2026, 11, 25, 9, 30, tzinfo=UTC)
    with db.transaction() as session:
        for email, client_id in (("Ada@example.com", 42), ("grace@example.com", 43)):
            signup_id = uuid.uuid4()
            store.insert_signup(
                session,
                signup_id=signup_id,
                email=email,
                email_key=email.casefold(),
                name="N",
                company="",
                encrypted_password="x",
                registration_ip=None,
                now=accepted_at,
            )
            for kind, version in (("terms_of_service", "2026-10"), ("postpay_terms", "2026-11")):
                store.add_consent(
                    session,
                    signup_id=signup_id,
                    email=email,
                    whmcs_client_id=client_id,
                    kind=kind,
                    url=f"https://example.com/{kind}",
                    version=version,
                    accepted_at=accepted_at,
                    ip_address="203.0.113.7",
                    user_agent="Mozilla/5.0 Test",
                )
    db.dispose()
    return url


def test_consents_by_email_any_case_as_json(database_url: str) -> None:
    result = CliRunner().invoke(app, ["consents", "list", "--email", "ADA@EXAMPLE.COM", "--json"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert [(r["kind"], r["version"]) for r in records] == [
        ("terms_of_service", "2026-10"),
        ("postpay_terms", "2026-11"),
    ]
    assert {(r["whmcs_client_id"], r["ip_address"], r["accepted_at"]) for r in records} == {
        (42, "203.0.113.7", "2026-11-25T09:30:00Z")
    }


def test_consents_by_client_id_as_a_table(database_url: str) -> None:
    result = CliRunner().invoke(app, ["consents", "list", "--client-id", "43"])
    assert result.exit_code == 0, result.output
    assert "grace@example.com" in result.output and "postpay_terms" in result.output and "Ada@" not in result.output


def test_no_consent_is_said_and_fails(database_url: str) -> None:
    result = CliRunner().invoke(app, ["consents", "list", "--email", "nobody@example.com"])
    assert result.exit_code == 1 and "No consent recorded" in result.output


def test_without_a_customer_the_latest_acceptances_are_listed(database_url: str) -> None:
    result = CliRunner().invoke(app, ["consents", "list", "--limit", "3", "--json"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    # The latest three of four acceptances, oldest first: Ada's second, then both of Grace's.
    assert [(r["email"], r["kind"]) for r in records] == [
        ("Ada@example.com", "postpay_terms"),
        ("grace@example.com", "terms_of_service"),
        ("grace@example.com", "postpay_terms"),
    ]
