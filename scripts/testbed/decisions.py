"""The test command's decisions, from facts probed beforehand: no I/O here, so every situation can be
faked in a unit test (tests/unit/test_testbed.py)."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from tests.support.infra import AMQP_VARIABLE, DATABASE_VARIABLE

CONFIGURE_VARIABLE = "POSTPAY_TEST_CONFIGURE_POSTGRES"


@dataclass(frozen=True)
class Server:
    name: str
    variable: str
    url: str  # what the tests use when the server runs here
    package: str  # the Debian package that installs it

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or 0

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def is_broker(self) -> bool:
        return self.url.startswith("amqp")


RABBITMQ = Server("RabbitMQ", AMQP_VARIABLE, "amqp://guest:guest@127.0.0.1:5672/", "rabbitmq-server")
POSTGRESQL = Server("PostgreSQL", DATABASE_VARIABLE, "postgresql://postgres@127.0.0.1:5432/test", "postgresql")
SERVERS = (RABBITMQ, POSTGRESQL)


@dataclass(frozen=True)
class Tool:
    name: str
    package: str
    needed_by: str


# Needed whichever way the servers come: the suite runs these programs itself.
TOOLS = (
    Tool("chromium", "chromium", "the browser tests (tests/e2e, /usr/bin/chromium)"),
    Tool("php", "php-cli", "the WHMCS hook test"),
    Tool("php-curl", "php-curl", "the WHMCS hook test (the hook calls postpay with PHP's curl)"),
    Tool("promtool", "prometheus", "the alert-rule tests (the prometheus service is not started)"),
    Tool(
        "rabbitmq-server",
        "rabbitmq-server",
        "the tests that run a private RabbitMQ node, and erl for the broker config check",
    ),
)


class Reach(enum.Enum):
    ANSWERS = "answers"  # the tests' URL works
    REFUSES = "refuses"  # something listens on the port but turns the URL down
    SILENT = "silent"  # nothing listens


@dataclass(frozen=True)
class Probe:
    """What is known about one server before anything is done."""

    reach: Reach
    detail: str = ""  # why it refuses
    given_url: str | None = None  # the POSTPAY_TEST_* variable, when set
    installed: bool = False  # its Debian package is here
    ours: bool = False  # this script installed it, so may configure it


@dataclass(frozen=True)
class Facts:
    probes: dict[Server, Probe]
    docker: bool
    root_on_debian: bool
    missing_tools: tuple[Tool, ...]
    configure_postgres: bool  # POSTPAY_TEST_CONFIGURE_POSTGRES=1: the operator allows changing a running one


class Source(enum.Enum):
    GIVEN = "given"  # the POSTPAY_TEST_* URL the caller set
    RUNNING = "running"  # already running here
    START = "start"  # installed here, not running: start it
    INSTALL = "install"  # install it, then start it
    CONFIGURE = "configure"  # running PostgreSQL this script may change: let the tests in
    DOCKER = "docker"  # testcontainers
    UNAVAILABLE = "unavailable"  # nothing this script may do: the tests needing it fail


@dataclass(frozen=True)
class Choice:
    server: Server
    source: Source
    reason: str = ""
    ours: bool = False


@dataclass(frozen=True)
class Plan:
    choices: tuple[Choice, ...]
    packages: tuple[str, ...]  # to install with apt-get (root on Debian only)
    missing_tools: tuple[Tool, ...]  # not installable here: named to the user


def may_configure(server: Server, probe: Probe, facts: Facts) -> bool:
    return not server.is_broker and facts.root_on_debian and (probe.ours or facts.configure_postgres)


def choose(server: Server, probe: Probe, facts: Facts) -> Choice:
    if probe.given_url:
        return Choice(server, Source.GIVEN)
    if probe.reach is Reach.ANSWERS:
        return Choice(server, Source.RUNNING)
    if probe.reach is Reach.REFUSES:
        if may_configure(server, probe, facts):
            return Choice(server, Source.CONFIGURE, refusal(server, probe.detail), ours=probe.ours)
        if facts.docker:
            return Choice(server, Source.DOCKER, refusal(server, probe.detail))
        return Choice(server, Source.UNAVAILABLE, refusal_advice(server, probe.detail))
    if facts.docker:
        return Choice(server, Source.DOCKER)
    if facts.root_on_debian:
        return Choice(server, Source.START if probe.installed else Source.INSTALL, ours=probe.ours)
    return Choice(server, Source.UNAVAILABLE, absent_advice(server))


def plan(facts: Facts) -> Plan:
    choices = tuple(choose(server, facts.probes[server], facts) for server in SERVERS)
    if not facts.root_on_debian:
        return Plan(choices, (), facts.missing_tools)
    wanted = [c.server.package for c in choices if c.source is Source.INSTALL]
    wanted += [tool.package for tool in facts.missing_tools]
    return Plan(choices, tuple(dict.fromkeys(wanted)), ())


def after_start(choice: Choice, reach: Reach, detail: str, facts: Facts) -> Choice:
    """Where a server this script just started (or installed and started) stands."""
    ours = choice.ours or choice.source is Source.INSTALL
    if reach is Reach.ANSWERS:
        return Choice(choice.server, Source.RUNNING, ours=ours)
    if reach is Reach.REFUSES:
        probe = Probe(reach, detail, installed=True, ours=ours)
        if may_configure(choice.server, probe, facts):
            return Choice(choice.server, Source.CONFIGURE, refusal(choice.server, detail), ours=ours)
        return Choice(choice.server, Source.UNAVAILABLE, refusal_advice(choice.server, detail))
    return Choice(
        choice.server,
        Source.UNAVAILABLE,
        f"{choice.server.name} was started but nothing answers at {choice.server.address}",
    )


def refusal(server: Server, detail: str) -> str:
    return f"the {server.name} at {server.address} turns down {masked(server.url)} ({detail})"


def refusal_advice(server: Server, detail: str) -> str:
    if not server.is_broker:
        fix = (
            "let postgres into database 'test' from 127.0.0.1 without a password (the line "
            "'host all all 127.0.0.1/32 trust' first in pg_hba.conf, then 'createdb test'), or rerun as root "
            f"with {CONFIGURE_VARIABLE}=1 to have this script make exactly that change"
        )
    else:
        fix = "let the guest user (password guest) in from 127.0.0.1 on vhost /"
    return (
        f"{refusal(server, detail)}; this script does not change a server it did not install: {fix}; "
        f"or set {server.variable} to a server the tests may use, or start a Docker engine"
    )


def absent_advice(server: Server) -> str:
    return (
        f"nothing answers at {server.address}: start one there, start a Docker engine (testcontainers), "
        f"run this as root on Debian to install and start one, or set {server.variable}"
    )


def masked(url: str) -> str:
    """A URL fit for the terminal: its password, if any, replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def joined(words: Iterable[str]) -> str:
    words = list(words)
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def describe(choices: Iterable[Choice]) -> list[str]:
    """One line per kind of source, so the usual situations read as one sentence each."""
    groups: dict[Source, list[Choice]] = {}
    for choice in choices:
        groups.setdefault(choice.source, []).append(choice)
    lines = []
    for source, group in groups.items():
        names = joined(c.server.name for c in group)
        if source is Source.GIVEN:
            lines.append(f"using the {names} named by {joined(c.server.variable for c in group)}")
        elif source is Source.RUNNING:
            lines.append(f"using the {names} already running at {joined(c.server.address for c in group)}")
        elif source in (Source.START, Source.INSTALL):
            how = (
                "installed by this script"
                if source is Source.INSTALL or all(c.ours for c in group)
                else "installed here but not running"
            )
            lines.append(f"starting {names} ({how})")
        elif source is Source.CONFIGURE:
            lines.extend(f"{c.reason}: letting the tests in (see below)" for c in group)
        elif source is Source.DOCKER:
            lines.append(f"using Docker via testcontainers for {names}")
            lines.extend(f"  ({c.reason}, so not that one)" for c in group if c.reason)
        else:
            lines.extend(
                f"no {c.server.name} for the tests, which will fail where they need it: {c.reason}" for c in group
            )
    return lines


def missing_tools_line(tools: Iterable[Tool]) -> str:
    named = [f"{t.name} (Debian package {t.package}) for {t.needed_by}" for t in tools]
    return (
        f"missing here: {'; '.join(named)}. Install them, or run this as root on Debian to have them "
        "installed; until then the tests that need them fail"
    )
