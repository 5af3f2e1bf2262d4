"""Settings of the reconciler (``CLUEBUS_RECONCILER_*`` or ``[reconciler]``)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from services.common.settings import _Settings


class ReconcilerSettings(_Settings):
    section: ClassVar[str] = "reconciler"
    model_config = SettingsConfigDict(env_prefix="CLUEBUS_RECONCILER_")

    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(9303, ge=0, le=65535, description="0 turns the metrics endpoint off.")
    grace_s: float = Field(
        300.0,
        gt=0,
        description="A report published longer ago than this without a routing decision is unrouted. "
        "Above the router's worst restart (a rebalance with a dead member waits a session timeout).",
    )
    horizon_s: float = Field(
        7 * 24 * 3600.0, gt=0, description="How far back the reconciler reads when it starts (reports' age)."
    )
    check_interval_s: float = Field(10.0, gt=0, le=3600, description="How often unrouted reports are looked for.")
    redrive: bool = Field(True, description="Publish an unrouted report again so the router routes it.")
    redrive_every_s: float = Field(
        600.0, gt=0, description="A report still unrouted this long after a re-drive is re-driven again."
    )

    @model_validator(mode="after")
    def _horizon_covers_grace(self) -> ReconcilerSettings:
        if self.horizon_s <= self.grace_s:
            raise ValueError("reconciler horizon_s must be longer than grace_s")
        return self
