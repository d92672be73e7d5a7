"""The broker failover list and the quorum queues' replica count, as settings: what an operator types
is split, checked and refused with an error that says what is wrong without showing the password, and
the queues postpay declares carry the group size exactly when it is set."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from postpay.bootstrap import make_bus
from shared.bus.addresses import BrokerAddressError, broker_urls
from shared.bus.rabbit import RabbitBus
from shared.bus.topology import Subscription
from shared.events.enrollment import UserProvisioned
from shared.settings import KernelSettings

PASSWORD = "s3cr%3Bet-pw"
NODE_1 = f"amqp://postpay:{PASSWORD}@rabbit-1:5672/"
NODE_2 = f"amqp://postpay:{PASSWORD}@rabbit-2:5672/"
NODE_3 = f"amqps://postpay:{PASSWORD}@rabbit-3:5671/"


def test_a_failover_list_is_split_into_its_addresses_in_the_order_given() -> None:
    assert broker_urls(f"{NODE_1};{NODE_2};{NODE_3}") == [NODE_1, NODE_2, NODE_3]
    assert broker_urls(f" {NODE_2} ;\n{NODE_1}") == [NODE_2, NODE_1]
    assert broker_urls(NODE_1) == [NODE_1]
    # The default virtual host, spelled three ways, is one virtual host.
    assert len(broker_urls("amqp://u:p@a;amqp://u:p@b/;amqp://u:p@c/%2F")) == 3


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        ("", "the broker URL is empty"),
        (f"{NODE_1};", "address 2 of 2 of the broker failover list is empty"),
        (f"{NODE_1};;{NODE_2}", "address 2 of 3 of the broker failover list is empty"),
        (
            f"{NODE_1};http://postpay:{PASSWORD}@rabbit-2/",
            "address 2 of 2 of the broker failover list must start with amqp",
        ),
        (f"postpay:{PASSWORD}@rabbit-1:5672", "the broker URL must start with amqp"),
        (f"amqp://postpay:{PASSWORD}@:5672/", "the broker URL names no host"),
        (f"amqp://postpay:{PASSWORD}@rabbit-1:56x2/", "the broker URL has a port that is not a number"),
        (f"{NODE_1};amqp://guest:{PASSWORD}@rabbit-2/", "must name the same user and virtual host"),
        (f"{NODE_1};amqp://postpay:{PASSWORD}@rabbit-2/billing", "must name the same user and virtual host"),
    ],
)
def test_a_bad_broker_address_is_refused_with_a_clear_error_that_shows_no_password(value: str, complaint: str) -> None:
    with pytest.raises(BrokerAddressError) as refused:
        broker_urls(value)
    assert complaint in str(refused.value)
    assert PASSWORD not in str(refused.value) and "s3cr" not in str(refused.value)

    # The same, through the setting: refused at start-up, and pydantic does not echo the input either.
    with pytest.raises(ValidationError) as invalid:
        KernelSettings(amqp_url=value)
    assert complaint in str(invalid.value)
    assert "s3cr" not in str(invalid.value) and "s3cr" not in repr(invalid.value)


def test_the_setting_keeps_a_valid_failover_list_whole_and_secret() -> None:
    settings = KernelSettings(amqp_url=f"{NODE_1};{NODE_2}")
    assert settings.amqp_url is not None and settings.amqp_url.get_secret_value() == f"{NODE_1};{NODE_2}"
    assert "s3cr" not in repr(settings) and "s3cr" not in str(settings.model_dump())


def test_a_bus_refuses_a_bad_list_too() -> None:
    with pytest.raises(BrokerAddressError):
        RabbitBus(f"{NODE_1};")


SUBSCRIPTION = Subscription("probe", "take", (UserProvisioned,), lambda event, ctx: None)


def every_queue_arguments(bus: RabbitBus) -> list[dict[str, object]]:
    return [
        bus.main_queue_arguments(SUBSCRIPTION),
        bus.parking_lot_arguments(),
        *(bus.retry_queue_arguments(SUBSCRIPTION, delay) for delay in bus.retry_delays),
    ]


def test_every_queue_gets_the_initial_group_size_when_it_is_set() -> None:
    bus = make_bus(KernelSettings(amqp_url=f"{NODE_1};{NODE_2};{NODE_3}", quorum_initial_group_size=3))
    assert isinstance(bus, RabbitBus) and bus.urls == [NODE_1, NODE_2, NODE_3]
    for arguments in every_queue_arguments(bus):
        assert arguments["x-queue-type"] == "quorum"
        assert arguments["x-quorum-initial-group-size"] == 3


def test_unset_the_broker_picks_the_group_size_and_the_arguments_stay_as_they_were() -> None:
    # RabbitMQ refuses to redeclare a queue whose x-quorum-initial-group-size differs, so queues of an
    # install that never set it must keep being declared without it.
    bus = make_bus(KernelSettings(amqp_url=NODE_1))
    assert isinstance(bus, RabbitBus)
    for arguments in every_queue_arguments(bus):
        assert arguments["x-queue-type"] == "quorum" and "x-quorum-initial-group-size" not in arguments
    assert bus.parking_lot_arguments() == {"x-queue-type": "quorum", "x-delivery-limit": 1_000_000}


def test_the_group_size_is_at_least_one() -> None:
    with pytest.raises(ValidationError):
        KernelSettings(quorum_initial_group_size=0)
