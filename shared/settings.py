"""Settings of the kernel and of the upstream connections, from ``POSTPAY_*`` variables and ``.env``.

Every service adds its own settings class next to its code (``services/<name>/settings.py``) with the
same prefix. Secrets are ``SecretStr``: printing or logging a settings object shows ``**********``.
With nothing configured, postpay runs on its embedded defaults: an in-process bus and a SQLite file.
"""

from __future__ import annotations

import json
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.bus.addresses import broker_urls
from shared.bus.identity import BrokerUsers
from shared.upstream.pacing import PacingPolicy

SETTINGS_CONFIG = SettingsConfigDict(env_prefix="POSTPAY_", env_file=".env", env_file_encoding="utf-8", extra="ignore")


def comma_separated_floats(value: object) -> object:
    if isinstance(value, str):
        return [float(part) for part in value.split(",") if part.strip()]
    return value


class KernelSettings(BaseSettings):
    """The bus, the database and logging."""

    # Its URLs carry passwords: an invalid value must not be echoed in the error.
    model_config = SettingsConfigDict(**SETTINGS_CONFIG, hide_input_in_errors=True)

    amqp_url: SecretStr | None = Field(
        default=None,
        description=(
            "RabbitMQ URL (amqp://user:pass@host:5672/vhost), or the nodes of one cluster as a failover list "
            "separated by ';' (tried in order; same user and vhost). Unset: the in-process bus."
        ),
    )
    database_url: SecretStr = Field(
        default=SecretStr("sqlite:///postpay.sqlite"),
        description="SQLAlchemy URL: sqlite:///file.sqlite or postgresql+psycopg://user:pass@host/db.",
    )
    bus_namespace: str = Field(
        default="", description="Prefix of the exchange and every queue name (isolates test runs)."
    )
    broker_users: str = Field(
        default="",
        description='RabbitMQ user each producer publishes as, as JSON {"signup": "...", "operator": "..."}; '
        "unset ones are postpay-<producer> (postpay-signup, postpay-usage-collector, postpay-operator, "
        "postpay-relay). A consumer refuses an event whose user is not one of its producers'. One plain "
        "name (e.g. guest): every producer is that user, nobody is told apart (development only).",
    )
    amqp_passwords: SecretStr | None = Field(
        default=None,
        description='Passwords of other producers\' RabbitMQ users, as JSON {"signup": "..."}, for a process '
        "that publishes for several services (postpay run relay): each outbox goes out as its own "
        "service's user.",
    )
    retry_delays: Annotated[list[float], NoDecode] = Field(
        default=[1.0, 10.0, 60.0, 600.0],
        description="Seconds to wait before each retry of a failed handler, comma-separated.",
    )
    prefetch: int = Field(default=64, ge=1, description="Unacknowledged messages per consumer.")
    concurrency: int = Field(
        default=64,
        ge=1,
        description="Handler threads per consumer process. Upstream pacing, not this, sets the pressure on "
        "WHMCS and SolusVM; a handler waiting for or making an upstream call holds no database connection.",
    )
    db_pool_size: int = Field(
        default=20,
        ge=1,
        description="PostgreSQL connections each process keeps open (at most POSTPAY_CONCURRENCY + 4); as many "
        "again may be opened for a burst, so a process holds at most twice this. Handler threads beyond it wait "
        "for a connection only while they use the database.",
    )
    handler_batch: int = Field(
        default=64,
        ge=1,
        description="Most waiting deliveries a database-only handler applies in one transaction (1: one each).",
    )
    confirm_timeout: float = Field(default=15.0, gt=0, description="Seconds to wait for publisher confirms.")
    heartbeat: int = Field(default=30, ge=0, description="AMQP heartbeat in seconds (0 disables).")
    delivery_limit: int = Field(
        default=20,
        ge=1,
        description="Deliveries after which RabbitMQ parks a message that keeps crashing its consumer.",
    )
    quorum_initial_group_size: int | None = Field(
        default=None,
        ge=1,
        description=(
            "Replicas of each quorum queue postpay declares (x-quorum-initial-group-size). Unset: the broker's "
            "default (3, or every node of a smaller cluster). Set it before the queues exist: RabbitMQ refuses "
            "to redeclare a queue with another value."
        ),
    )
    max_message_bytes: int = Field(default=262_144, ge=1024, description="Larger bodies are parked unread.")
    relay_batch_size: int = Field(default=500, ge=1, description="Outbox rows published per confirm round.")
    relay_poll_seconds: float = Field(
        default=0.2,
        gt=0,
        description=(
            "Outbox poll interval just after the relay had work; it doubles with each idle poll up to "
            "relay_max_poll_seconds. A commit that writes an outbox wakes its relays at once anyway."
        ),
    )
    relay_max_poll_seconds: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description=(
            "Longest wait between two outbox polls of an idle relay. Commits wake the relays without a poll "
            "(in-process, and on PostgreSQL by LISTEN/NOTIFY): this poll only catches a lost wake-up, such "
            "as rows left by a process that died between its commit and its relay pass."
        ),
    )
    relay_linger_seconds: float = Field(
        default=0.02,
        ge=0,
        description=(
            "Pause after a commit wakes the relay, so a burst of events ships in one confirm round; five "
            "times as long while events keep coming (a wake within that of a pass that shipped some)."
        ),
    )
    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR.")
    health_port: int = Field(default=0, ge=0, description="Port of /healthz, /readyz and /metrics (0: not served).")
    cpu_niceness: int = Field(
        default=0,
        ge=0,
        le=19,
        description=(
            "The process's CPU niceness (0–19, as nice(1)): a background part such as signup-handlers set to "
            "19 (as deploy/ runs them) yields the CPU to a page-serving part on the same machine, so a handler "
            "backlog hardly slows the landing page. 0 keeps the niceness the process was started with."
        ),
    )

    @field_validator("amqp_url")
    @classmethod
    def _check_broker_urls(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            broker_urls(value.get_secret_value())
        return value

    @field_validator("retry_delays", mode="before")
    @classmethod
    def _split_delays(cls, value: object) -> object:
        return comma_separated_floats(value)

    @field_validator("broker_users")
    @classmethod
    def _check_broker_users(cls, value: str) -> str:
        BrokerUsers.parse(value)
        return value

    def broker_identities(self) -> BrokerUsers:
        return BrokerUsers.parse(self.broker_users)

    def producer_passwords(self) -> dict[str, str]:
        """Checked here rather than by a validator, whose error would quote the secret."""
        if self.amqp_passwords is None:
            return {}
        try:
            passwords = json.loads(self.amqp_passwords.get_secret_value())
        except ValueError:
            passwords = None
        if not isinstance(passwords, dict) or not all(isinstance(v, str) and v for v in passwords.values()):
            raise ValueError(
                'POSTPAY_AMQP_PASSWORDS: give a JSON object of producer to password, e.g. {"signup": "..."}'
            )
        return passwords


class UpstreamSettings(BaseSettings):
    """Where SolusVM 2 and WHMCS are, and how to authenticate to them."""

    model_config = SETTINGS_CONFIG

    solusvm_url: str = Field(
        default="http://127.0.0.1:8481", description="SolusVM 2 panel origin; the API is under /api/v1."
    )
    solusvm_api_token: SecretStr = Field(
        default=SecretStr("demo-solusvm-admin-token"), description="Admin API token (Bearer)."
    )
    solusvm_usage_path: str = Field(
        default="/api/v1/users/{id}/usage", description="Path of the period-usage endpoint."
    )
    solusvm_sso_path: str = Field(default="/auth/by_token", description="Browser route taking a one-time token.")
    whmcs_url: str = Field(default="http://127.0.0.1:8482", description="WHMCS root URL.")
    whmcs_identifier: SecretStr = Field(default=SecretStr("demo-identifier"), description="API identifier.")
    whmcs_secret: SecretStr = Field(default=SecretStr("demo-secret"), description="API secret.")
    whmcs_accesskey: SecretStr | None = Field(
        default=None, description="Optional API access key (bypasses the WHMCS IP allow-list)."
    )
    upstream_connect_timeout: float = Field(default=3.0, gt=0, description="Connect timeout, seconds.")
    upstream_read_timeout: float = Field(default=10.0, gt=0, description="Read timeout, seconds.")
    upstream_max_attempts: int = Field(default=4, ge=1, description="Attempts of a retryable call.")
    upstream_deadline: float = Field(default=20.0, gt=0, description="Total seconds for one call's retries.")
    upstream_max_connections: int = Field(default=64, ge=1, description="HTTP connection pool size.")
    upstream_pacing: bool = Field(
        default=True,
        description="Adapt the calls each process has in flight to an upstream to how it answers (AIMD: more "
        "while its latency stays at its usual level, half as many after a 503/429 or a timeout, 0.7 times "
        "as many after a latency rise). Off: as many as the handler threads make, up to the caps below.",
    )
    whmcs_max_in_flight: int | None = Field(
        default=None, ge=1, description="Most calls one process has in flight to WHMCS at once (unset: no cap)."
    )
    solusvm_max_in_flight: int | None = Field(
        default=None, ge=1, description="Most calls one process has in flight to SolusVM 2 at once (unset: no cap)."
    )

    def pacing(self, cap: int | None) -> PacingPolicy:
        return PacingPolicy(adaptive=self.upstream_pacing, max_in_flight=cap)
