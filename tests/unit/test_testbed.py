"""The test command's decisions (scripts/testbed), with the machine faked: which servers answer, whether
they are installed and by whom, whether a Docker engine answers, whether we are root on Debian, which
tools are missing. Each test runs the whole flow and checks what it would do, say and hand to pytest."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from scripts.testbed.decisions import POSTGRESQL, RABBITMQ, TOOLS, Reach, Server, Tool
from scripts.testbed.flow import WORKERS, run
from tests.support.infra import AMQP_VARIABLE, DATABASE_VARIABLE

AMQP, DATABASE = RABBITMQ.url, POSTGRESQL.url
ALL_TOOLS = {tool.name for tool in TOOLS}


@dataclass
class FakeMachine:
    root: bool = False
    docker: bool = False
    reach_of: dict[str, Reach] = field(default_factory=dict)  # by server name; absent: silent
    installed_servers: set[str] = field(default_factory=set)
    tools: set[str] = field(default_factory=lambda: set(ALL_TOOLS))
    ours: set[str] = field(default_factory=set)
    # What a started PostgreSQL does until configured: Debian's own refuses a password-less postgres.
    postgres_refuses_until_configured: bool = True
    broker_handles: int | None = 65536
    actions: list[str] = field(default_factory=list)

    def root_on_debian(self) -> bool:
        return self.root

    def docker_answers(self) -> bool:
        return self.docker

    def reach(self, server: Server) -> tuple[Reach, str]:
        self.actions.append(f"probe {server.name}")
        reach = self.reach_of.get(server.name, Reach.SILENT)
        return reach, "password authentication failed" if reach is Reach.REFUSES else ""

    def installed(self, server: Server) -> bool:
        return server.package in self.installed_servers

    def has_tool(self, tool: Tool) -> bool:
        return tool.name in self.tools

    def installed_by_us(self) -> set[str]:
        return set(self.ours)

    def install(self, packages: list[str]) -> None:
        self.actions.append("install " + " ".join(packages))
        self.ours |= set(packages)
        self.installed_servers |= set(packages)
        self.tools |= {tool.name for tool in TOOLS if tool.package in packages}

    def start(self, server: Server) -> str:
        self.actions.append(f"start {server.name}")
        fresh = server is POSTGRESQL and self.postgres_refuses_until_configured
        self.reach_of[server.name] = Reach.REFUSES if fresh else Reach.ANSWERS
        return f"stop-{server.name}"

    def configure_postgres(self) -> list[str]:
        self.actions.append("configure PostgreSQL")
        self.reach_of[POSTGRESQL.name] = Reach.ANSWERS
        return ["added the trust line"]

    def broker_handle_limit(self) -> int | None:
        return self.broker_handles

    def raise_broker_handle_limit(self, limit: int) -> None:
        self.actions.append(f"raise RabbitMQ's file handles to {limit}")
        self.broker_handles = limit

    def changes(self) -> list[str]:
        return [action for action in self.actions if not action.startswith("probe ")]


def both(reach: Reach) -> dict[str, Reach]:
    return {RABBITMQ.name: reach, POSTGRESQL.name: reach}


def prepare(
    machine: FakeMachine, environ: dict[str, str] | None = None, args: tuple[str, ...] = ()
) -> tuple[dict[str, str], list[str], str]:
    said: list[str] = []
    env, argv = run(machine, {"PATH": "/usr/bin", **(environ or {})}, list(args), said.append)
    return env, argv, "\n".join(said)


# ---- (a) a fresh Debian machine, as root ------------------------------------------------------------


def test_fresh_debian_as_root_installs_starts_and_lets_the_tests_into_its_own_postgresql() -> None:
    machine = FakeMachine(root=True, tools=set())

    env, argv, said = prepare(machine)

    assert machine.changes() == [
        "install rabbitmq-server postgresql chromium php-cli php-curl prometheus",
        "start RabbitMQ",
        "start PostgreSQL",
        "configure PostgreSQL",
    ]
    assert env[AMQP_VARIABLE] == AMQP and env[DATABASE_VARIABLE] == DATABASE
    assert "starting RabbitMQ and PostgreSQL (installed by this script)" in said
    assert "it was installed by this script" in said  # the configuration change is announced
    assert "stay running for the next run; nothing is stopped" in said
    assert "stop-RabbitMQ; stop-PostgreSQL" in said


def test_root_on_debian_starts_servers_installed_but_stopped_and_installs_only_missing_tools() -> None:
    machine = FakeMachine(
        root=True,
        installed_servers={"rabbitmq-server", "postgresql"},
        tools=ALL_TOOLS - {"promtool"},
        postgres_refuses_until_configured=False,
    )

    env, _, said = prepare(machine)

    assert machine.changes() == ["install prometheus", "start RabbitMQ", "start PostgreSQL"]
    assert "starting RabbitMQ and PostgreSQL (installed here but not running)" in said
    assert env[AMQP_VARIABLE] == AMQP and env[DATABASE_VARIABLE] == DATABASE


def test_a_started_postgresql_this_script_did_not_install_is_not_reconfigured_when_it_refuses() -> None:
    machine = FakeMachine(root=True, installed_servers={"rabbitmq-server", "postgresql"})

    env, _, said = prepare(machine)

    assert "configure PostgreSQL" not in machine.actions
    assert DATABASE_VARIABLE not in env
    assert "does not change a server it did not install" in said and "POSTPAY_TEST_CONFIGURE_POSTGRES=1" in said


def test_a_postgresql_installed_by_an_earlier_run_is_configured_after_its_start() -> None:
    machine = FakeMachine(
        root=True, installed_servers={"rabbitmq-server", "postgresql"}, ours={"rabbitmq-server", "postgresql"}
    )

    env, _, said = prepare(machine)

    assert machine.changes() == ["start RabbitMQ", "start PostgreSQL", "configure PostgreSQL"]
    assert "starting RabbitMQ and PostgreSQL (installed by this script)" in said
    assert env[DATABASE_VARIABLE] == DATABASE


# ---- (b) a Docker engine, no local servers ----------------------------------------------------------


def test_docker_and_nothing_running_leaves_the_urls_unset_for_testcontainers() -> None:
    machine = FakeMachine(docker=True)

    env, _, said = prepare(machine)

    assert machine.changes() == []
    assert AMQP_VARIABLE not in env and DATABASE_VARIABLE not in env
    assert said.splitlines()[0] == "using Docker via testcontainers for RabbitMQ and PostgreSQL"


def test_docker_wins_over_installing_servers_even_as_root_but_missing_tools_are_still_installed() -> None:
    machine = FakeMachine(root=True, docker=True, tools=ALL_TOOLS - {"chromium", "rabbitmq-server"})

    env, _, said = prepare(machine)

    # rabbitmq-server comes as a tool (the private-node tests); nothing is started.
    assert machine.changes() == ["install chromium rabbitmq-server"]
    assert AMQP_VARIABLE not in env and DATABASE_VARIABLE not in env
    assert "using Docker via testcontainers for RabbitMQ and PostgreSQL" in said


def test_docker_without_root_names_the_missing_tools_and_their_packages_and_installs_nothing() -> None:
    machine = FakeMachine(docker=True, tools={"rabbitmq-server"})

    _, _, said = prepare(machine)

    assert machine.changes() == []
    for words in (
        "chromium (Debian package chromium)",
        "php (Debian package php-cli)",
        "php-curl (Debian package php-curl)",
        "promtool (Debian package prometheus)",
        "run this as root on Debian",
    ):
        assert words in said


def test_a_local_postgresql_that_refuses_is_left_alone_and_docker_used_for_it_alone() -> None:
    machine = FakeMachine(
        root=True, docker=True, reach_of={RABBITMQ.name: Reach.ANSWERS, POSTGRESQL.name: Reach.REFUSES}
    )

    env, _, said = prepare(machine)

    assert machine.changes() == []
    assert env[AMQP_VARIABLE] == AMQP and DATABASE_VARIABLE not in env
    assert "using the RabbitMQ already running at 127.0.0.1:5672" in said
    assert "using Docker via testcontainers for PostgreSQL" in said
    assert "password authentication failed" in said  # why the local one was passed over


# ---- (c) both already run ---------------------------------------------------------------------------


@pytest.mark.parametrize("root", [False, True])
def test_servers_already_running_are_used_and_nothing_is_changed(root: bool) -> None:
    machine = FakeMachine(root=root, docker=True, reach_of=both(Reach.ANSWERS))

    env, _, said = prepare(machine)

    assert machine.changes() == []
    assert env[AMQP_VARIABLE] == AMQP and env[DATABASE_VARIABLE] == DATABASE
    assert said.splitlines() == [
        "using the RabbitMQ and PostgreSQL already running at 127.0.0.1:5672 and 127.0.0.1:5432",
        "running: .venv/bin/python -m pytest -q -p no:cacheprovider -n 3",
    ]


def test_a_running_postgresql_that_refuses_is_not_reconfigured_even_as_root() -> None:
    machine = FakeMachine(
        root=True,
        reach_of={RABBITMQ.name: Reach.ANSWERS, POSTGRESQL.name: Reach.REFUSES},
        installed_servers={"rabbitmq-server", "postgresql"},
    )

    env, _, said = prepare(machine)

    assert machine.changes() == []
    assert DATABASE_VARIABLE not in env
    assert "host all all 127.0.0.1/32 trust" in said and "POSTPAY_TEST_CONFIGURE_POSTGRES=1" in said


def test_the_explicit_opt_in_configures_a_running_postgresql_and_says_so() -> None:
    machine = FakeMachine(
        root=True,
        reach_of={RABBITMQ.name: Reach.ANSWERS, POSTGRESQL.name: Reach.REFUSES},
        installed_servers={"rabbitmq-server", "postgresql"},
    )

    env, _, said = prepare(machine, {"POSTPAY_TEST_CONFIGURE_POSTGRES": "1"})

    assert machine.changes() == ["configure PostgreSQL"]
    assert env[DATABASE_VARIABLE] == DATABASE
    assert "POSTPAY_TEST_CONFIGURE_POSTGRES=1 allows changing a PostgreSQL this script did not install" in said
    assert "PostgreSQL: added the trust line" in said


def test_the_opt_in_does_nothing_without_root() -> None:
    machine = FakeMachine(reach_of={RABBITMQ.name: Reach.ANSWERS, POSTGRESQL.name: Reach.REFUSES})

    env, _, _ = prepare(machine, {"POSTPAY_TEST_CONFIGURE_POSTGRES": "1"})

    assert machine.changes() == [] and DATABASE_VARIABLE not in env


# ---- the caller's own URLs, and nothing at all -------------------------------------------------------


def test_urls_the_caller_set_are_kept_unprobed_and_untouched() -> None:
    given = {AMQP_VARIABLE: "amqp://me:secret@rabbit.example:5672/", DATABASE_VARIABLE: "postgresql://db/x"}
    machine = FakeMachine(root=True, docker=True)

    env, _, said = prepare(machine, given)

    assert machine.actions == []
    assert env[AMQP_VARIABLE] == given[AMQP_VARIABLE] and env[DATABASE_VARIABLE] == given[DATABASE_VARIABLE]
    assert "named by POSTPAY_TEST_AMQP_URL and POSTPAY_TEST_DATABASE_URL" in said
    assert "secret" not in said


def test_no_root_no_docker_nothing_running_says_what_is_needed_and_still_runs_the_tests() -> None:
    machine = FakeMachine()

    env, argv, said = prepare(machine, args=("tests/unit/test_pricing.py",))

    assert machine.changes() == []
    assert AMQP_VARIABLE not in env and DATABASE_VARIABLE not in env
    assert "no RabbitMQ for the tests" in said and "no PostgreSQL for the tests" in said
    assert "start a Docker engine" in said and "as root on Debian" in said
    assert argv[-1] == "tests/unit/test_pricing.py"  # unit tests need neither, so they still run


def test_arguments_pass_through_to_pytest_after_its_fixed_options() -> None:
    machine = FakeMachine(reach_of=both(Reach.ANSWERS))

    _, argv, said = prepare(machine, args=("tests/unit", "-k", "pricing"))

    fixed = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", str(WORKERS)]
    assert argv[1:] == [*fixed, "tests/unit", "-k", "pricing"]
    assert said.endswith("running: .venv/bin/python -m pytest -q -p no:cacheprovider -n 3 tests/unit -k pricing")


@pytest.mark.parametrize(
    "args",
    [
        ("-n", "0"),
        ("-n", "2", "tests/unit"),
        ("tests/unit", "-n4"),
        ("-nauto",),
        ("--numprocesses", "1"),
        ("--numprocesses=2",),
        ("--pdb",),  # xdist refuses to debug across workers
        ("-p", "no:xdist"),  # which has no -n then
        ("-pno:xdist",),
    ],
)
def test_the_callers_own_worker_count_or_serial_run_wins(args: tuple[str, ...]) -> None:
    _, argv, _ = prepare(FakeMachine(reach_of=both(Reach.ANSWERS)), args=args)

    assert argv[1:] == ["-m", "pytest", "-q", "-p", "no:cacheprovider", *args]


@pytest.mark.parametrize("args", [("-k", "12"), ("tests/unit/test_n1.py",), ("-x", "--no-header")])
def test_arguments_that_only_look_like_a_worker_count_keep_the_workers(args: tuple[str, ...]) -> None:
    _, argv, _ = prepare(FakeMachine(reach_of=both(Reach.ANSWERS)), args=args)

    assert argv[6:8] == ["-n", str(WORKERS)] and argv[8:] == list(args)


# ---- the broker's file handles ----------------------------------------------------------------------


def test_a_local_broker_at_debians_default_handle_limit_is_raised_for_its_life_and_told() -> None:
    machine = FakeMachine(root=True, reach_of=both(Reach.ANSWERS), broker_handles=927)

    _, _, said = prepare(machine)

    assert machine.changes() == ["raise RabbitMQ's file handles to 16384"]
    assert "from 927 to 16384 until it restarts" in said and "LimitNOFILE" in said


@pytest.mark.parametrize(
    ("root", "handles", "environ"),
    [
        (False, 927, {}),  # not ours to change without root
        (True, None, {}),  # rabbitmqctl could not say: nothing guessed
        (True, 927, {AMQP_VARIABLE: "amqp://guest:guest@broker.example:5672/"}),  # the caller's broker
    ],
)
def test_the_handle_limit_is_left_alone_where_it_is_not_ours_to_read_or_change(
    root: bool, handles: int | None, environ: dict[str, str]
) -> None:
    machine = FakeMachine(root=root, docker=True, reach_of=both(Reach.ANSWERS), broker_handles=handles)

    prepare(machine, environ)

    assert not any("file handles" in change for change in machine.changes())
