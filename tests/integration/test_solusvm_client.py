"""The SolusVM 2 client against the simulator on loopback, under every injectable fault (§9).

Requests are counted at the ASGI layer, so "retried" and "not retried" are facts about the wire.
Sleeps between retries are recorded instead of slept (except where real time is the point).
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from shared.upstream.errors import (
    UpstreamAuthError,
    UpstreamNotFound,
    UpstreamOutcomeUnknown,
    UpstreamRateLimited,
    UpstreamUnavailable,
    UpstreamValidationError,
)
from shared.upstream.http import Timeouts
from shared.upstream.retries import RetryPolicy
from shared.upstream.solusvm import SolusVMClient
from simulators.common import ServerThread, SimClock
from simulators.faults import FaultConfig, FaultRule
from simulators.solusvm import create_app
from tests.contract.conftest_solusvm import ADMIN_TOKEN, NOW, WORKED_EXAMPLE_SEED

MAY_START, MAY_END = datetime(2024, 5, 1, tzinfo=UTC), datetime(2024, 6, 1, tzinfo=UTC)
FAST_RETRY = RetryPolicy(max_attempts=3, deadline_seconds=5, initial_backoff=0.01, max_backoff=0.02, max_retry_after=5)
EMAIL = "jane@example.com"


class CountingApp:
    """ASGI wrapper counting requests by method and path, as they arrive at the simulator."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            with self._lock:
                self.calls[f"{scope['method']} {scope['path']}"] += 1
        await self.app(scope, receive, send)


class Sim:
    def __init__(self) -> None:
        self.app = create_app(clock=SimClock(NOW))
        self.counting = CountingApp(self.app)
        self.server = ServerThread(self.counting)
        self.state = self.app.state.sim
        self.faults = self.app.state.faults

    def reset(self) -> None:
        self.faults.configure(FaultConfig(seed=0))
        self.app.state.clock.set(NOW)
        with self.state.lock:
            self.state.clear()
            self.state.add_defaults(NOW)
        self.counting.calls.clear()

    def fault(self, **rule: Any) -> None:
        self.faults.add(FaultRule.model_validate(rule))

    def calls(self, key: str) -> int:
        return self.counting.calls[key]

    def users_with_email(self, email: str) -> list[Any]:
        return [user for user in self.state.list_users() if user.email.casefold() == email.casefold()]


@pytest.fixture(scope="module")
def module_sim() -> Iterator[Sim]:
    sim = Sim()
    with sim.server:
        yield sim


@pytest.fixture
def sim(module_sim: Sim) -> Sim:
    module_sim.reset()
    return module_sim


@pytest.fixture
def sleeps() -> list[float]:
    return []


def make_client(sim: Sim, sleeps: list[float] | None = None, **options: Any) -> SolusVMClient:
    options.setdefault("retry", FAST_RETRY)
    options.setdefault("timeouts", Timeouts(connect=1.0, read=2.0))
    if sleeps is not None:
        options.setdefault("sleep", sleeps.append)
    return SolusVMClient(sim.server.url, SecretStr(ADMIN_TOKEN), **options)


@pytest.fixture
def client(sim: Sim, sleeps: list[float]) -> Iterator[SolusVMClient]:
    with make_client(sim, sleeps) as solusvm:
        yield solusvm


def create_with_hook(sim: Sim, sleeps: list[float], on_create: Any) -> SolusVMClient:
    """A client whose ``POST /api/v1/users`` first runs ``on_create`` (to stage races)."""

    def hook(request: httpx.Request) -> None:
        if request.method == "POST" and request.url.path == "/api/v1/users":
            on_create()

    return make_client(sim, sleeps, http=httpx.Client(event_hooks={"request": [hook]}, timeout=2.0))


