"""deploy/ and docs/ agree with the code: every file parses; every service has a container and a
Deployment with probes and a disruption budget; every setting production needs is provided; the
configuration reference is the generated one; the commands the guides tell an operator to type exist.

What production "needs" is derived from the settings classes, not listed here: every secret with a
built-in (demo) value, every setting whose default points at this machine (127.0.0.1), the broker URL
(without it postpay runs its in-process bus) and the health port (probes and scrapes use it).
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from postpay.bootstrap import SERVICES, System
from postpay.broker_access import kubernetes_resources
from postpay.cli import app
from postpay.commands.broker import ADMIN_PASSWORD_VARIABLE, password_variable, service_subscriptions
from postpay.commands.config import reference_markdown, reference_rows
from postpay.commands.events import producers_table
from postpay.commands.run import Part, services_for
from services.signup.settings import SignupSettings
from shared.bus.identity import RELAY, BrokerUsers
from shared.bus.memory import InMemoryBus
from shared.bus.topology import Naming
from shared.db import Database
from shared.events import OPERATOR
from shared.settings import KernelSettings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
PRODUCERS = (*SERVICES, OPERATOR, RELAY)
USERS = BrokerUsers()  # deploy/ uses the default user names
# Compose builds the URLs and the broker's definitions from these passwords.
COMPOSE_VARIABLES = ({password_variable(p) for p in PRODUCERS} | {ADMIN_PASSWORD_VARIABLE, "POSTGRES_PASSWORD"}
                     | {f"POSTGRES_{name.upper()}_PASSWORD" for name in SERVICES})

PARTS = [part.value for part in Part if part is not Part.all]
ROWS = {row["variable"]: row for row in reference_rows()}
SECRETS = {name for name, row in ROWS.items() if row["secret"]}
URLS = {"POSTPAY_AMQP_URL", "POSTPAY_DATABASE_URL"}  # each part's own broker user and database role


def required_settings() -> set[str]:
    """What every postpay process needs, whatever it runs (its own secrets are ``secrets_of``)."""
    loopback = {name for name, row in ROWS.items() if "127.0.0.1" in row["default"] and name not in SECRETS}
    return loopback | URLS | {"POSTPAY_HEALTH_PORT"}


def demo_secrets() -> set[str]:
    """Secrets with a built-in (demo) value: production must replace every one a part uses."""
    return {name for name in SECRETS if ROWS[name]["default"] != "(unset)"} - URLS


def secrets_of() -> dict[str, set[str]]:
    """Which part uses which secret, from the rotation table of docs/operations.md (the operator's
    reference for what to restart), so deploy/ and that table cannot disagree."""
    table = (ROOT / "docs" / "operations.md").read_text().split("## Rotating secrets", 1)[1]
    used: dict[str, set[str]] = {part: set() for part in [*PARTS, "operator"]}
    for line in table.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        names = re.findall(r"`(POSTPAY_[A-Z0-9_]+)`", cells[0]) if len(cells) >= 2 else []
        for user in (cells[1].split(",") if names else []):
            part = {"usage collector": "usage-collector", "the operators' tools": "operator"}.get(user.strip(), user.strip())
            if part in used:
                used[part] |= set(names)
    assert used["signup"] and used["invoicer"], "the rotation table of docs/operations.md was not found"
    return used


def consuming_parts() -> set[str]:
    db = Database("sqlite://")
    system = System(kernel=KernelSettings(), db=db, bus=InMemoryBus())
    try:
        return {part for part in PARTS if part != "relay"
                and any(system.service(name).subscriptions for name in services_for(Part(part)))}
    finally:
        for client in (system.deps.whmcs, system.deps.solusvm):
            client.close()
        db.dispose()


def load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def manifests() -> Iterator[dict[str, Any]]:
    for path in sorted(K8S.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            yield from load_all(path)


def of_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in manifests() if doc["kind"] == kind}


def configmap() -> dict[str, str]:
    return of_kind("ConfigMap")["postpay-config"]["data"]


def secret_example() -> dict[str, str]:
    return of_kind("Secret")["postpay-secrets"]["stringData"]


def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def env_example(name: str = ".env.example") -> dict[str, str]:
    """Variables of an example env file, commented-out examples included (``# POSTPAY_X=...``)."""
    found = {}
    for line in (DEPLOY / name).read_text().splitlines():
        match = re.match(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$", line)
        if match:
            found.setdefault(match.group(1), match.group(2) if not line.startswith("#") else "")
    return found


# -- every file parses ---------------------------------------------------------------------------
@pytest.mark.parametrize("path", sorted(p for p in DEPLOY.rglob("*.y*ml") if "whmcs" not in p.parts),
                         ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_yaml_file_parses(path: Path) -> None:
    documents = load_all(path)
    assert documents and all(isinstance(doc, dict) for doc in documents)
    if path.parent == K8S:
        assert all({"apiVersion", "kind"} <= doc.keys() for doc in documents)
        namespaced = [doc for doc in documents if doc["kind"] not in ("Namespace", "Kustomization")]
        assert all(doc["metadata"].get("namespace") == "postpay" for doc in namespaced), path.name


def test_the_parts_of_postpay_run_cover_every_service() -> None:
    covered = {name for part in PARTS for name in services_for(Part(part)) if part != "relay"}
    assert covered == set(SERVICES)
    assert consuming_parts() == {"signup", "provisioner", "usage-collector", "invoicer"}


# -- Docker Compose ------------------------------------------------------------------------------
def postpay_containers() -> dict[str, dict[str, Any]]:
    return {name: service for name, service in compose()["services"].items()
            if service.get("command", [None])[0] == "run"}


def test_compose_runs_every_part_in_its_own_container_with_consumers_replicated() -> None:
    services = compose()["services"]
    assert {"rabbitmq", "postgres", "mailpit"} <= services.keys()
    containers = postpay_containers()
    assert {service["command"][1] for service in containers.values()} == set(PARTS)
    for name, service in containers.items():
        part = service["command"][1]
        assert name == part and service["command"] == ["run", part]
        assert service["depends_on"]["rabbitmq"]["condition"] == "service_healthy"
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert "/readyz" in " ".join(service["healthcheck"]["test"])
        replicas = service["deploy"]["replicas"]
        assert replicas >= 2 if part in consuming_parts() else replicas == 1, name


def compose_environment(service: dict[str, Any]) -> dict[str, str]:
    return {name: str(value) for name, value in service["environment"].items()}


def test_compose_gives_every_postpay_container_its_settings_and_only_its_own_secrets() -> None:
    needs = secrets_of()
    for name, service in postpay_containers().items():
        environment = compose_environment(service)
        missing = (required_settings() | (needs[name] & demo_secrets())) - environment.keys()
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
        producer = {"relay": RELAY}.get(name, name.replace("-", "_"))
        user = USERS.user_of(producer)
        assert environment["POSTPAY_AMQP_URL"] == (
            f"amqp://{user}:${{{password_variable(producer)}:?set {password_variable(producer)} in deploy/.env}}"
            "@rabbitmq:5672/"), name
        role, variable = (("postpay", "POSTGRES_PASSWORD") if name in ("relay", "operator")
                          else (f"postpay_{producer}", f"POSTGRES_{producer.upper()}_PASSWORD"))
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


def test_every_variable_compose_reads_is_in_the_env_example() -> None:
    text = (DEPLOY / "docker-compose.yml").read_text()
    referenced = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", text))
    assert referenced - env_example().keys() <= {"POSTPAY_LOG_LEVEL", "POSTPAY_SMTP_HOST", "POSTPAY_SMTP_PORT"}
    assert COMPOSE_VARIABLES <= referenced


def test_the_env_examples_name_only_real_settings_and_hold_no_secret() -> None:
    example = env_example()
    unknown = {name for name in example if name not in ROWS and name not in COMPOSE_VARIABLES}
    assert not unknown, f"not postpay settings: {sorted(unknown)}"
    for name in SECRETS | COMPOSE_VARIABLES:
        assert example.get(name, "") == "", f"{name} must be left empty in the example"
    shared = env_example("postpay.env.example")
    assert shared.keys() <= ROWS.keys() and not shared.keys() & SECRETS, "postpay.env reaches every container"
    assert not (DEPLOY / ".env").exists() or ".env" in (ROOT / ".gitignore").read_text().split()
    assert not (DEPLOY / "postpay.env").exists() or "postpay.env" in (ROOT / ".gitignore").read_text().split()


# -- Kubernetes ----------------------------------------------------------------------------------
def container_of(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def test_every_part_has_a_deployment_with_probes_and_a_disruption_budget() -> None:
    deployments, budgets = of_kind("Deployment"), of_kind("PodDisruptionBudget")
    assert set(deployments) == {*PARTS, "operator"}
    health_port = int(configmap()["POSTPAY_HEALTH_PORT"])
    for part, deployment in deployments.items():
        if part == "operator":
            continue
        container = container_of(deployment)
        assert container["args"] == ["run", part]
        assert deployment["spec"]["replicas"] >= 2 if part in consuming_parts() else deployment["spec"]["replicas"] == 1
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
        ports = {port["name"]: port["containerPort"] for port in container["ports"]}
        assert ports["health"] == health_port
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
        assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == str(health_port) and annotations["prometheus.io/path"] == "/metrics"
        assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 90
        budget = budgets[part]
        assert budget["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
        assert budget["spec"].get("maxUnavailable") == 1


def test_the_operators_toolbox_is_off_until_needed_and_runs_nothing() -> None:
    operator = of_kind("Deployment")["operator"]
    assert operator["spec"]["replicas"] == 0
    assert container_of(operator)["command"] == ["sleep", "infinity"]


def secret_refs(deployment: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Each variable taken from a Secret, by name: {"name": secret, "key": key}."""
    return {variable["name"]: {k: v for k, v in variable["valueFrom"]["secretKeyRef"].items() if k != "optional"}
            for variable in container_of(deployment)["env"] if "secretKeyRef" in variable.get("valueFrom", {})}


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
        required = required_settings() | (needs[part] & demo_secrets())
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
        user = USERS.user_of({"relay": RELAY}.get(part, part.replace("-", "_")))
        assert user in users, f"no User for {part}"
        for name, key in (("RABBITMQ_USERNAME", "username"), ("RABBITMQ_PASSWORD", "password")):
            assert refs[name] == {"name": f"{user}-user-credentials", "key": key}, part
        if part in ("relay", "operator"):
            assert refs["POSTPAY_DATABASE_URL"] == {"name": f"{postgres['metadata']['name']}-app", "key": "uri"}
        else:
            for name, key in (("DATABASE_USERNAME", "username"), ("DATABASE_PASSWORD", "password")):
                assert refs[name] == {"name": f"postpay-db-{part}", "key": key}, part
            assert f"@{postgres['metadata']['name']}-rw.postpay.svc:5432/postpay" in env["POSTPAY_DATABASE_URL"]["value"]
    relay_env = {variable["name"]: variable for variable in container_of(of_kind("Deployment")["relay"])["env"]}
    passwords = json.loads(re.sub(r"\$\(([A-Z_]+)\)", r"\1", relay_env["POSTPAY_AMQP_PASSWORDS"]["value"]))
    relay_refs = secret_refs(of_kind("Deployment")["relay"])
    assert {service: relay_refs[variable]["name"] for service, variable in passwords.items()} == {
        name: f"{USERS.user_of(name)}-user-credentials" for name in SERVICES}


def test_the_broker_users_and_permissions_are_the_ones_the_catalog_gives() -> None:
    written = load_all(K8S / "rabbitmq-access.yaml")
    expected = kubernetes_resources(Naming(), USERS, service_subscriptions(), cluster="postpay-rabbitmq",
                                    namespace="postpay")
    assert written == expected, "regenerate it: postpay broker kubernetes > deploy/k8s/rabbitmq-access.yaml"
    (rabbit,) = of_kind("RabbitmqCluster").values()
    assert all(doc["spec"]["rabbitmqClusterReference"]["name"] == rabbit["metadata"]["name"]
               for doc in written if doc["apiVersion"].startswith("rabbitmq.com/"))
    assert {doc["metadata"]["name"] for doc in written if doc["kind"] == "User"} == {USERS.user_of(p) for p in PRODUCERS}


def test_every_service_has_a_database_role_of_its_own() -> None:
    (postgres,) = of_kind("Cluster").values()
    roles = {role["name"]: role for role in postgres["spec"]["managed"]["roles"]}
    assert set(roles) == {f"postpay_{name}" for name in SERVICES}
    statements = postgres["spec"]["bootstrap"]["initdb"]["postInitApplicationSQL"]
    (schema,) = [sql for sql in statements if sql.startswith("GRANT USAGE, CREATE ON SCHEMA public TO ")]
    (membership,) = [sql for sql in statements if sql.endswith(f" TO {postgres['spec']['bootstrap']['initdb']['owner']}")]
    secrets = {doc["metadata"]["name"]: doc for doc in load_all(K8S / "secret.example.yaml")}
    for name in SERVICES:
        role, secret = f"postpay_{name}", f"postpay-db-{name.replace('_', '-')}"
        assert roles[role]["login"] and roles[role]["passwordSecret"] == {"name": secret}
        assert f"CREATE ROLE {role} LOGIN" in statements and role in schema.replace(",", " ").split()
        assert role in membership.replace(",", " ").split()
        assert secrets[secret]["type"] == "kubernetes.io/basic-auth"
        assert secrets[secret]["stringData"]["username"] == role


def test_the_signup_web_app_is_reachable_through_its_service_and_ingress() -> None:
    signup = container_of(of_kind("Deployment")["signup"])
    web_port = {port["name"]: port["containerPort"] for port in signup["ports"]}["http"]
    assert web_port == SignupSettings.model_fields["signup_port"].default
    assert configmap()["POSTPAY_SIGNUP_HOST"] == "0.0.0.0"
    service = of_kind("Service")["signup"]
    assert service["spec"]["selector"].items() <= of_kind("Deployment")["signup"]["spec"]["template"]["metadata"]["labels"].items()
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    backend = of_kind("Ingress")["signup"]["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "signup", "port": {"name": "http"}}
    host = of_kind("Ingress")["signup"]["spec"]["rules"][0]["host"]
    assert configmap()["POSTPAY_PUBLIC_URL"] == f"https://{host}"


def test_kustomization_applies_every_manifest_but_the_secret_example() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
    assert set(kustomization["resources"]) == files
    assert [image["name"] for image in kustomization["images"]] == ["postpay"]
    assert {container_of(d)["image"].split(":")[0] for d in of_kind("Deployment").values()} == {"postpay"}


# -- the image -----------------------------------------------------------------------------------
def dockerfile() -> list[tuple[str, str]]:
    instructions = []
    for line in (DEPLOY / "Dockerfile").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, rest = line.strip().partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def test_the_dockerfile_copies_what_exists_and_serves_health_where_the_manifests_probe() -> None:
    instructions = dockerfile()
    for keyword, rest in instructions:
        if keyword == "COPY" and not rest.startswith("--from"):
            for source in rest.split()[:-1]:
                assert (ROOT / source).exists(), source
    copied = {Path(rest.split()[0]).name for keyword, rest in instructions if keyword == "COPY" and "./" in rest}
    assert {"shared", "services", "simulators", "postpay"} <= copied
    environment = dict(item.split("=", 1) for keyword, rest in instructions if keyword == "ENV" for item in rest.split())
    health = environment["POSTPAY_HEALTH_PORT"]
    assert health == configmap()["POSTPAY_HEALTH_PORT"] == str(postpay_containers()["invoicer"]["environment"]["POSTPAY_HEALTH_PORT"])
    exposed = {port for keyword, rest in instructions if keyword == "EXPOSE" for port in rest.split()}
    assert {health, str(SignupSettings.model_fields["signup_port"].default)} <= exposed
    assert any(keyword == "HEALTHCHECK" and f":{health}/healthz" in rest for keyword, rest in instructions)
    assert ("ENTRYPOINT", '["postpay"]') in instructions
    uid = next(rest for keyword, rest in instructions if keyword == "RUN" and "useradd" in rest)
    for deployment in of_kind("Deployment").values():
        assert f"--uid {deployment['spec']['template']['spec']['securityContext']['runAsUser']} " in uid


# -- docs ----------------------------------------------------------------------------------------
def test_the_configuration_reference_is_the_generated_one() -> None:
    written = (ROOT / "docs" / "configuration.md").read_text()
    assert written == reference_markdown(), "regenerate it: postpay config reference > docs/configuration.md"


def test_the_readme_carries_the_generated_configuration_table() -> None:
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- configuration-reference -->\n", 1)[1].split("\n<!-- /configuration-reference -->", 1)[0]
    table = "\n".join(line for line in reference_markdown().splitlines() if line.startswith("|"))
    assert block == table, "the README's settings table is stale: paste the table of `postpay config reference`"


def test_the_security_guide_carries_the_generated_producers_table() -> None:
    guide = (ROOT / "docs" / "security.md").read_text()
    block = guide.split("<!-- producers -->\n", 1)[1].split("\n<!-- /producers -->", 1)[0]
    assert block == producers_table(), "paste postpay.commands.events.producers_table() into docs/security.md"


def documented_commands() -> Iterator[tuple[str, list[str]]]:
    """``postpay ...`` at the start of a line of a shell block, or after ``exec <where>``, ``run --rm
    <where>`` or ``--``."""
    for doc in (ROOT / "docs" / "operations.md", DEPLOY / "README.md"):
        for block in re.findall(r"```(?:sh)?\n(.*?)```", doc.read_text(), flags=re.DOTALL):
            for line in block.replace("\\\n", " ").splitlines():
                tokens = shlex.split(line.split("#", 1)[0])
                for index, token in enumerate(tokens):
                    if token == "postpay" and (index == 0 or tokens[index - 1] == "--"
                                               or (index >= 2 and tokens[index - 2] == "exec")
                                               or tokens[max(0, index - 3):index - 1] == ["run", "--rm"]):
                        yield doc.name, tokens[index + 1:]


def test_every_command_the_guides_give_exists_with_its_options() -> None:
    group = typer.main.get_command(app)
    seen = 0
    for doc, tokens in documented_commands():
        text = " ".join(tokens)
        command: Any = group
        while hasattr(command, "commands") and tokens and tokens[0] in command.commands:
            command = command.commands[tokens.pop(0)]
        assert not hasattr(command, "commands"), f"{doc}: `postpay {text}` names no command"
        options = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
        for token in tokens:
            if token.startswith("-"):
                assert token.split("=", 1)[0] in options, f"{doc}: `postpay {text}`: no option {token}"
        seen += 1
    assert seen >= 15


def test_both_deployments_give_rabbitmq_the_short_dead_letter_confirm_timeout() -> None:
    setting = "{dead_letter_worker_publisher_confirm_timeout, 15000}"
    mounted = (DEPLOY / "rabbitmq" / "advanced.config").read_text()
    assert setting in mounted
    volumes = compose()["services"]["rabbitmq"]["volumes"]
    assert any(v.split(":")[:2] == ["./rabbitmq/advanced.config", "/etc/rabbitmq/advanced.config"] for v in volumes)
    (rabbit,) = of_kind("RabbitmqCluster").values()
    assert setting in rabbit["spec"]["rabbitmq"]["advancedConfig"]


def test_the_mounted_advanced_config_is_erlang_terms_rabbitmq_can_read() -> None:
    # erl comes with RabbitMQ, which the suite needs anyway; a syntax error would stop the broker.
    erl = shutil.which("erl")
    assert erl, "erl (installed with RabbitMQ) is needed to check deploy/rabbitmq/advanced.config"
    path = DEPLOY / "rabbitmq" / "advanced.config"
    script = f'{{ok, [[{{rabbit, Settings}}]]}} = file:consult("{path}"), io:format("~p", [Settings]), halt().'
    result = subprocess.run([erl, "-noshell", "-eval", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "[{dead_letter_worker_publisher_confirm_timeout,15000}]"
