"""Unit tests of the SolusVM 2 client's parsing and error mapping, with a scripted transport."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
import structlog
from pydantic import SecretStr, ValidationError

from shared.logging import configure_logging
from shared.settings import UpstreamSettings
from shared.upstream.errors import (
    UpstreamAuthError,
    UpstreamNotFound,
    UpstreamOutcomeUnknown,
    UpstreamRateLimited,
    UpstreamUnavailable,
    UpstreamValidationError,
)
from shared.upstream.retries import RetryPolicy
from shared.upstream.solusvm import SolusVMClient
from shared.upstream.solusvm_connection import SolusVMResponseError
from shared.upstream.solusvm_models import PeriodUsage, SolusUser, UsagePlan, coerce_int

TOKEN = "unit-test-admin-token-0123456789"
MAY_START, MAY_END = datetime(2024, 5, 1, tzinfo=UTC), datetime(2024, 6, 1, tzinfo=UTC)
USER = {"id": 5, "email": "jane@example.com", "status": "active", "roles": [{"id": 2}], "billing_user_id": 9}
Responder = Callable[[httpx.Request], httpx.Response]


def client_for(responder: Responder, **options: Any) -> tuple[SolusVMClient, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return responder(request)

    options.setdefault("retry", RetryPolicy(max_attempts=3, initial_backoff=0.001, max_backoff=0.002))
    options.setdefault("sleep", lambda seconds: None)
    http = httpx.Client(transport=httpx.MockTransport(handle))
    return SolusVMClient("https://panel.example.com/", SecretStr(TOKEN), http=http, **options), seen


def answer(status: int, body: Any = None, **kwargs: Any) -> Responder:
    return lambda request: (
        httpx.Response(status, json=body, **kwargs) if body is not None else httpx.Response(status, **kwargs)
    )


class TestCoercion:
    @pytest.mark.parametrize(
        ("raw", "value"), [(5000, 5000), (5000.0, 5000), ("5000", 5000), (" 5000.0 ", 5000), ("-3", -3)]
    )
    def test_counts_from_ints_integral_floats_and_numeric_strings(self, raw: Any, value: int) -> None:
        assert coerce_int(raw) == value

    @pytest.mark.parametrize("raw", [7.5, "7.5", "seven", True, None, "", "NaN", "Infinity", [1]])
    def test_anything_else_is_refused(self, raw: Any) -> None:
        with pytest.raises(ValueError):
            coerce_int(raw)

    def test_plan_tokens_are_coerced(self) -> None:
        plan = UsagePlan.model_validate({"id": "3", "name": "S", "tokens_per_hour": "7", "tokens_per_month": 5000.0})
        assert (plan.id, plan.tokens_per_hour, plan.tokens_per_month) == (3, 7, 5000)
        with pytest.raises(ValidationError):
            UsagePlan.model_validate({"id": 3, "name": "S", "tokens_per_hour": 7.25, "tokens_per_month": 5000})

    @pytest.mark.parametrize(
        ("raw", "value"), [(42, 42), ("42", 42), (" 42 ", 42), (None, None), ("", None), ("ext-42", "ext-42")]
    )
    def test_billing_user_id_is_lenient(self, raw: Any, value: int | str | None) -> None:
        assert SolusUser.model_validate({**USER, "billing_user_id": raw}).billing_user_id == value

    def test_user_roles_limit_group_and_naive_time(self) -> None:
        user = SolusUser.model_validate(
            {
                **USER,
                "roles": [{"id": "1"}, 2],
                "limit_group": {"id": 4, "name": "Post-pay"},
                "created_at": "2024-05-01 10:00:00",
                "unknown": "ignored",
            }
        )
        assert user.roles == [1, 2] and user.limit_group_id == 4
        assert user.created_at == datetime(2024, 5, 1, 10, tzinfo=UTC)

    def test_offset_times_are_converted_to_utc(self) -> None:
        user = SolusUser.model_validate({**USER, "created_at": "2024-05-01T12:00:00+02:00"})
        assert user.created_at is not None and user.created_at.tzinfo == UTC and user.created_at.hour == 10


class TestErrorMapping:
    @pytest.mark.parametrize(
        ("status", "error"),
        [
            (401, UpstreamAuthError),
            (403, UpstreamAuthError),
            (404, UpstreamNotFound),
            (400, UpstreamValidationError),
            (409, UpstreamValidationError),
            (422, UpstreamValidationError),
        ],
    )
    def test_permanent_statuses_are_typed_and_not_retried(self, status: int, error: type[Exception]) -> None:
        client, seen = client_for(answer(status, {"message": "nope", "errors": {"email": ["taken"]}}))
        with pytest.raises(error) as caught:
            client.get_user(5)
        assert len(seen) == 1 and caught.value.status == status  # type: ignore[attr-defined]
        if isinstance(caught.value, UpstreamValidationError):
            assert caught.value.errors == {"email": ["taken"]}

    def test_422_errors_that_are_not_lists_are_tolerated(self) -> None:
        client, _ = client_for(answer(422, {"message": "bad", "errors": {"email": "taken"}}))
        with pytest.raises(UpstreamValidationError) as caught:
            client.create_user("a@example.com", "pw", billing_user_id=1)
        assert caught.value.errors == {"email": ["taken"]}

    @pytest.mark.parametrize("status", [500, 502, 503, 504])
    @pytest.mark.parametrize("body", [b'{"message":"Server Error"}', b"<html>Bad Gateway</html>", b""])
    def test_5xx_on_a_read_is_retried_then_unavailable(self, status: int, body: bytes) -> None:
        client, seen = client_for(lambda request: httpx.Response(status, content=body))
        with pytest.raises(UpstreamUnavailable) as caught:
            client.get_user(5)
        assert not isinstance(caught.value, UpstreamOutcomeUnknown)
        assert len(seen) == 3

    def test_5xx_on_a_write_is_outcome_unknown_and_sent_once(self) -> None:
        client, seen = client_for(answer(503, {"message": "Server Error"}))
        with pytest.raises(UpstreamOutcomeUnknown):
            client.patch_user(5, status="suspended")
        assert len(seen) == 1

    def test_html_200_is_not_the_api(self) -> None:
        maintenance = answer(200, content=b"<html>Down for Maintenance</html>", headers={"content-type": "text/html"})
        client, seen = client_for(maintenance)
        with pytest.raises(UpstreamUnavailable):
            client.get_user(5)
        assert len(seen) == 3
        writer, sent = client_for(maintenance)
        with pytest.raises(UpstreamOutcomeUnknown):
            writer.create_one_time_token(5)
        assert len(sent) == 1

    def test_429_keeps_retry_after_and_the_wait_honours_it(self) -> None:
        waits: list[float] = []
        client, seen = client_for(
            answer(429, {"message": "Too Many Attempts."}, headers={"Retry-After": "4"}), sleep=waits.append
        )
        with pytest.raises(UpstreamRateLimited) as caught:
            client.get_user(5)
        assert caught.value.retry_after == 4.0
        assert waits == [4.0, 4.0] and len(seen) == 3

    def test_a_body_that_breaks_the_model_is_a_permanent_response_error(self) -> None:
        client, seen = client_for(answer(200, {"data": {"id": 5, "status": "active"}}))
        with pytest.raises(SolusVMResponseError) as caught:
            client.get_user(5)
        assert "email" in str(caught.value) and len(seen) == 1


class TestRequests:
    def test_headers_and_urls(self) -> None:
        client, seen = client_for(answer(200, {"data": USER}))
        assert client.get_user(5).email == "jane@example.com"
        request = seen[0]
        assert str(request.url) == "https://panel.example.com/api/v1/users/5"
        assert request.headers["Authorization"] == f"Bearer {TOKEN}"
        assert request.headers["Accept"] == "application/json"
        assert request.headers["Content-Type"] == "application/json"

    def test_base_url_with_the_api_path_is_accepted(self) -> None:
        http = httpx.Client(transport=httpx.MockTransport(answer(200, {"data": USER})))
        client = SolusVMClient("https://panel.example.com/api/v1/", SecretStr(TOKEN), http=http)
        assert client.origin == "https://panel.example.com"
        assert client.sso_login_url("a/b+c=d&e") == "https://panel.example.com/auth/by_token?token=a%2Fb%2Bc%3Dd%26e"

    def test_create_sends_the_documented_body(self) -> None:
        client, seen = client_for(answer(201, {"data": USER}))
        client.create_user("jane@example.com", SecretStr("pw!"), billing_user_id=9, limit_group_id=1, roles=[2])
        assert json.loads(seen[0].content) == {
            "email": "jane@example.com",
            "password": "pw!",
            "status": "active",
            "billing_user_id": 9,
            "limit_group_id": 1,
            "roles": [2],
        }
        with pytest.raises(ValueError):
            client.create_user("jane@example.com", "pw", billing_user_id=9, status="deleted")

    def test_one_time_token_accepts_200_or_201_and_reads_only_access_token(self) -> None:
        for status in (200, 201):
            client, seen = client_for(answer(status, {"data": {"access_token": "tok", "token_type": "Bearer"}}))
            assert client.create_one_time_token(5) == "tok"
            assert json.loads(seen[0].content) == {"is_one_time": True}
        client, _ = client_for(answer(201, {"data": {"token": {"id": 1}}}))
        with pytest.raises(SolusVMResponseError):
            client.create_one_time_token(5)

    def test_from_settings(self) -> None:
        settings = UpstreamSettings(solusvm_url="http://sim:1/", solusvm_usage_path="/u/{id}", solusvm_sso_path="/sso")
        client = SolusVMClient.from_settings(settings)
        assert client.origin == "http://sim:1" and client.sso_login_url("t") == "http://sim:1/sso?token=t"
        client.close()

    def test_the_token_never_reaches_the_logs(self) -> None:
        """Rendered output at DEBUG, through the project's real logging set-up, for a failing and a good call."""
        previous = structlog.get_config()
        buffer = io.StringIO()
        configure_logging("DEBUG", stream=buffer)
        try:
            client, _ = client_for(answer(500, {"message": f"echo {TOKEN}"}))
            with pytest.raises(UpstreamUnavailable):
                client.get_user(5)
            client, _ = client_for(answer(201, {"data": {"access_token": "fresh-one-time-token"}}))
            client.create_one_time_token(5)
        finally:
            structlog.configure(**previous)
        lines = [json.loads(line) for line in buffer.getvalue().splitlines() if line.startswith("{")]
        calls = [line["call"] for line in lines if line.get("event") == "upstream call"]
        assert calls == ["GET /api/v1/users/{id}"] * 3 + ["POST /api/v1/users/{id}/tokens"]
        assert TOKEN not in buffer.getvalue() and "fresh-one-time-token" not in buffer.getvalue()


