"""deploy/ and docs/ agree with the code: every file parses; every service has a container and a
Deployment with probes and a disruption budget; every setting production needs is provided; the
configuration reference is the generated one; the commands the guides tell an operator to type exist.

What production "needs" is derived from the settings classes, not listed here: every secret with a
built-in (demo) value, every setting whose default points at this machine (127.0.0.1), the broker URL
(without it postpay runs its in-process bus) and the health port (probes and scrapes use it).
"""

from __future__ import annotations

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
from postpay.cli import app
from postpay.commands.config import reference_markdown, reference_rows
from postpay.commands.run import Part, services_for
from services.signup.settings import SignupSettings
from shared.bus.addresses import broker_urls
from shared.bus.memory import InMemoryBus
from shared.db import Database
from shared.settings import KernelSettings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE_VARIABLES = {"RABBITMQ_PASSWORD", "POSTGRES_PASSWORD"}  # compose builds the URLs from these

# The operator console (`postpay run console`) is not deployed by these files yet: it reads every service's
# tables and needs an operator-only ingress, which the deploy files add separately.
PARTS = [part.value for part in Part if part not in (Part.all, Part.console)]
ROWS = {row["variable"]: row for row in reference_rows()}
SECRETS = {name for name, row in ROWS.items() if row["secret"]}


def required_settings() -> set[str]:
    demo_secrets = {name for name in SECRETS if ROWS[name]["default"] != "(unset)"}
    loopback = {name for name, row in ROWS.items() if "127.0.0.1" in row["default"] and row["owner"] != "console"}
    return demo_secrets | loopback | {"POSTPAY_AMQP_URL", "POSTPAY_HEALTH_PORT"}


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


def env_example() -> dict[str, str]:
    """Variables of .env.example, commented-out examples included (``# POSTPAY_X=...``)."""
    found = {}
    for line in (DEPLOY / ".env.example").read_text().splitlines():
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


def test_compose_gives_every_postpay_container_every_required_setting() -> None:
    for name, service in postpay_containers().items():
        missing = required_settings() - service["environment"].keys()
        assert not missing, f"{name} lacks {sorted(missing)}"
        port = service["environment"]["POSTPAY_HEALTH_PORT"]
        assert f":{port}/readyz" in " ".join(service["healthcheck"]["test"])
    text = (DEPLOY / "docker-compose.yml").read_text()
    for secret in SECRETS & required_settings() - {"POSTPAY_AMQP_URL", "POSTPAY_DATABASE_URL"}:
        # A secret comes from .env and must be set: ${NAME:?...} refuses to start without it.
        assert f"{secret}: ${{{secret}:?" in text, secret


def test_every_variable_compose_reads_is_in_the_env_example() -> None:
    text = (DEPLOY / "docker-compose.yml").read_text()
    referenced = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", text))
    assert referenced - env_example().keys() <= {"POSTPAY_LOG_LEVEL", "POSTPAY_SMTP_HOST", "POSTPAY_SMTP_PORT"}
    assert COMPOSE_VARIABLES <= referenced


def test_the_env_example_names_only_real_settings_and_holds_no_secret() -> None:
    example = env_example()
    unknown = {name for name in example if name not in ROWS and name not in COMPOSE_VARIABLES}
    assert not unknown, f"not postpay settings: {sorted(unknown)}"
    for name in SECRETS | COMPOSE_VARIABLES:
        assert example.get(name, "") == "", f"{name} must be left empty in the example"
    assert not (DEPLOY / ".env").exists() or ".env" in (ROOT / ".gitignore").read_text().split()