class TestHappyPaths:
    def test_find_or_create_creates_once_then_finds(self, sim: Sim, client: SolusVMClient) -> None:
        created = client.find_or_create_user(EMAIL, SecretStr("pw-1"), billing_user_id=42, limit_group_id=1)
        assert (created.email, created.billing_user_id, created.limit_group_id, created.status) == (
            EMAIL,
            42,
            1,
            "active",
        )
        again = client.find_or_create_user("Jane@Example.com", "pw-2", billing_user_id=42)
        assert again.id == created.id
        assert sim.calls("POST /api/v1/users") == 1 and len(sim.users_with_email(EMAIL)) == 1

    def test_get_set_status_and_patch(self, sim: Sim, client: SolusVMClient) -> None:
        user = client.create_user(EMAIL, "pw", billing_user_id="7")
        assert client.get_user(user.id) == user
        assert client.set_status(user.id, "locked").status == "locked"
        assert sim.state.get_user(user.id).status == "locked"
        assert client.patch_user(user.id, billing_user_id=8, password=SecretStr("new-pw")).billing_user_id == 8
        assert client.get_account().id == 1
        with pytest.raises(UpstreamNotFound):
            client.get_user(999)
        with pytest.raises(ValueError):
            client.set_status(user.id, "banned")

    def test_find_pages_through_substring_matches(self, sim: Sim, client: SolusVMClient) -> None:
        sim.state.lock.acquire()
        try:
            for n in range(40):
                sim.state.create_user({"email": f"{n:02d}j@x.io"}, NOW)
            target = sim.state.create_user({"email": "j@x.io"}, NOW)
        finally:
            sim.state.lock.release()
        found = client.find_user_by_email("j@x.io")
        assert found is not None and found.id == target.id
        assert sim.calls("GET /api/v1/users") == 3  # 41 matches, 15 a page
        assert client.find_user_by_email("nobody@x.io") is None

    def test_period_usage_worked_example(self, sim: Sim, client: SolusVMClient) -> None:
        httpx.post(f"{sim.server.url}/_sim/seed", json=WORKED_EXAMPLE_SEED).raise_for_status()
        usage = client.period_usage(12, MAY_START, MAY_END)
        assert [(s.id, s.hours, s.tokens) for s in usage.servers] == [(100, 744, 5000), (101, 700, 4900), (102, 1, 7)]
        assert usage.total_tokens == 9907
        assert usage.servers[2].deleted_at == datetime(2024, 5, 10, 8, 5, tzinfo=UTC)
        assert usage.servers[0].plan.tokens_per_month == 5000
        with pytest.raises(UpstreamNotFound):
            client.period_usage(999, MAY_START, MAY_END)

    def test_sso_round_trip(self, sim: Sim, client: SolusVMClient) -> None:
        user = client.create_user(EMAIL, "pw", billing_user_id=1)
        url = client.sso_login_url(client.create_one_time_token(user.id))
        assert url.startswith(f"{sim.server.url}/auth/by_token?token=")
        first = httpx.get(url)
        assert first.status_code == 200 and EMAIL in first.text
        assert httpx.get(url).status_code == 401


