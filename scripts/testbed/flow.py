"""From probes to the pytest command: gather the facts, decide, carry the decisions out, say each step."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from scripts.testbed.decisions import (
    CONFIGURE_VARIABLE,
    RABBITMQ,
    SERVERS,
    TOOLS,
    Choice,
    Facts,
    Probe,
    Reach,
    Server,
    Source,
    Tool,
    after_start,
    describe,
    joined,
    missing_tools_line,
    plan,
)

# File handles the local broker must be allowed (RabbitMQ's own count, not the OS's): each quorum queue
# holds a few, the suite has some hundreds alive at a time, and a broker at its limit stops accepting
# connections without a word, so every later test times out. Debian's default (ulimit 1024) gives 927.
BROKER_HANDLES = 16384
PYTEST = ["-m", "pytest", "-q", "-p", "no:cacheprovider"]
# pytest-xdist workers. Most of the suite waits (on the broker, subprocesses, timeouts), so three beat
# two on two cores; tests/support/schedule.py keeps the heavy tests to two of them at a time.
WORKERS = 3
# Where the tests' URL names a server running here; a Docker or missing one leaves the variable unset.
LOCAL = {Source.RUNNING, Source.CONFIGURE}


class Machine(Protocol):
    def root_on_debian(self) -> bool: ...
    def docker_answers(self) -> bool: ...
    def reach(self, server: Server) -> tuple[Reach, str]: ...
    def installed(self, server: Server) -> bool: ...
    def has_tool(self, tool: Tool) -> bool: ...
    def installed_by_us(self) -> set[str]: ...
    def install(self, packages: list[str]) -> None: ...
    def start(self, server: Server) -> str: ...
    def configure_postgres(self) -> list[str]: ...
    def broker_handle_limit(self) -> int | None: ...
    def raise_broker_handle_limit(self, limit: int) -> None: ...


def gather(machine: Machine, environ: Mapping[str, str]) -> Facts:
    ours = machine.installed_by_us()
    probes = {}
    for server in SERVERS:
        given = environ.get(server.variable) or None
        # A server named by its variable is the caller's business: not probed, not touched.
        reach, detail = (Reach.SILENT, "") if given else machine.reach(server)
        probes[server] = Probe(reach, detail, given, machine.installed(server), server.package in ours)
    return Facts(
        probes=probes,
        docker=machine.docker_answers(),
        root_on_debian=machine.root_on_debian(),
        missing_tools=tuple(tool for tool in TOOLS if not machine.has_tool(tool)),
        configure_postgres=environ.get(CONFIGURE_VARIABLE, "") == "1",
    )


def run(
    machine: Machine, environ: Mapping[str, str], args: Sequence[str], say: Callable[[str], None]
) -> tuple[dict[str, str], list[str]]:
    """Prepare the servers; return the environment and argv pytest runs with."""
    facts = gather(machine, environ)
    steps = plan(facts)
    for line in describe(steps.choices):
        say(line)
    if steps.missing_tools:
        say(missing_tools_line(steps.missing_tools))
    if steps.packages:
        say(f"installing {', '.join(steps.packages)} with apt-get (the install starts no service)")
        machine.install(list(steps.packages))

    final: list[Choice] = []
    started: list[tuple[Server, str]] = []
    for choice in steps.choices:
        if choice.source in (Source.START, Source.INSTALL):
            started.append((choice.server, machine.start(choice.server)))
            choice = after_start(choice, *machine.reach(choice.server), facts)
            if choice.source is Source.UNAVAILABLE:
                say(f"no {choice.server.name} for the tests, which will fail where they need it: {choice.reason}")
        if choice.source is Source.CONFIGURE:
            choice = configure(machine, choice, facts, say)
        final.append(choice)
    if started:
        names = joined(server.name for server, _ in started)
        say(
            f"{names} started by this script stay running for the next run; nothing is stopped. To stop: "
            + "; ".join(stop for _, stop in started)
        )

    broker = next(choice for choice in final if choice.server is RABBITMQ)
    if broker.source in LOCAL and facts.root_on_debian:
        _mind_broker_handles(machine, say)

    env = dict(environ)
    for choice in final:
        if choice.source in LOCAL:
            env[choice.server.variable] = choice.server.url
        elif choice.source is not Source.GIVEN:
            env.pop(choice.server.variable, None)  # testcontainers, or the suite's own "needs X" failure
    argv = [sys.executable, *PYTEST, *workers(args), *args]
    say("running: .venv/bin/python " + " ".join(argv[1:]))
    return env, argv


def workers(args: Sequence[str]) -> list[str]:
    """``-n WORKERS``, unless the caller chose (``-n 0`` runs serially) or asked for what xdist refuses
    or lacks: ``--pdb`` debugs in this process, ``-p no:xdist`` has no ``-n``."""
    for arg, following in zip(args, [*args[1:], ""]):
        if arg in ("-n", "--numprocesses", "--pdb", "-pno:xdist") or arg.startswith("--numprocesses="):
            return []
        if re.fullmatch(r"-n(\d+|auto|logical)", arg) or (arg == "-p" and following == "no:xdist"):
            return []
    return ["-n", str(WORKERS)]


def configure(machine: Machine, choice: Choice, facts: Facts, say: Callable[[str], None]) -> Choice:
    why = (
        "it was installed by this script"
        if choice.ours
        else f"{CONFIGURE_VARIABLE}=1 allows changing a PostgreSQL this script did not install"
    )
    say(
        f"changing PostgreSQL's configuration ({why}): trusting 127.0.0.1 in pg_hba.conf and creating "
        "database 'test' if missing"
    )
    for change in machine.configure_postgres() or ["nothing needed changing"]:
        say(f"PostgreSQL: {change}")
    reach, detail = machine.reach(choice.server)
    settled = after_start(choice, reach, detail, facts)
    if settled.source is not Source.RUNNING:
        say(f"PostgreSQL still turns the tests down after that: {detail or 'nothing answers'}")
        return Choice(choice.server, Source.UNAVAILABLE, detail)
    return settled


def _mind_broker_handles(machine: Machine, say: Callable[[str], None]) -> None:
    limit = machine.broker_handle_limit()
    if limit is None or limit >= BROKER_HANDLES:
        return
    machine.raise_broker_handle_limit(BROKER_HANDLES)
    say(
        f"raised the local RabbitMQ's file-handle limit from {limit} to {BROKER_HANDLES} until it restarts "
        "(at its limit it stops accepting connections and the suite's quorum queues need more); "
        "to keep it, raise the node's open-files limit (LimitNOFILE / ulimit -n)"
    )
