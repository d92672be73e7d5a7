"""deploy/ and docs/ agree with the code: every file parses; every service has a container and a
Deployment with probes and a disruption budget; the broker's users and the database's roles are the ones
the catalog and the services ask for; the configuration reference is the generated one; the commands
the guides tell an operator to type exist. (Each part's own secrets and logins: test_deploy_access.py.)
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

from postpay.bootstrap import SERVICES
from postpay.cli import app
from postpay.commands.config import reference_markdown
from postpay.commands.events import producers_table
from postpay.commands.run import Part, services_for
from services.signup.settings import SignupSettings
from tests.support.deploy_files import (
    COMPOSE_VARIABLES,
    DEPLOY,
    K8S,
    PARTS,
    ROOT,
    ROWS,
    SECRETS,
    compose,
    configmap,
    consuming_parts,
    container_of,
    env_example,
    load_all,
    of_kind,
    postpay_containers,
)


# -- every file parses ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path",
    sorted(p for p in DEPLOY.rglob("*.y*ml") if "whmcs" not in p.parts),
    ids=lambda p: str(p.relative_to(DEPLOY)),
)
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
    assert consuming_parts() == {"signup-handlers", "provisioner", "usage-collector", "invoicer"}


# Consumers, and the signup's web, run two replicas or more; the rest one.
REPLICATED = consuming_parts() | {"signup-web"}


# -- Docker Compose ------------------------------------------------------------------------------
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
        assert replicas >= 2 if part in REPLICATED else replicas == 1, name


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
    # The meter's choice of usage source is no secret: it belongs with every container's settings.
    assert {"POSTPAY_USAGE_SOURCE", "POSTPAY_METER_INTERVAL_SECONDS", "POSTPAY_METER_GAP_POLICY"} <= shared.keys()
    header = (DEPLOY / ".env.example").read_text().split("\n\n", 1)[0]
    assert "refuses to start" in header and "generate real ones" in header
    assert not (DEPLOY / ".env").exists() or ".env" in (ROOT / ".gitignore").read_text().split()
    assert not (DEPLOY / "postpay.env").exists() or "postpay.env" in (ROOT / ".gitignore").read_text().split()


# -- Kubernetes ----------------------------------------------------------------------------------
def test_every_part_has_a_deployment_with_probes_and_a_disruption_budget() -> None:
    deployments, budgets = of_kind("Deployment"), of_kind("PodDisruptionBudget")
    assert set(deployments) == {*PARTS, "operator"}
    health_port = int(configmap()["POSTPAY_HEALTH_PORT"])
    for part, deployment in deployments.items():
        if part == "operator":
            continue
        container = container_of(deployment)
        assert container["args"] == ["run", part]
        assert deployment["spec"]["replicas"] >= 2 if part in REPLICATED else deployment["spec"]["replicas"] == 1
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


def test_the_signup_web_app_is_reachable_through_its_service_and_ingress() -> None:
    signup = container_of(of_kind("Deployment")["signup-web"])
    web_port = {port["name"]: port["containerPort"] for port in signup["ports"]}["http"]
    # Only the web half serves pages: the handlers' pods are never behind the Service.
    assert "http" not in {port["name"] for port in container_of(of_kind("Deployment")["signup-handlers"])["ports"]}
    assert web_port == SignupSettings.model_fields["signup_port"].default
    assert configmap()["POSTPAY_SIGNUP_HOST"] == "0.0.0.0"
    service = of_kind("Service")["signup"]
    assert (
        service["spec"]["selector"].items()
        <= of_kind("Deployment")["signup-web"]["spec"]["template"]["metadata"]["labels"].items()
    )
    assert (
        not service["spec"]["selector"].items()
        <= of_kind("Deployment")["signup-handlers"]["spec"]["template"]["metadata"]["labels"].items()
    )
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
    environment = dict(
        item.split("=", 1) for keyword, rest in instructions if keyword == "ENV" for item in rest.split()
    )
    health = environment["POSTPAY_HEALTH_PORT"]
    assert (
        health
        == configmap()["POSTPAY_HEALTH_PORT"]
        == str(postpay_containers()["invoicer"]["environment"]["POSTPAY_HEALTH_PORT"])
    )
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
    assert written == reference_markdown(), "stale: .venv/bin/python -m scripts.regen_docs"


def test_the_readme_carries_the_generated_configuration_table() -> None:
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- configuration-reference -->\n", 1)[1].split("\n<!-- /configuration-reference -->", 1)[0]
    table = "\n".join(line for line in reference_markdown().splitlines() if line.startswith("|"))
    assert block == table, "stale: .venv/bin/python -m scripts.regen_docs"


def test_the_security_guide_carries_the_generated_producers_table() -> None:
    guide = (ROOT / "docs" / "security.md").read_text()
    block = guide.split("<!-- producers -->\n", 1)[1].split("\n<!-- /producers -->", 1)[0]
    assert block == producers_table(), "stale: .venv/bin/python -m scripts.regen_docs"


def documented_commands() -> Iterator[tuple[str, list[str]]]:
    """``postpay ...`` at the start of a line of a shell block, or after ``exec <where>``, ``run --rm
    <where>`` or ``--``."""
    for doc in (ROOT / "docs" / "operations.md", DEPLOY / "README.md"):
        for block in re.findall(r"```(?:sh)?\n(.*?)```", doc.read_text(), flags=re.DOTALL):
            for line in block.replace("\\\n", " ").splitlines():
                tokens = shlex.split(line.split("#", 1)[0])
                for index, token in enumerate(tokens):
                    if token == "postpay" and (
                        index == 0
                        or tokens[index - 1] == "--"
                        or (index >= 2 and tokens[index - 2] == "exec")
                        or tokens[max(0, index - 3) : index - 1] == ["run", "--rm"]
                    ):
                        yield doc.name, tokens[index + 1 :]


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
