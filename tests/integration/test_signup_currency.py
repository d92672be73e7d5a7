"""The customer's currency and country, from the form to WHMCS: a new client is created in the currency
chosen (its WHMCS id from POSTPAY_WHMCS_CURRENCY_IDS) and the country given, so its invoices come in
that currency; an existing client linked by email keeps its own, and the customer is told before
accepting the terms and in the welcome email."""

from __future__ import annotations

import uuid

from simulators.smtp import text_of
from simulators.whmcs.state import Client as WhmcsClientRecord
from tests.support.enrollment import (  # noqa: F401 - fixtures
    Enrollment,
    clean_upstreams,
    clock,
    csrf_from,
    enrollment,
    is_welcome,
    unique_email,
    upstreams,
)


def test_a_new_client_is_created_in_the_currency_and_country_chosen(enrollment: Enrollment) -> None:
    email = unique_email("eur")
    assert enrollment.register(email, currency="EUR", country="DE").status_code == 303
    (link,) = enrollment.verification_links(email)
    assert enrollment.open_link(link).status_code == 303
    terms = enrollment.wait_for_terms()
    (client,) = enrollment.whmcs_clients(email)
    currencies = enrollment.upstreams.whmcs.state.currencies
    assert (currencies[client.currency_id].code, client.country) == ("EUR", "DE")
    signup = enrollment.signup_row(email)
    assert signup is not None and (signup.currency, signup.country, signup.billing_currency) == ("EUR", "DE", "EUR")
    assert "invoiced monthly in EUR" in terms.text and "not EUR" not in terms.text


def test_an_existing_client_keeps_its_currency_and_the_customer_is_told_before_accepting(
    enrollment: Enrollment,
) -> None:
    email = unique_email("existing")
    state = enrollment.upstreams.whmcs.state
    with state.lock:  # the provider made this client before, in GBP
        state.add_client(
            WhmcsClientRecord(
                id=state.next_id("client"),
                uuid=str(uuid.uuid4()),
                owner_user_id=0,
                firstname="Ada",
                lastname="Lovelace",
                email=email,
                currency_id=3,
            )
        )
    assert enrollment.register(email, currency="USD", country="GB").status_code == 303
    (link,) = enrollment.verification_links(email)
    assert enrollment.open_link(link).status_code == 303
    terms = enrollment.wait_for_terms()
    (client,) = enrollment.whmcs_clients(email)
    assert state.currencies[client.currency_id].code == "GBP", "WHMCS does not convert a client's amounts: kept"
    assert "Your invoices will be in GBP, not USD." in terms.text
    form = {"csrf_token": csrf_from(terms.text), "accept_terms_of_service": "yes", "accept_postpay_terms": "yes"}
    assert enrollment.client.post("/signup/terms", data=form).status_code == 303
    enrollment.wait_enrolled()
    (welcome,) = enrollment.upstreams.smtp.wait_for(to=email, matching=is_welcome, count=1, timeout=20)
    assert "Your invoices are in GBP, not USD" in " ".join(text_of(welcome).split())


def test_an_api_registration_without_a_currency_gets_whmcs_defaults_as_before(enrollment: Enrollment) -> None:
    email = unique_email("api")
    body = {"name": "Grace Hopper", "email": email, "password": "Tr0ub4dor&3-horse-staple"}
    assert enrollment.client.post("/api/v1/signups", json=body).status_code == 202
    (link,) = enrollment.verification_links(email)
    assert enrollment.open_link(link, password=body["password"]).status_code == 303
    enrollment.wait_for_terms()
    (client,) = enrollment.whmcs_clients(email)
    default = enrollment.upstreams.whmcs.state.default_currency()
    assert (client.currency_id, client.country) == (default.id, enrollment.settings.whmcs_default_country)
    refused = enrollment.client.post("/api/v1/signups", json={**body, "email": unique_email(), "currency": "JPY"})
    assert refused.status_code == 422 and [e["field"] for e in refused.json()["errors"]] == ["currency"]
