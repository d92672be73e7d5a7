"""deploy/ gives each part its own broker user, database role and secrets, and nothing of another's:
Docker Compose and Kubernetes alike, checked against the event catalog and the settings."""

from __future__ import annotations

import json
import os
import re
import secrets
from pathlib import Path

import pytest

from postpay.bootstrap import SERVICES, System
from postpay.broker_access import kubernetes_resources
from postpay.commands.broker import ADMIN_PASSWORD_VARIABLE, password_variable, service_subscriptions
from postpay.commands.run import Part, services_for
from shared.bus.memory import InMemoryBus
from shared.bus.topology import Naming
from shared.db import Database
from shared.settings import KernelSettings
from tests.support.deploy_files import (
    DEPLOY,
    K8S,
    OWNER_PARTS,
    PARTS,
    PRODUCERS,
    ROWS,
    SECRETS,
    SIGNUP_HALVES,
    URLS,
    USERS,
    compose,
    compose_environment,
    configmap,
    container_of,
    demo_secrets,
    load_all,
    of_kind,
    postpay_containers,
    producer_of,
    required_settings,
    secret_example,
    secret_refs,
    secrets_of,
)


def test_compose_gives_every_postpay_container_its_settings_and_only_its_own_secrets() -> None:
    needs = secrets_of()
    for name, service in postpay_containers().items():
        environment = compose_environment(service)
        missing = (required_settings(name) | (needs[name] & demo_secrets())) - environment.keys()
        assert not missing, f"{name} lacks {sorted(missing)}"
        foreign = (SECRETS - URLS - {"POSTPAY_AMQP_PASSWORDS"}) & environment.keys() - needs[name]
        assert not foreign, f"{name} is given another part's secrets: {sorted(foreign)}"
        port = environment["POSTPAY_HEALTH_PORT"]
        assert f":{port}/readyz" in " ".join(service["healthcheck"]["test"])
        # .env holds every secret: Compose only interpolates it, it never hands it to a container whole.
        assert service["env_file"] == "postpay.env", name
    text = (DEPLOY / "docker-compose.yml").read_text()
    for secret in demo_secrets():
        # A secret comes from .env and must be set: ${NAME:?...} refuses to start without it.
        assert f"{secret}: ${{{secret}:?" in text, secret


def test_compose_logs_every_part_in_as_its_own_broker_user_and_database_role() -> None:
    containers = {**postpay_containers(), "operator": compose()["services"]["operator"]}
    for name, service in containers.items():
        environment = compose_environment(service)
        producer = producer_of(name)
        user = USERS.user_of(producer)
        assert environment["POSTPAY_AMQP_URL"] == (
            f"amqp://{user}:${{{password_variable(producer)}:?set {password_variable(producer)} in deploy/.env}}"
            "@rabbitmq:5672/"
        ), name
        role, variable = (
            ("postpay", "POSTGRES_PASSWORD")
            if name in OWNER_PARTS
            else (f"postpay_{producer}", f"POSTGRES_{producer.upper()}_PASSWORD")
        )
        assert environment["POSTPAY_DATABASE_URL"].startswith(f"postgresql://{role}:${{{variable}:?"), name
    relay = json.loads(compose_environment(compose()["services"]["relay"])["POSTPAY_AMQP_PASSWORDS"])
    assert relay == {name: f"${{{password_variable(name)}}}" for name in SERVICES}


def test_compose_broker_loads_definitions_generated_with_every_password() -> None:
    services = compose()["services"]
    generator = services["broker-definitions"]
    assert generator["command"][:2] == ["broker", "definitions"]
    output = Path(generator["command"][generator["command"].index("--output") + 1])
    assert set(generator["environment"]) == {password_variable(p) for p in PRODUCERS} | {ADMIN_PASSWORD_VARIABLE}
    (volume,) = generator["volumes"]
    assert volume == f"broker-definitions:{output.parent}"
    rabbit = services["rabbitmq"]
    assert rabbit["depends_on"]["broker-definitions"]["condition"] == "service_completed_successfully"
    assert "environment" not in rabbit, "no default user: the definitions have every user"
    mounts = dict(volume.rsplit(":", 1)[0].split(":", 1) for volume in rabbit["volumes"] if volume.endswith(":ro"))
    conf = (DEPLOY / "rabbitmq" / "postpay.conf").read_text()
    (loaded,) = re.findall(r"^load_definitions = (\S+)$", conf, flags=re.MULTILINE)
    assert mounts["broker-definitions"] == str(Path(loaded).parent) and Path(loaded).name == output.name
    assert mounts["./rabbitmq/postpay.conf"].startswith("/etc/rabbitmq/conf.d/")
    assert "/var/lib/postpay/definitions" in (DEPLOY / "Dockerfile").read_text()