# -- Kubernetes ----------------------------------------------------------------------------------
def container_of(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def test_every_part_has_a_deployment_with_probes_and_a_disruption_budget() -> None:
    deployments, budgets = of_kind("Deployment"), of_kind("PodDisruptionBudget")
    assert set(deployments) == set(PARTS)
    health_port = int(configmap()["POSTPAY_HEALTH_PORT"])
    for part, deployment in deployments.items():
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


def test_every_deployment_is_given_every_required_setting() -> None:
    sources = {"postpay-config": set(configmap()), "postpay-secrets": set(secret_example())}
    for part, deployment in of_kind("Deployment").items():
        container = container_of(deployment)
        provided = {variable["name"] for variable in container["env"]}
        for source in container["envFrom"]:
            reference = source.get("configMapRef") or source.get("secretRef")
            provided |= sources[reference["name"]]
        missing = required_settings() - provided
        assert not missing, f"{part} lacks {sorted(missing)}"


def test_secrets_are_in_the_secret_and_everything_else_in_the_config_map() -> None:
    config, secret = configmap(), secret_example()
    assert not set(config) & SECRETS, "a secret in the ConfigMap"
    assert set(secret) <= SECRETS
    assert set(config) | set(secret) <= ROWS.keys(), "unknown settings"
    # The broker and database URLs come from the operators' Secrets, the other secrets from this one.
    assert required_settings() & SECRETS - {"POSTPAY_AMQP_URL", "POSTPAY_DATABASE_URL"} <= set(secret)


def test_the_broker_and_database_are_operator_clusters_the_deployments_point_at() -> None:
    (rabbit,) = of_kind("RabbitmqCluster").values()
    (postgres,) = of_kind("Cluster").values()
    assert rabbit["apiVersion"].startswith("rabbitmq.com/") and rabbit["spec"]["replicas"] == 3
    assert postgres["apiVersion"].startswith("postgresql.cnpg.io/") and postgres["spec"]["instances"] >= 3
    for deployment in of_kind("Deployment").values():
        env = {variable["name"]: variable for variable in container_of(deployment)["env"]}
        assert f"@{rabbit['metadata']['name']}.postpay.svc:5672/" in env["POSTPAY_AMQP_URL"]["value"]
        for name in ("RABBITMQ_USERNAME", "RABBITMQ_PASSWORD"):
            assert env[name]["valueFrom"]["secretKeyRef"]["name"] == f"{rabbit['metadata']['name']}-default-user"
        database = env["POSTPAY_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
        assert database == {"name": f"{postgres['metadata']['name']}-app", "key": "uri"}


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


def documented_commands() -> Iterator[tuple[str, list[str]]]:
    """``postpay ...`` at the start of a line of a shell block, or after ``exec <where>`` / ``--``."""
    for doc in (ROOT / "docs" / "operations.md", DEPLOY / "README.md"):
        for block in re.findall(r"```(?:sh)?\n(.*?)```", doc.read_text(), flags=re.DOTALL):
            for line in block.replace("\\\n", " ").splitlines():
                tokens = shlex.split(line.split("#", 1)[0])
                for index, token in enumerate(tokens):
                    if token == "postpay" and (index == 0 or tokens[index - 1] == "--"
                                               or (index >= 2 and tokens[index - 2] == "exec")):
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


# -- cluster settings ----------------------------------------------------------------------------
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
    assert {"POSTPAY_QUORUM_INITIAL_GROUP_SIZE", "POSTPAY_AMQP_URL", "POSTPAY_HEARTBEAT",
            "dead_letter_worker_publisher_confirm_timeout"} <= table.keys()
    assert {name for name in table if name.startswith("POSTPAY_")} <= ROWS.keys(), "not postpay settings"


def test_the_cluster_settings_table_gives_the_values_the_deployments_get() -> None:
    table, _ = cluster_settings()
    config = configmap()
    for name, documented in table.items():
        if not name.startswith("POSTPAY_") or name == "POSTPAY_AMQP_URL":
            continue
        default = ROWS[name]["default"]
        in_k8s = config.get(name, default)
        in_compose = {str(service["environment"].get(name, default)) for service in postpay_containers().values()}
        expected = "(unset)" if documented == "unset" else documented.strip("`")
        assert {same_value(in_k8s), *map(same_value, in_compose)} == {same_value(expected)}, (
            name, documented, in_k8s, in_compose)
    timeout = re.search(r"dead_letter_worker_publisher_confirm_timeout, (\d+)",
                        (DEPLOY / "rabbitmq" / "advanced.config").read_text())
    assert timeout and table["dead_letter_worker_publisher_confirm_timeout"] == f"`{timeout.group(1)}`"


def test_no_deployment_asks_for_more_queue_replicas_than_its_broker_has_nodes() -> None:
    (rabbit,) = of_kind("RabbitmqCluster").values()
    setting = "POSTPAY_QUORUM_INITIAL_GROUP_SIZE"
    if setting in configmap():
        assert 1 <= int(configmap()[setting]) <= rabbit["spec"]["replicas"]
    for name, service in postpay_containers().items():
        if setting in service["environment"]:
            assert 1 <= int(service["environment"][setting]) <= compose_broker_nodes(), name


def test_the_kubernetes_broker_address_balances_over_the_cluster_and_the_failover_example_parses() -> None:
    (rabbit,) = of_kind("RabbitmqCluster").values()
    table, section = cluster_settings()
    assert f"`{rabbit['metadata']['name']}` Service" in table["POSTPAY_AMQP_URL"]
    examples = [line.split("=", 1)[1].strip("'\"") for block in re.findall(r"```(?:sh)?\n(.*?)```", section, re.DOTALL)
                for line in block.splitlines() if line.startswith("POSTPAY_AMQP_URL=")]
    assert examples, "the section shows a failover list"
    for example in examples:
        settings = KernelSettings(amqp_url=example)
        assert settings.amqp_url is not None
        assert len(broker_urls(settings.amqp_url.get_secret_value())) == rabbit["spec"]["replicas"]
