"""What deploy/ holds, parsed, and what production needs of it, derived from the code: for the tests of
deploy/ (test_deploy_files.py, test_deploy_access.py).

What production "needs" is derived from the settings classes, not listed here: every secret with a
built-in (demo) value, every setting whose default points at this machine (127.0.0.1) (the console's
own, such as where it listens, only for the console), each part's own broker and database URLs, and the
health port (probes and scrapes use it); which part uses which secret comes from the rotation table of
docs/operations.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from postpay.bootstrap import SERVICES, System
from postpay.commands.broker import ADMIN_PASSWORD_VARIABLE, password_variable
from postpay.commands.config import reference_rows
from postpay.commands.run import HALVES, Part, consumes, services_for
from shared.bus.identity import RELAY, BrokerUsers
from shared.bus.memory import InMemoryBus
from shared.db import Database
from shared.events import OPERATOR
from shared.settings import KernelSettings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
PRODUCERS = (*SERVICES, OPERATOR, RELAY)
USERS = BrokerUsers()  # deploy/ uses the default user names
# Compose builds the URLs and the broker's definitions from these passwords.
COMPOSE_VARIABLES = (
    {password_variable(p) for p in PRODUCERS}
    | {ADMIN_PASSWORD_VARIABLE, "POSTGRES_PASSWORD"}
    | {f"POSTGRES_{name.upper()}_PASSWORD" for name in SERVICES}
)

# deploy/ runs the signup as its two halves, web and handlers, each its own container and Deployment;
# `postpay run signup` (both in one process) is for a small install and development.
PARTS = [part.value for part in Part if part not in (Part.all, Part.signup)]
SIGNUP_HALVES = [part.value for part in HALVES]
ROWS = {row["variable"]: row for row in reference_rows()}
SECRETS = {name for name, row in ROWS.items() if row["secret"]}
URLS = {"POSTPAY_AMQP_URL", "POSTPAY_DATABASE_URL"}  # each part's own broker user and database role


# Parts that log in as the database owner (a member of every service's role) instead of a role of their own.
OWNER_PARTS = ("relay", "operator", "console")


def producer_of(part: str) -> str:
    """The producer whose broker user a part logs in as: its own service's; the relay's; the console
    requeues and purges as the operators' tools do."""
    if part in SIGNUP_HALVES:
        return HALVES[Part(part)][0]
    return {"relay": RELAY, "console": OPERATOR}.get(part, part.replace("-", "_"))


def required_settings(part: str) -> set[str]:
    """What a postpay process running ``part`` needs (its own secrets are ``secrets_of``). Every process
    builds every service, so reads every service's settings; only the console reads the console's."""
    loopback = {
        name
        for name, row in ROWS.items()
        if "127.0.0.1" in row["default"] and name not in SECRETS and (part == "console" or row["owner"] != "console")
    }
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
        for user in cells[1].split(",") if names else []:
            # "signup" is both of its halves: each builds the signup service and runs its preflight.
            parts = {
                "usage collector": ["usage-collector"],
                "the operators' tools": ["operator"],
                "signup": SIGNUP_HALVES,
            }.get(user.strip(), [user.strip()])
            for part in parts:
                if part in used:
                    used[part] |= set(names)
    assert used["signup-web"] and used["invoicer"], "the rotation table of docs/operations.md was not found"
    return used


def consuming_parts() -> set[str]:
    db = Database("sqlite://")
    system = System(kernel=KernelSettings(), db=db, bus=InMemoryBus())
    try:
        return {
            part
            for part in PARTS
            if consumes(Part(part)) and any(system.service(name).subscriptions for name in services_for(Part(part)))
        }
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


def postpay_containers() -> dict[str, dict[str, Any]]:
    return {
        name: service for name, service in compose()["services"].items() if service.get("command", [None])[0] == "run"
    }


def compose_environment(service: dict[str, Any]) -> dict[str, str]:
    return {name: str(value) for name, value in service["environment"].items()}


def container_of(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def secret_refs(deployment: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Each variable taken from a Secret, by name: {"name": secret, "key": key}."""
    return {
        variable["name"]: {k: v for k, v in variable["valueFrom"]["secretKeyRef"].items() if k != "optional"}
        for variable in container_of(deployment)["env"]
        if "secretKeyRef" in variable.get("valueFrom", {})
    }