def test_the_compose_database_has_a_role_for_every_service() -> None:
    postgres = compose()["services"]["postgres"]
    script = (DEPLOY / "postgres" / "init-roles.sh").read_text()
    (listed,) = re.findall(r"^for service in ([a-z_ ]+); do$", script, flags=re.MULTILINE)
    assert listed.split() == [name for name in SERVICES]
    assert {f"POSTGRES_{name.upper()}_PASSWORD" for name in SERVICES} <= postgres["environment"].keys()
    assert "./postgres/init-roles.sh:/docker-entrypoint-initdb.d/10-postpay-roles.sh:ro" in postgres["volumes"]
    assert 'GRANT :"role" TO :"owner";' in script and "PASSWORD :'password'" in script


def test_the_operators_toolbox_is_off_until_needed_and_runs_nothing() -> None:
    operator = of_kind("Deployment")["operator"]
    assert operator["spec"]["replicas"] == 0
    assert container_of(operator)["command"] == ["sleep", "infinity"]


def test_no_deployment_is_handed_a_whole_secret_and_each_gets_only_its_own() -> None:
    needs, example = secrets_of(), secret_example()
    for part, deployment in of_kind("Deployment").items():
        container = container_of(deployment)
        assert all("secretRef" not in source for source in container.get("envFrom", [])), f"{part}: envFrom of a Secret"
        refs = secret_refs(deployment)
        from_shared = {name for name, ref in refs.items() if ref["name"] == "postpay-secrets"}
        assert from_shared == needs[part] & example.keys(), part
        assert all(refs[name]["key"] == name for name in from_shared)
        assert not {ref["name"] for ref in refs.values()} & {"postpay-rabbitmq-default-user"}, "the broker's admin"


def test_every_deployment_is_given_every_required_setting() -> None:
    config, needs = set(configmap()), secrets_of()
    for part, deployment in of_kind("Deployment").items():
        provided = {variable["name"] for variable in container_of(deployment)["env"]} | config
        required = required_settings(part) | (needs[part] & demo_secrets())
        missing = required - provided - ({"POSTPAY_HEALTH_PORT"} if part == "operator" else set())
        assert not missing, f"{part} lacks {sorted(missing)}"


def test_secrets_are_in_the_secret_and_everything_else_in_the_config_map() -> None:
    config, secret = configmap(), secret_example()
    assert not set(config) & SECRETS, "a secret in the ConfigMap"
    assert set(secret) <= SECRETS
    assert set(config) | set(secret) <= ROWS.keys(), "unknown settings"
    # The broker and database logins come from their own Secrets, the other secrets from this one.
    assert demo_secrets() <= set(secret)


def test_the_broker_and_database_are_operator_clusters_the_deployments_point_at() -> None:
    (rabbit,) = of_kind("RabbitmqCluster").values()
    (postgres,) = of_kind("Cluster").values()
    assert rabbit["apiVersion"].startswith("rabbitmq.com/") and rabbit["spec"]["replicas"] == 3
    assert postgres["apiVersion"].startswith("postgresql.cnpg.io/") and postgres["spec"]["instances"] >= 3
    users = {user["metadata"]["name"]: user for user in of_kind("User").values()}
    for part, deployment in of_kind("Deployment").items():
        env = {variable["name"]: variable for variable in container_of(deployment)["env"]}
        refs = secret_refs(deployment)
        assert f"@{rabbit['metadata']['name']}.postpay.svc:5672/" in env["POSTPAY_AMQP_URL"]["value"]
        # Logged in as its own broker user, whose password the topology operator generated.
        user = USERS.user_of(producer_of(part))
        assert user in users, f"no User for {part}"
        for name, key in (("RABBITMQ_USERNAME", "username"), ("RABBITMQ_PASSWORD", "password")):
            assert refs[name] == {"name": f"{user}-user-credentials", "key": key}, part
        if part in OWNER_PARTS:
            assert refs["POSTPAY_DATABASE_URL"] == {"name": f"{postgres['metadata']['name']}-app", "key": "uri"}
        else:
            for name, key in (("DATABASE_USERNAME", "username"), ("DATABASE_PASSWORD", "password")):
                assert refs[name] == {"name": f"postpay-db-{producer_of(part).replace('_', '-')}", "key": key}, part
            assert (
                f"@{postgres['metadata']['name']}-rw.postpay.svc:5432/postpay" in env["POSTPAY_DATABASE_URL"]["value"]
            )
    relay_env = {variable["name"]: variable for variable in container_of(of_kind("Deployment")["relay"])["env"]}
    passwords = json.loads(re.sub(r"\$\(([A-Z_]+)\)", r"\1", relay_env["POSTPAY_AMQP_PASSWORDS"]["value"]))
    relay_refs = secret_refs(of_kind("Deployment")["relay"])
    assert {service: relay_refs[variable]["name"] for service, variable in passwords.items()} == {
        name: f"{USERS.user_of(name)}-user-credentials" for name in SERVICES
    }


