"""Who may state which fact: the catalog's producers, the broker user of each, whose word a consumer
takes on a copy, and a process that refuses to start logged in as somebody else."""

from __future__ import annotations

import inspect
import uuid

import pytest
from typer.testing import CliRunner

import shared.events as catalog
from postpay.bootstrap import SERVICES
from postpay.cli import app
from postpay.commands.run import Part, broker_identity_problem
from shared.bus.identity import BrokerUsers, default_user, published_by
from shared.bus.memory import InMemoryBus
from shared.bus.messages import PUBLISHED_BY_HEADER, OutgoingMessage
from shared.bus.rabbit import RabbitBus
from shared.bus.rabbit_publish import to_amqp_message
from shared.events import OPERATOR, Event, UserRegistered, new_envelope
from shared.settings import KernelSettings

CATALOG = [
    cls for _, cls in inspect.getmembers(catalog, inspect.isclass) if issubclass(cls, Event) and cls is not Event
]


def test_every_event_of_the_catalog_names_who_may_publish_it_and_only_real_producers() -> None:
    assert len(CATALOG) >= 18
    for event in CATALOG:
        assert event.producers and set(event.producers) <= {*SERVICES, OPERATOR}, event.event_type
    assert catalog.UserProvisioned.producers == ("provisioner",)
    assert set(catalog.BillingPeriodClosed.producers) == {"scheduler", OPERATOR}
    assert set(catalog.UsageCollected.producers) == {"usage_collector"}


def test_an_event_without_producers_is_refused_at_definition() -> None:
    with pytest.raises(TypeError, match="must declare producers"):
        type("Nameless" + uuid.uuid4().hex[:6], (Event,), {"__annotations__": {"key": str}})


def test_events_list_shows_who_may_publish_each_event() -> None:
    result = CliRunner().invoke(app, ["events", "list"])
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if line.startswith("BillingPeriodClosed "))
    assert "scheduler, operator" in line
    assert "provisioner" in next(line for line in result.output.splitlines() if line.startswith("UserProvisioned "))


def test_broker_users_default_to_postpay_names_and_can_be_renamed_or_shared() -> None:
    default = BrokerUsers.parse("")
    assert default.user_of("usage_collector") == "postpay-usage-collector" == default_user("usage_collector")
    assert default.user_of(OPERATOR) == "postpay-operator"
    assert default.allowed_users("UserProvisioned") == {"postpay-provisioner"}
    assert default.allowed_users("BillingPeriodClosed") == {"postpay-scheduler", "postpay-operator"}
    assert default.allowed_users("NoSuchEvent") == frozenset()
    renamed = BrokerUsers.parse('{"provisioner": "svc-prov"}')
    assert renamed.allows("UserProvisioned", "svc-prov") and not renamed.allows(
        "UserProvisioned", "postpay-provisioner"
    )
    assert renamed.user_of("signup") == "postpay-signup"
    shared = BrokerUsers.parse("guest")
    assert shared.single_user and shared.allows("UserProvisioned", "guest")
    assert not default.allows("UserProvisioned", None)


@pytest.mark.parametrize("value", ["two words", '{"signup": 1}', "[1]", '{"signup": "a b"}', "{not json"])
def test_a_broker_users_setting_that_names_no_users_is_refused(value: str) -> None:
    with pytest.raises(ValueError):
        KernelSettings(broker_users=value)


TRUSTED = {"postpay-usage-collector", "postpay-operator"}


@pytest.mark.parametrize(
    ("user_id", "headers", "expected"),
    [
        ("postpay-provisioner", {}, "postpay-provisioner"),  # the original
        ("postpay-signup", {PUBLISHED_BY_HEADER: "postpay-provisioner"}, "postpay-signup"),  # a claim, ignored
        ("postpay-usage-collector", {PUBLISHED_BY_HEADER: "postpay-provisioner"}, "postpay-provisioner"),  # own retry
        ("postpay-operator", {PUBLISHED_BY_HEADER: b"postpay-provisioner"}, "postpay-provisioner"),  # a requeue
        ("postpay-operator", {PUBLISHED_BY_HEADER: ""}, None),  # vouches for nobody
        ("postpay-operator", {}, "postpay-operator"),  # the operator's own event
        ("postpay-usage-collector", {PUBLISHED_BY_HEADER: 42}, None),
        (None, {PUBLISHED_BY_HEADER: "postpay-provisioner"}, None),
        ("", {}, None),
    ],
)
def test_a_copy_is_believed_only_from_the_consumer_itself_or_the_operator(
    user_id: str | None, headers: dict, expected: str | None
) -> None:
    assert published_by(user_id, headers, TRUSTED) == expected


def test_every_publish_names_its_connection_user_and_never_vouches() -> None:
    envelope = new_envelope(UserRegistered(signup_id=uuid.uuid4(), email="a@example.com", name="A"), producer="signup")
    message = OutgoingMessage.from_envelope(envelope)
    message.headers[PUBLISHED_BY_HEADER] = "postpay-provisioner"
    raw = to_amqp_message(message, "postpay-signup")
    assert raw.properties["user_id"] == "postpay-signup"
    assert PUBLISHED_BY_HEADER not in raw.properties["application_headers"]


def bus(url: str, users: str = "", passwords: dict[str, str] | None = None) -> RabbitBus:
    return RabbitBus(url, users=BrokerUsers.parse(users), passwords=passwords)


def test_a_service_logged_in_as_another_user_refuses_to_start() -> None:
    signup = bus("amqp://postpay-signup:pw@rabbitmq:5672/")
    assert broker_identity_problem(signup, Part.signup) is None
    problem = broker_identity_problem(signup, Part.provisioner)
    assert problem is not None and "postpay-provisioner" in problem and "logs in as postpay-signup" in problem
    everything = broker_identity_problem(signup, Part.all)
    assert everything is not None and "POSTPAY_BROKER_USERS=postpay-signup" in everything
    assert broker_identity_problem(InMemoryBus(), Part.all) is None
    assert broker_identity_problem(bus("amqp://guest:guest@h/", users="guest"), Part.all) is None


def test_a_relay_needs_every_service_s_password() -> None:
    relay = bus("amqp://postpay-relay:pw@rabbitmq:5672/")
    problem = broker_identity_problem(relay, Part.relay)
    assert problem is not None and "POSTPAY_AMQP_PASSWORDS" in problem and "postpay-invoicer" in problem
    complete = bus("amqp://postpay-relay:pw@rabbitmq:5672/", passwords={name: "pw" for name in SERVICES})
    assert broker_identity_problem(complete, Part.relay) is None


def test_a_publisher_for_another_service_logs_in_as_that_service() -> None:
    relay = bus("amqp://postpay-relay:pw@rabbitmq:5672/vh", passwords={"signup": "p@ss/word"})
    assert relay.publisher_login("signup") == ("postpay-signup", "amqp://postpay-signup:p%40ss%2Fword@rabbitmq:5672/vh")
    assert relay.publisher_login("invoicer") == ("postpay-relay", "amqp://postpay-relay:pw@rabbitmq:5672/vh")
    assert relay.publisher_login(None)[0] == "postpay-relay"
    assert RabbitBus("amqp://guest:guest@h/").users.single_user, "a bus given no users: its login speaks for everyone"


def test_a_passwords_setting_that_is_not_a_json_object_is_refused_without_quoting_it() -> None:
    with pytest.raises(ValueError) as raised:
        KernelSettings(amqp_passwords="hunter2-not-json").producer_passwords()
    assert "hunter2" not in str(raised.value)
