"""Service settings, read from the environment only (twelve-factor)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from coaching_shared.events import TenantId


class ServiceSettings(BaseSettings):
    """What every service needs to run; each service subclasses it for its own knobs.

    Environment variables use the field names in upper case, e.g. `KAFKA_BOOTSTRAP_SERVERS`.
    """

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", frozen=True)

    service_name: str = Field(description="Short service name, e.g. 'assessment'")
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    public_url: str | None = Field(
        default=None, description="Base URL clients use; defaults to http://host:port"
    )

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    topic_prefix: str = Field(
        default="", description="Prepended to every topic name; isolates test runs and stages"
    )
    topic_partitions: int = Field(default=6, ge=1, description="Partitions for topics we create")
    topic_replication_factor: int = Field(default=1, ge=1)

    mongodb_url: str = "mongodb://127.0.0.1:27017/"
    mongodb_database: str | None = Field(
        default=None, description="Database name; defaults to coaching_<service_name>"
    )

    tenants: list[TenantId] = Field(
        default_factory=list,
        description="Tenants this deployment serves (JSON list); events of any other tenant "
        "are dead-lettered and its bearer tokens refused (401). Empty: every tenant "
        "(development)",
    )
    max_event_bytes: int = Field(
        default=256 * 1024, gt=0, description="Larger event bodies are dead-lettered unread"
    )

    consume_batch_size: int = Field(
        default=500, ge=1, description="Most records fetched and acknowledged together"
    )
    consume_concurrency: int = Field(
        default=1, ge=1,
        description="Clients whose events of one batch are handled at the same time (each "
        "client's events stay in order). 1 suits FerretDB/SQLite, which takes one writer at a "
        "time (32 made the goals service 4x slower there); raise it on MongoDB",
    )

    handler_retries: int = Field(
        default=3, ge=0, description="Retries of a failing handler before dead-lettering"
    )
    retry_backoff_seconds: float = Field(default=0.2, gt=0)
    retry_backoff_max_seconds: float = Field(default=10.0, gt=0)
    outbox_sweep_seconds: float = Field(
        default=10.0, gt=0,
        description="How often leftover outbox entries are looked for. They wait out the "
        "outbox lease first, so this adds little to a crashed writer's delay",
    )
    outbox_lease_seconds: float = Field(
        default=30.0, gt=0,
        description="How long a writer (a handler, the scheduler, a sweep that claimed them) "
        "owns outbox entries before the sweep of any replica publishes them: longer than a "
        "consumed wave takes to apply and publish (500 new goals took 4-14 s on FerretDB "
        "under load), short enough that a crashed writer's events are not held up long",
    )

    jwt_secret: SecretStr = Field(
        default=SecretStr("dev-only-secret-change-me-0123456789abcdef"),
        description="HS256 key for bearer tokens; set from a secret in production",
    )
    jwt_public_key: str | None = Field(
        default=None, description="PEM public key; when set, RS256/ES256 tokens are verified"
    )
    jwt_issuer: str = "coaching-platform"
    jwt_audience: str = "coaching-platform"

    log_level: str = "INFO"

    @property
    def database_name(self) -> str:
        return self.mongodb_database or f"coaching_{self.service_name}"

    @property
    def base_url(self) -> str:
        return self.public_url or f"http://{self.http_host}:{self.http_port}"

    @property
    def consumer_group(self) -> str:
        """One consumer group per service: replicas share its partitions."""
        return f"{self.topic_prefix}coaching-{self.service_name}"
