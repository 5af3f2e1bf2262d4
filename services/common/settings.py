"""Typed, frozen settings read from the environment and an optional TOML file.

Each concern has its own settings class and environment prefix, e.g.
``CLUEBUS_KAFKA_BOOTSTRAP`` or ``CLUEBUS_TOPICS_PREFIX``. A file named by
``CLUEBUS_CONFIG`` may hold the same settings in sections (``[kafka]``,
``[topics]``, ...); the environment wins over the file, the file over defaults.
A key or section of the file that no settings class has is an error naming it
(a typo must not be silently ignored); so is an unknown keyword in code. Other
``CLUEBUS_*`` environment variables are not an error: the environment is
shared with other programs and other settings classes' prefixes overlap
(``CLUEBUS_`` holds ``CLUEBUS_KAFKA_``). Secrets are ``SecretStr`` so that they
never print.
"""

from __future__ import annotations

import os
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from services.common.topics import TopicNames

CONFIG_ENV = "CLUEBUS_CONFIG"
# Every section a settings class reads (each class's ``section``); a test checks the two agree.
SECTIONS = ("kafka", "topics", "service", "adapter", "router", "tracker", "reconciler", "console")


@lru_cache(maxsize=8)
def _read_config_file(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ValueError(f"{CONFIG_ENV}={path}: no such file") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{CONFIG_ENV}={path}: not valid TOML: {exc}") from exc


def _check_config_file(path: str, data: dict[str, Any], section: str, known: set[str]) -> None:
    """Refuse what no settings class would read: a stray section, a key outside a section, a typo."""
    where = f"{CONFIG_ENV}={path}"
    for name, value in data.items():
        if not isinstance(value, dict):
            raise ValueError(f"{where}: {name!r} is outside any section; put it under one of [{'], ['.join(SECTIONS)}]")
        if name not in SECTIONS:
            raise ValueError(f"{where}: unknown section [{name}]; the sections are [{'], ['.join(SECTIONS)}]")
    unknown = sorted(set(data.get(section, {})) - known)
    if unknown:
        raise ValueError(
            f"{where}: [{section}] has no setting {', '.join(map(repr, unknown))}; its settings are: "
            f"{', '.join(sorted(known))}"
        )


class _FileSection(PydanticBaseSettingsSource):
    """Reads one ``[section]`` of the file named by ``CLUEBUS_CONFIG`` (refusing unknown keys and sections)."""

    def __init__(self, settings_cls: type[BaseSettings], section: str) -> None:
        super().__init__(settings_cls)
        path = os.environ.get(CONFIG_ENV)
        self._data: dict[str, Any] = {}
        if path:
            data = _read_config_file(path)
            _check_config_file(path, data, section, set(settings_cls.model_fields))
            self._data = dict(data.get(section, {}))

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


class _Settings(BaseSettings):
    """Base: frozen, unknown keys rejected (file and keywords), one file section per class.

    A subclass sets ``section`` and its ``env_prefix`` only; ``frozen`` and ``extra`` are inherited.
    """

    section: ClassVar[str] = ""
    model_config = SettingsConfigDict(frozen=True, extra="forbid")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            _FileSection(settings_cls, cls.section),
            file_secret_settings,
        )


SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class KafkaSettings(_Settings):
    """How every client of the bus reaches Kafka."""

    section: ClassVar[str] = "kafka"
    model_config = SettingsConfigDict(env_prefix="CLUEBUS_KAFKA_")

    bootstrap: str = Field("127.0.0.1:9092", description="Comma-separated host:port list of brokers.")
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = Field(
        None, description="File holding the SASL password (wins over CLUEBUS_KAFKA_PASSWORD)."
    )
    ssl_cafile: Path | None = None
    ssl_check_hostname: bool = True
    client_id: str = "cluebus"
    request_timeout_ms: int = Field(30_000, ge=1_000)
    bootstrap_timeout_ms: int = Field(
        10_000, ge=500, description="How long a client waits for the first broker before giving up."
    )

    @field_validator("bootstrap")
    @classmethod
    def _check_bootstrap(cls, value: str) -> str:
        servers = [s.strip() for s in value.split(",") if s.strip()]
        if not servers:
            raise ValueError("CLUEBUS_KAFKA_BOOTSTRAP is empty; give host:port")
        for server in servers:
            host, sep, port = server.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"'{server}' is not host:port with a port from 1 to 65535")
        return ",".join(servers)

    @property
    def servers(self) -> list[str]:
        return self.bootstrap.split(",")

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol.startswith("SASL")

    @property
    def uses_ssl(self) -> bool:
        return self.security_protocol.endswith("SSL")

    def secret(self) -> str | None:
        """The SASL password, read from the file if one is named."""
        if self.password_file is not None:
            return self.password_file.read_text(encoding="utf-8").strip()
        return self.password.get_secret_value() if self.password else None


