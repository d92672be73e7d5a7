"""After a whole journey, the customer's password is nowhere postpay writes: not in a log line (ours
or a library's), not in an event body, not in any column of any table."""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from shared.db import Database
from shared.logging import configure_logging
from tests.support.enrollment import Enrollment, RecordingBus, unique_email
from tests.support.system import Upstreams

PASSWORD = "Zebra-Quartz-8812-Vortex"


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging("DEBUG", stream=stream)
    try:
        yield stream
    finally:
        configure_logging(os.environ.get("POSTPAY_TEST_LOG_LEVEL", "WARNING"))


def test_the_password_appears_in_no_log_line_event_or_column(
    bus: object, database: Database, captured_logs: io.StringIO, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    recording = RecordingBus(bus)
    with Upstreams() as upstreams, Enrollment(upstreams, recording, database).start() as enrollment:
        email = unique_email()
        assert enrollment.register(email, password=PASSWORD).status_code == 303
        (link,) = enrollment.verification_links(email)
        enrollment.open_link(link)
        enrollment.accept_terms()
        enrollment.log_in_to_solusvm(enrollment.wait_enrolled())

        # What the relay published is what the outboxes held: body and headers of every row.
        event_types = {b'"UserRegistered"', b'"EmailVerified"', b'"TermsAccepted"', b'"UserProvisioned"'}
        assert all(any(kind in body for body in recording.bodies) for kind in event_types), "every event was seen"
        assert not [body for body in recording.bodies if PASSWORD.encode() in body]

        for service in (enrollment.signup, enrollment.provisioner):
            with enrollment.db.transaction() as session:
                for table in service.metadata.sorted_tables:
                    for row in session.execute(select(table)).all():
                        assert not [v for v in row if PASSWORD in str(v)], f"{table.name} holds the password"
        signup = enrollment.signup_row(email)
        assert signup is not None and signup.encrypted_password is None

    logs = captured_logs.getvalue()
    assert "WHMCS client ready; password erased" in logs, "the journey's log lines were captured"
    assert PASSWORD not in logs
    assert not [record for record in caplog.records if PASSWORD in record.getMessage()]