@pytest.mark.usefixtures("suite_logging_restored")  # service_subscriptions() sets logging to ERROR
def test_the_broker_users_and_permissions_are_the_ones_the_catalog_gives() -> None:
    written = load_all(K8S / "rabbitmq-access.yaml")
    expected = kubernetes_resources(
        Naming(), USERS, service_subscriptions(), cluster="postpay-rabbitmq", namespace="postpay"
    )
    assert written == expected, "stale: .venv/bin/python -m scripts.regen_docs"
    (rabbit,) = of_kind("RabbitmqCluster").values()
    assert all(
        doc["spec"]["rabbitmqClusterReference"]["name"] == rabbit["metadata"]["name"]
        for doc in written
        if doc["apiVersion"].startswith("rabbitmq.com/")
    )
    assert {doc["metadata"]["name"] for doc in written if doc["kind"] == "User"} == {
        USERS.user_of(p) for p in PRODUCERS
    }


def test_every_service_has_a_database_role_of_its_own() -> None:
    (postgres,) = of_kind("Cluster").values()
    roles = {role["name"]: role for role in postgres["spec"]["managed"]["roles"]}
    assert set(roles) == {f"postpay_{name}" for name in SERVICES}
    statements = postgres["spec"]["bootstrap"]["initdb"]["postInitApplicationSQL"]
    (schema,) = [sql for sql in statements if sql.startswith("GRANT USAGE, CREATE ON SCHEMA public TO ")]
    (membership,) = [
        sql for sql in statements if sql.endswith(f" TO {postgres['spec']['bootstrap']['initdb']['owner']}")
    ]
    secrets = {doc["metadata"]["name"]: doc for doc in load_all(K8S / "secret.example.yaml")}
    for name in SERVICES:
        role, secret = f"postpay_{name}", f"postpay-db-{name.replace('_', '-')}"
        assert roles[role]["login"] and roles[role]["passwordSecret"] == {"name": secret}
        assert f"CREATE ROLE {role} LOGIN" in statements and role in schema.replace(",", " ").split()
        assert role in membership.replace(",", " ").split()
        assert secrets[secret]["type"] == "kubernetes.io/basic-auth"
        assert secrets[secret]["stringData"]["username"] == role


def test_the_console_is_for_operators_only() -> None:
    # Compose: published on the host's loopback only, whatever port.
    console = compose()["services"]["console"]
    assert console["ports"] and all(str(port).startswith("127.0.0.1:") for port in console["ports"])
    environment = compose_environment(console)
    assert environment["POSTPAY_CONSOLE_HOST"] == "0.0.0.0"  # inside its container, for the published port
    assert any(str(port).endswith(f":{environment['POSTPAY_CONSOLE_PORT']}") for port in console["ports"])
    # Kubernetes: a ClusterIP Service, no Ingress to it, and only labelled proxies reach its web port.
    service = of_kind("Service")["console"]
    assert service["spec"].get("type", "ClusterIP") == "ClusterIP" and "externalIPs" not in service["spec"]
    backends = [
        path["backend"]["service"]["name"]
        for ingress in of_kind("Ingress").values()
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    ]
    assert "console" not in backends
    (web,) = [
        rule
        for rule in of_kind("NetworkPolicy")["console"]["spec"]["ingress"]
        if any(port["port"] == "http" for port in rule["ports"])
    ]
    assert web["from"] and all(source["podSelector"]["matchLabels"] for source in web["from"])
    env = {
        variable["name"]: variable.get("value") for variable in container_of(of_kind("Deployment")["console"])["env"]
    }
    # No proxy is trusted until one is put in front (never "*").
    assert env["POSTPAY_CONSOLE_FORWARDED_ALLOW_IPS"] == "" == environment["POSTPAY_CONSOLE_FORWARDED_ALLOW_IPS"]


@pytest.mark.parametrize("part", sorted(set(PARTS) - set(SIGNUP_HALVES) | {"operator"}))
def test_each_deployment_starts_with_only_its_own_secrets(part: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in os.environ if name.startswith("POSTPAY_")]:
        monkeypatch.delenv(name)
    for name, value in configmap().items():
        monkeypatch.setenv(name, value)
    container = container_of(of_kind("Deployment")[part])
    for variable in container["env"]:
        if "value" in variable and variable["name"].startswith("POSTPAY_") and "$(" not in variable["value"]:
            monkeypatch.setenv(variable["name"], variable["value"])
    for name, ref in secret_refs(of_kind("Deployment")[part]).items():
        if ref["name"] == "postpay-secrets":
            monkeypatch.setenv(name, secrets.token_hex(32))
    db = Database("sqlite://")
    try:
        system = System(kernel=KernelSettings(), db=db, bus=InMemoryBus())
        names = services_for(Part(part)) if part in {p.value for p in Part} and part != "relay" else ()
        for name in names:  # what `postpay run <part>` checks before it serves
            for check in system.service(name).preflight:
                check()
        for client in (system.deps.whmcs, system.deps.solusvm):
            client.close()
    finally:
        db.dispose()
