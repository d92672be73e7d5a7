"""The redaction processor's fast path (keys already found ordinary) still redacts what it must."""

from __future__ import annotations

from pydantic import SecretStr

from shared.logging import REDACTED, _redact_processor


def test_a_plain_line_goes_on_uncopied_and_secrets_are_redacted_whatever_came_before() -> None:
    plain = {"event": "upstream call", "client_id": 7, "status": 200, "latency_ms": 1.5, "ok": True, "none": None}
    for _ in range(3):
        assert _redact_processor(None, "info", plain) is plain
    secret = {"event": "login", "client_id": 7, "password": "hunter2", "api_key": "k"}
    assert _redact_processor(None, "info", secret) == {
        "event": "login",
        "client_id": 7,
        "password": REDACTED,
        "api_key": REDACTED,
    }


def test_values_that_are_not_plain_are_looked_into_under_ordinary_keys() -> None:
    assert _redact_processor(None, "info", {"event": "x", "client_id": 1}) is not None
    nested = {"event": "x", "client_id": {"token": "t", "id": 1}, "detail": SecretStr("s")}
    assert _redact_processor(None, "info", nested) == {
        "event": "x",
        "client_id": {"token": REDACTED, "id": 1},
        "detail": REDACTED,
    }