def pages_of(emails: list[str], per_page: int) -> Responder:
    """A paginated users list where every email matches the search (as a substring search may)."""

    def respond(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params.get("page", "1"))
        last = max(1, -(-len(emails) // per_page))
        chunk = emails[(page - 1) * per_page : page * per_page]
        data = [{**USER, "id": 100 + i + (page - 1) * per_page, "email": e} for i, e in enumerate(chunk)]
        return httpx.Response(
            200, json={"data": data, "links": {"next": None}, "meta": {"current_page": page, "last_page": last}}
        )

    return respond


class TestFindByEmail:
    def test_pages_until_the_exact_email_keeping_the_filter(self) -> None:
        emails = [f"x{n}jane@example.com" for n in range(30)] + ["jane@example.com"]
        client, seen = client_for(pages_of(emails, 15))
        user = client.find_user_by_email("jane@example.com")
        assert user is not None and user.id == 130
        assert [r.url.params["page"] for r in seen] == ["1", "2", "3"]
        assert all(r.url.params["filter[search]"] == "jane@example.com" for r in seen)

    def test_substring_matches_are_not_the_user(self) -> None:
        client, seen = client_for(pages_of(["mary-jane@example.com", "jane@example.com.au"], 15))
        assert client.find_user_by_email("jane@example.com") is None and len(seen) == 1

    def test_case_insensitive_match_prefers_the_exact_one(self) -> None:
        client, _ = client_for(pages_of(["JANE@example.com", "jane@example.com"], 1))
        assert client.find_user_by_email("jane@example.com").email == "jane@example.com"  # type: ignore[union-attr]
        client, _ = client_for(pages_of(["JANE@example.com"], 1))
        assert client.find_user_by_email("jane@example.com").email == "JANE@example.com"  # type: ignore[union-attr]

    def test_links_next_is_followed_when_meta_is_missing(self) -> None:
        def respond(request: httpx.Request) -> httpx.Response:
            page = int(request.url.params["page"])
            email = "jane@example.com" if page == 2 else "other-jane@example.com"
            following = "https://panel.example.com/api/v1/users?page=2" if page == 1 else None
            return httpx.Response(200, json={"data": [{**USER, "email": email}], "links": {"next": following}})

        client, seen = client_for(respond)
        assert client.find_user_by_email("jane@example.com") is not None and len(seen) == 2

    def test_paging_that_never_ends_is_an_error_not_absence(self) -> None:
        never_ending = answer(
            200, {"data": [{**USER, "email": "nope@example.com"}], "meta": {"current_page": 1, "last_page": 10**6}}
        )
        client, seen = client_for(never_ending, max_pages=5)
        with pytest.raises(SolusVMResponseError):
            client.find_user_by_email("jane@example.com")
        assert len(seen) == 5


def usage_body(**changes: Any) -> dict[str, Any]:
    plan = {"id": 3, "name": "S", "tokens_per_hour": 7, "tokens_per_month": 5000}
    data = {
        "user_id": 12,
        "period": {"from": "2024-05-01T00:00:00Z", "to": "2024-06-01T00:00:00Z"},
        "servers": [
            {
                "id": 100,
                "uuid": "u1",
                "name": "vps-100",
                "plan": plan,
                "created_at": "2024-04-20T09:00:00Z",
                "deleted_at": None,
                "hours": 744,
                "tokens": 5000,
            },
            {
                "id": 102,
                "uuid": "u2",
                "name": "tmp",
                "plan": {**plan, "tokens_per_hour": "7"},
                "created_at": "2024-05-10T08:00:00Z",
                "deleted_at": "2024-05-10T08:05:00Z",
                "hours": 1.0,
                "tokens": "7",
            },
        ],
        "total_tokens": 5007,
    }
    data.update(changes)
    return {"data": data}


class TestPeriodUsage:
    def test_sends_the_z_form_and_parses_the_report(self) -> None:
        client, seen = client_for(answer(200, usage_body()))
        usage = client.period_usage(12, MAY_START, MAY_END)
        assert seen[0].url.path == "/api/v1/users/12/usage"
        assert (
            seen[0].url.params["from"] == "2024-05-01T00:00:00Z" and seen[0].url.params["to"] == "2024-06-01T00:00:00Z"
        )
        assert isinstance(usage, PeriodUsage) and usage.total_tokens == 5007
        assert [(s.id, s.hours, s.tokens) for s in usage.servers] == [(100, 744, 5000), (102, 1, 7)]
        assert usage.servers[1].deleted_at == datetime(2024, 5, 10, 8, 5, tzinfo=UTC)
        assert usage.start == MAY_START and usage.end == MAY_END

    def test_other_time_zones_are_sent_as_utc(self) -> None:
        berlin = timezone(timedelta(hours=2))
        body = usage_body(period={"from": "2024-04-30T22:00:00Z", "to": "2024-05-31T22:00:00Z"})
        client, seen = client_for(answer(200, body))
        client.period_usage(12, datetime(2024, 5, 1, tzinfo=berlin), datetime(2024, 6, 1, tzinfo=berlin))
        assert seen[0].url.params["from"] == "2024-04-30T22:00:00Z"

    def test_naive_or_reversed_bounds_are_refused_before_any_request(self) -> None:
        client, seen = client_for(answer(200, usage_body()))
        with pytest.raises(ValueError):
            client.period_usage(12, datetime(2024, 5, 1), MAY_END)
        with pytest.raises(ValueError):
            client.period_usage(12, MAY_END, MAY_START)
        assert seen == []

    @pytest.mark.parametrize(
        "changes",
        [
            {"total_tokens": 5008},
            {"user_id": 13},
            {"period": {"from": "2024-05-02T00:00:00Z", "to": "2024-06-01T00:00:00Z"}},
        ],
    )
    def test_an_inconsistent_report_is_refused(self, changes: dict[str, Any]) -> None:
        client, _ = client_for(answer(200, usage_body(**changes)))
        with pytest.raises(SolusVMResponseError):
            client.period_usage(12, MAY_START, MAY_END)

    @pytest.mark.parametrize(("hours", "tokens"), [(744, 5208), (0, 0), (2, 7), (1, 7.5)])
    def test_a_server_priced_against_the_contract_is_refused(self, hours: Any, tokens: Any) -> None:
        body = usage_body()
        body["data"]["servers"] = [{**body["data"]["servers"][0], "hours": hours, "tokens": tokens}]
        body["data"]["total_tokens"] = tokens
        client, _ = client_for(answer(200, body))
        with pytest.raises(SolusVMResponseError):
            client.period_usage(12, MAY_START, MAY_END)

    def test_custom_usage_path(self) -> None:
        client, seen = client_for(answer(200, usage_body()), usage_path="/billing/{id}/usage")
        client.period_usage(12, MAY_START, MAY_END)
        assert seen[0].url.path == "/billing/12/usage"