class TestReadFaults:
    def test_5xx_is_retried_until_it_succeeds(self, sim: Sim, client: SolusVMClient) -> None:
        sim.fault(kind="server_error", route="GET /api/v1/users/{id}", count=2)
        assert client.get_user(1).email == "admin@example.com"
        assert sim.calls("GET /api/v1/users/1") == 3

    def test_retries_stop_at_max_attempts_with_the_typed_error(self, sim: Sim, client: SolusVMClient) -> None:
        sim.fault(kind="server_error", route="GET /api/v1/users/{id}/usage", status=503)
        with pytest.raises(UpstreamUnavailable) as caught:
            client.period_usage(1, MAY_START, MAY_END)
        assert caught.value.status == 503 and not isinstance(caught.value, UpstreamOutcomeUnknown)
        assert sim.calls("GET /api/v1/users/1/usage") == 3

    def test_retries_stop_at_the_deadline(self, sim: Sim) -> None:
        sim.fault(kind="server_error", route="GET /api/v1/users/{id}")
        policy = RetryPolicy(max_attempts=1000, deadline_seconds=0.5, initial_backoff=0.05, max_backoff=0.1)
        started = time.monotonic()
        with make_client(sim, retry=policy) as solusvm, pytest.raises(UpstreamUnavailable):
            solusvm.get_user(1)
        assert time.monotonic() - started < 2.0
        assert 2 <= sim.calls("GET /api/v1/users/1") < 50

    def test_429_waits_as_long_as_retry_after_says(self, sim: Sim, client: SolusVMClient, sleeps: list[float]) -> None:
        sim.fault(kind="rate_limit", route="GET /api/v1/users/{id}/usage", retry_after=2, count=1)
        assert client.period_usage(1, MAY_START, MAY_END).total_tokens == 0
        assert sleeps == [2.0] and sim.calls("GET /api/v1/users/1/usage") == 2

    def test_429_wait_is_capped_by_the_policy(self, sim: Sim, sleeps: list[float]) -> None:
        sim.fault(kind="rate_limit", route="GET /api/v1/users", retry_after=120)
        policy = RetryPolicy(max_attempts=2, initial_backoff=0.01, max_retry_after=1.5)
        with make_client(sim, sleeps, retry=policy) as solusvm, pytest.raises(UpstreamRateLimited) as caught:
            solusvm.find_user_by_email(EMAIL)
        assert caught.value.retry_after == 120 and sleeps == [1.5]

    def test_429_retry_after_really_waits(self, sim: Sim) -> None:
        sim.fault(kind="rate_limit", route="GET /api/v1/account", retry_after=1, count=1)
        started = time.monotonic()
        with make_client(sim) as solusvm:
            solusvm.get_account()
        assert time.monotonic() - started >= 1.0

    def test_a_hanging_read_times_out_and_is_retried(self, sim: Sim) -> None:
        sim.fault(kind="timeout", route="GET /api/v1/users/{id}", hang_seconds=1.0, count=1)
        started = time.monotonic()
        with make_client(sim, [], timeouts=Timeouts(connect=1.0, read=0.2)) as solusvm:
            assert solusvm.get_user(1).id == 1
        assert time.monotonic() - started >= 0.2
        assert sim.calls("GET /api/v1/users/1") == 2

    def test_a_read_that_always_hangs_surfaces_unavailable(self, sim: Sim) -> None:
        sim.fault(kind="timeout", route="GET /api/v1/users/{id}", hang_seconds=0.5)
        with make_client(sim, [], timeouts=Timeouts(connect=1.0, read=0.1)) as solusvm:
            with pytest.raises(UpstreamUnavailable) as caught:
                solusvm.get_user(1)
        assert not isinstance(caught.value, UpstreamOutcomeUnknown)
        assert sim.calls("GET /api/v1/users/1") == 3

    def test_a_dropped_connection_is_retried(self, sim: Sim, client: SolusVMClient) -> None:
        sim.fault(kind="drop", route="GET /api/v1/users", count=2)
        assert client.find_user_by_email("admin@example.com") is not None
        assert sim.calls("GET /api/v1/users") == 3

    def test_a_maintenance_page_is_retried(self, sim: Sim, client: SolusVMClient) -> None:
        sim.fault(kind="html", route="GET /api/v1/users/{id}", count=1)
        assert client.get_user(1).id == 1 and sim.calls("GET /api/v1/users/1") == 2

    def test_refused_credentials_are_not_retried(self, sim: Sim) -> None:
        with SolusVMClient(sim.server.url, SecretStr("wrong"), retry=FAST_RETRY) as solusvm:
            with pytest.raises(UpstreamAuthError) as caught:
                solusvm.get_user(1)
        assert caught.value.status == 401 and sim.calls("GET /api/v1/users/1") == 1

    def test_nothing_listening_is_unavailable(self, sleeps: list[float]) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        with SolusVMClient(
            f"http://127.0.0.1:{port}", SecretStr("t"), retry=FAST_RETRY, sleep=sleeps.append
        ) as solusvm:
            with pytest.raises(UpstreamUnavailable):
                solusvm.get_user(1)
        assert len(sleeps) == 2  # three attempts


