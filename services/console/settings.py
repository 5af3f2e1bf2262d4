"""The console's settings (``CLUEBUS_CONSOLE_*`` or ``[console]`` in the config file) and its dev certificate."""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from services.common.settings import KafkaSettings, _Settings


class ConsoleSettings(_Settings):
    section: ClassVar[str] = "console"
    model_config = SettingsConfigDict(env_prefix="CLUEBUS_CONSOLE_")

    host: str = "127.0.0.1"
    port: int = Field(8443, ge=0, le=65535)
    cert_file: Path | None = Field(None, description="PEM certificate (chain) served for HTTPS.")
    key_file: Path | None = Field(None, description="PEM private key of the certificate (mode 0600).")
    users_file: Path | None = Field(None, description="Users file; default <state_dir>/console-users.toml.")
    departments: str = Field("", description="Comma-separated departments served; empty: every one in the rules.")
    timezone: str = Field("Asia/Shanghai", description="Times are shown in this zone.")
    idle_timeout_s: float = Field(900.0, ge=30, description="A session unused this long ends.")
    session_max_s: float = Field(12 * 3600.0, ge=60, description="A session ends this long after sign-in.")
    lockout_failures: int = Field(5, ge=1, description="Bad passwords in a row that lock an account.")
    lockout_s: float = Field(900.0, ge=1, description="How long a locked account stays locked.")
    address_failures: int = Field(20, ge=1, description="Failed sign-ins from one address before it must wait.")
    sync_interval_s: float = Field(3.0, ge=0.2, description="How often each department's inbox reads new referrals.")
    metrics_port: int | None = Field(9310, description="Port of /metrics on 127.0.0.1 (0 or empty: none).")
    kafka_secrets_dir: Path | None = Field(
        None,
        description="Secure profile: folder with dept-<department>.password and console.password; each "
        "department's inbox then connects as its own principal dept-<department>.",
    )

    @field_validator("departments")
    @classmethod
    def _ids(cls, value: str) -> str:
        import re

        from schemas.events import DEPARTMENT_ID

        for d in (x.strip() for x in value.split(",") if x.strip()):
            if not re.fullmatch(DEPARTMENT_ID, d):
                raise ValueError(f"department {d!r} is not a department id")
        return value

    def department_list(self, known: list[str]) -> list[str]:
        """The departments to serve: the configured ones (each must be known), else all."""
        wanted = [x.strip() for x in self.departments.split(",") if x.strip()]
        unknown = [d for d in wanted if d not in known]
        if unknown:
            raise ValueError(f"CLUEBUS_CONSOLE_DEPARTMENTS names unknown departments: {', '.join(unknown)}")
        return wanted or sorted(known)

    def users_path(self, state_dir: Path) -> Path:
        return self.users_file or state_dir / "console-users.toml"

    def kafka_for(self, kafka: KafkaSettings, principal: str) -> KafkaSettings:
        """The Kafka settings of one principal (``dept-police``, ``console``): its own password file."""
        if self.kafka_secrets_dir is None:
            return kafka
        return kafka.model_copy(
            update={"username": principal, "password_file": self.kafka_secrets_dir / f"{principal}.password"}
        )


def dev_certificate(folder: Path) -> tuple[Path, Path, Path]:
    """A certificate for https://localhost and 127.0.0.1 from a fresh local CA: (cert, key, ca).

    Made by the development profiles' local CA (``services/devkafka/local_ca.py``: the CA
    key is deleted at once) and kept in ``folder`` (0700) for the next start; made again
    when a file is missing or near its end.
    """
    from services.devkafka import local_ca

    cert, key, ca = folder / "console.pem", folder / "console.key", folder / "ca.pem"
    if not (key.exists() and ca.exists() and local_ca.valid_for(cert)):
        local_ca.issue(
            folder,
            [local_ca.Leaf("console", "localhost", ("DNS:localhost", "IP:127.0.0.1"), server=True, client=False)],
        )
        os.chmod(folder, 0o700)
    return cert, key, ca
