"""deploy/README.md's "Cluster settings" agree with what the deployments give the broker and postpay."""

from __future__ import annotations

import re

from shared.bus.addresses import broker_urls
from shared.settings import KernelSettings
from tests.support.deploy_files import (
    DEPLOY,
    ROWS,
    compose,
    compose_environment,
    configmap,
    of_kind,
    postpay_containers,
)


def cluster_settings() -> tuple[dict[str, str], str]:
    """deploy/README.md's "Cluster settings": its table (setting -> documented value) and its text."""
    section = (DEPLOY / "README.md").read_text().split("\n## Cluster settings\n", 1)[1].split("\n## ", 1)[0]
    table = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("| `") and len(cells) == 3:
            table[cells[0].split("`")[1]] = cells[1]
    return table, section


def same_value(value: str) -> object:
    """``15`` and ``15.0`` are one value; anything not a number stays as it is written."""
    try:
        return float(value)
    except ValueError:
        return value


def compose_broker_nodes() -> int:
    return compose()["services"]["rabbitmq"].get("deploy", {}).get("replicas", 1)


def test_the_cluster_settings_table_names_what_matters_for_a_cluster() -> None:
    table, _ = cluster_settings()
    assert {
        "POSTPAY_QUORUM_INITIAL_GROUP_SIZE",
        "POSTPAY_AMQP_URL",
        "POSTPAY_HEARTBEAT",
        "dead_letter_worker_publisher_confirm_timeout",
    } <= table.keys()
    assert {name for name in table if name.startswith("POSTPAY_")} <= ROWS.keys(), "not postpay settings"


def test_the_cluster_settings_table_gives_the_values_the_deployments_get() -> None:
    table, _ = cluster_settings()
    config = configmap()
    for name, documented in table.items():
        if not name.startswith("POSTPAY_") or name == "POSTPAY_AMQP_URL":
            continue
        default = ROWS[name]["default"]
        in_k8s = config.get(name, default)
        in_compose = {str(compose_environment(service).get(name, default)) for service in postpay_containers().values()}
        expected = "(unset)" if documented == "unset" else documented.strip("`")
        assert {same_value(in_k8s), *map(same_value, in_compose)} == {same_value(expected)}, (
            name,
            documented,
            in_k8s,
            in_compose,
        )
    timeout = re.search(
        r"dead_letter_worker_publisher_confirm_timeout, (\d+)", (DEPLOY / "rabbitmq" / "advanced.config").read_text()
    )
    assert timeout and table["dead_letter_worker_publisher_confirm_timeout"] == f"`{timeout.group(1)}`"


def test_no_deployment_asks_for_more_queue_replicas_than_its_broker_has_nodes() -> None:
    (rabbit,) = of_kind("RabbitmqCluster").values()
    setting = "POSTPAY_QUORUM_INITIAL_GROUP_SIZE"
    if setting in configmap():
        assert 1 <= int(configmap()[setting]) <= rabbit["spec"]["replicas"]
    for name, service in postpay_containers().items():
        if setting in compose_environment(service):
            assert 1 <= int(compose_environment(service)[setting]) <= compose_broker_nodes(), name


def test_the_kubernetes_broker_address_balances_over_the_cluster_and_the_failover_example_parses() -> None:
    (rabbit,) = of_kind("RabbitmqCluster").values()
    table, section = cluster_settings()
    assert f"`{rabbit['metadata']['name']}` Service" in table["POSTPAY_AMQP_URL"]
    examples = [
        line.split("=", 1)[1].strip("'\"")
        for block in re.findall(r"```(?:sh)?\n(.*?)```", section, re.DOTALL)
        for line in block.splitlines()
        if line.startswith("POSTPAY_AMQP_URL=")
    ]
    assert examples, "the section shows a failover list"
    for example in examples:
        settings = KernelSettings(amqp_url=example)
        assert settings.amqp_url is not None
        assert len(broker_urls(settings.amqp_url.get_secret_value())) == rabbit["spec"]["replicas"]