class TopicSettings(_Settings):
    """Names, sizes and retention of the bus's topics."""

    section: ClassVar[str] = "topics"
    model_config = SettingsConfigDict(env_prefix="CLUEBUS_TOPICS_")

    prefix: str = Field("cluebus", pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,60}$")
    partitions: int = Field(6, ge=1, le=1000)
    # Replication: unset means "fit the cluster", decided when topics are created (see fitted()).
    replication_factor: int | None = Field(
        None,
        ge=1,
        le=10,
        description="Copies of every partition; unset: 3 when three or more brokers answer, else one per broker.",
    )
    # Retention per topic family, in milliseconds (-1 keeps forever).
    reports_retention_ms: int = 14 * 24 * 3600 * 1000
    referrals_retention_ms: int = 180 * 24 * 3600 * 1000
    acks_retention_ms: int = -1
    decisions_retention_ms: int = -1
    escalations_retention_ms: int = -1
    access_audit_retention_ms: int = -1
    deadletter_retention_ms: int = 180 * 24 * 3600 * 1000
    ticks_retention_ms: int = 24 * 3600 * 1000
    min_insync_replicas: int | None = Field(
        None,
        ge=1,
        description="Copies that must hold a record before it is acknowledged; unset: replication factor - 1 "
        "(at least 1).",
    )

    @model_validator(mode="after")
    def _check_replication(self) -> TopicSettings:
        if self.replication_factor is not None and self.min_insync_replicas is not None:
            check_replication(self.replication_factor, self.min_insync_replicas)
        return self

    @property
    def names(self) -> TopicNames:
        return TopicNames(self.prefix)

    def fitted(self, brokers: int) -> TopicSettings:
        """These settings with replication decided for a cluster of ``brokers`` brokers."""
        rf, min_isr = fit_replication(self.replication_factor, self.min_insync_replicas, brokers)
        return self.model_copy(update={"replication_factor": rf, "min_insync_replicas": min_isr})


# A cluster keeps three copies when it can: with min.insync.replicas 2 one broker may fail
# (or be restarted) without stopping writes or losing an acknowledged record.
DEFAULT_REPLICATION = 3


def check_replication(replication_factor: int, min_insync_replicas: int) -> None:
    """Refuse a min ISR that is not below the replication factor (one copy alone is allowed)."""
    if replication_factor == 1 and min_insync_replicas == 1:
        return
    if min_insync_replicas >= replication_factor:
        raise ValueError(
            f"CLUEBUS_TOPICS_MIN_INSYNC_REPLICAS={min_insync_replicas} must be below "
            f"CLUEBUS_TOPICS_REPLICATION_FACTOR={replication_factor}: otherwise one broker down stops every write"
        )


def fit_replication(replication_factor: int | None, min_insync_replicas: int | None, brokers: int) -> tuple[int, int]:
    """(replication factor, min.insync.replicas) for ``brokers`` answering brokers; unset ones fit the cluster."""
    if brokers < 1:
        raise ValueError("no Kafka broker answers: cannot decide how many copies a topic keeps")
    rf = replication_factor or min(DEFAULT_REPLICATION, brokers)
    if rf > brokers:
        raise ValueError(
            f"CLUEBUS_TOPICS_REPLICATION_FACTOR={rf} needs {rf} brokers, "
            f"but {brokers} answer{'s' if brokers == 1 else ''}"
        )
    min_isr = min_insync_replicas or max(1, rf - 1)
    check_replication(rf, min_isr)
    return rf, min_isr


class ServiceSettings(_Settings):
    """Settings every service process shares: logging, metrics port, rules file."""

    section: ClassVar[str] = "service"
    model_config = SettingsConfigDict(env_prefix="CLUEBUS_")

    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "console"] = "auto"
    rules_file: Path = Path("routing_rules.toml")
    state_dir: Path = Field(Path(".run/state"), description="Local state (outbox, faust data).")
    session_timeout_s: float = Field(
        30.0,
        ge=3,
        le=300,
        description="How long a stream worker may be silent before its partitions move to another.",
    )


def load(cls: type[_Settings], **overrides: Any) -> Any:
    """Build settings, turning validation errors into one readable ``ValueError``."""
    from pydantic import ValidationError

    try:
        return cls(**overrides)
    except ValidationError as exc:
        prefix = cls.model_config.get("env_prefix", "")
        problems = "; ".join(
            # A check across fields has no location; its message names the variables itself.
            f"{prefix}{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}"
            if e["loc"]
            else e["msg"].removeprefix("Value error, ")
            for e in exc.errors()
        )
        raise ValueError(f"invalid settings: {problems}") from None