class TestWriteFaults:
    @pytest.mark.parametrize("kind", ["server_error", "timeout", "drop"])
    def test_a_failed_write_is_sent_once(self, sim: Sim, kind: str) -> None:
        sim.fault(kind=kind, route="PATCH /api/v1/users/{id}", hang_seconds=0.5)
        with make_client(sim, [], timeouts=Timeouts(connect=1.0, read=0.2)) as solusvm:
            with pytest.raises(UpstreamOutcomeUnknown):
                solusvm.set_status(1, "suspended")
        assert sim.calls("PATCH /api/v1/users/1") == 1
        assert sim.state.get_user(1).status == "active"  # the fault struck before the change

    def test_create_user_alone_never_retries(self, sim: Sim, client: SolusVMClient) -> None:
        sim.fault(kind="server_error", route="POST /api/v1/users")
        with pytest.raises(UpstreamOutcomeUnknown):
            client.create_user(EMAIL, "pw", billing_user_id=1)
        assert sim.calls("POST /api/v1/users") == 1

    @pytest.mark.parametrize("then", ["server_error", "timeout", "drop"])
    def test_commit_then_fail_does_not_create_twice(self, sim: Sim, then: str) -> None:
        sim.fault(kind="commit_then_fail", route="POST /api/v1/users", then=then, hang_seconds=0.5, count=1)
        with make_client(sim, [], timeouts=Timeouts(connect=1.0, read=0.2)) as solusvm:
            user = solusvm.find_or_create_user(EMAIL, "pw", billing_user_id=42)
        assert user.email == EMAIL and user.billing_user_id == 42
        assert sim.calls("POST /api/v1/users") == 1
        assert [u.id for u in sim.users_with_email(EMAIL)] == [user.id]
        assert sim.faults.stats() == {"commit_then_fail:POST /api/v1/users": 1}

    def test_a_create_lost_before_commit_is_created_after_the_lookup_proves_absence(
        self, sim: Sim, client: SolusVMClient
    ) -> None:
        sim.fault(kind="server_error", route="POST /api/v1/users", count=1)
        user = client.find_or_create_user(EMAIL, "pw", billing_user_id=42)
        assert sim.calls("POST /api/v1/users") == 2
        assert sim.calls("GET /api/v1/users") == 2  # before the first create, and before the second
        assert [u.id for u in sim.users_with_email(EMAIL)] == [user.id]

    def test_unknown_outcome_with_a_failing_lookup_stays_unknown(self, sim: Sim, sleeps: list[float]) -> None:
        def lookups_start_failing() -> None:
            sim.fault(kind="commit_then_fail", route="POST /api/v1/users", count=1)
            sim.fault(kind="server_error", route="GET /api/v1/users")

        with create_with_hook(sim, sleeps, lookups_start_failing) as solusvm:
            with pytest.raises(UpstreamOutcomeUnknown) as caught:
                solusvm.find_or_create_user(EMAIL, "pw", billing_user_id=42)
        assert isinstance(caught.value.__cause__, UpstreamUnavailable)
        assert sim.calls("POST /api/v1/users") == 1 and len(sim.users_with_email(EMAIL)) == 1

    def test_email_taken_by_a_concurrent_create_returns_that_user(self, sim: Sim, sleeps: list[float]) -> None:
        raced: list[int] = []

        def someone_else_creates_it() -> None:
            if not raced:
                raced.append(sim.state.create_user({"email": EMAIL, "billing_user_id": 42}, NOW).id)

        with create_with_hook(sim, sleeps, someone_else_creates_it) as solusvm:
            user = solusvm.find_or_create_user(EMAIL, "pw", billing_user_id=42)
        assert [user.id] == raced and sim.calls("POST /api/v1/users") == 1
        assert len(sim.users_with_email(EMAIL)) == 1

    def test_other_validation_errors_are_raised(self, sim: Sim, client: SolusVMClient) -> None:
        with pytest.raises(UpstreamValidationError) as caught:
            client.find_or_create_user(EMAIL, "pw", billing_user_id=42, limit_group_id=77)
        assert set(caught.value.errors) == {"limit_group_id"}
        assert sim.calls("POST /api/v1/users") == 1 and sim.users_with_email(EMAIL) == []

    def test_429_on_a_write_is_waited_out_because_nothing_was_done(
        self, sim: Sim, client: SolusVMClient, sleeps: list[float]
    ) -> None:
        sim.fault(kind="rate_limit", route="POST /api/v1/users/{id}/tokens", retry_after=3, count=1)
        assert client.create_one_time_token(1)
        assert sleeps == [3.0] and sim.calls("POST /api/v1/users/1/tokens") == 2


def test_concurrent_usage_calls_share_one_client_correctly(sim: Sim) -> None:
    """Many threads sharing one client, as the collector does at month close: every answer is the
    right one for its user (the pace is measured in bench/, not here)."""
    with sim.state.lock:
        users = [sim.state.create_user({"email": f"bench{n}@example.com"}, NOW).id for n in range(200)]
        for user_id in users:
            sim.state.create_server({"plan": 1, "location": 1, "name": None}, user_id, NOW)
    sim.app.state.clock.set(datetime(2024, 6, 20, tzinfo=UTC))
    window = (datetime(2024, 6, 1, tzinfo=UTC), datetime(2024, 7, 1, tzinfo=UTC))
    with make_client(sim, []) as solusvm, ThreadPoolExecutor(16) as pool:
        reports = list(pool.map(lambda user_id: (user_id, solusvm.period_usage(user_id, *window)), users * 2))
    assert len(reports) == 400
    for user_id, report in reports:
        assert report.total_tokens == min(108 * 7, 5000)  # 15 June 12:00 -> 20 June
        assert report.user_id == user_id and len(report.servers) == 1
