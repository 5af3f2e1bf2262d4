"""Settings of the tracker service (``CLUEBUS_TRACKER_*`` or ``[tracker]``)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.settings import _Settings


class TrackerSettings(_Settings):
    section: ClassVar[str] = "tracker"
    model_config = SettingsConfigDict(env_prefix="CLUEBUS_TRACKER_")

    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(9302, ge=0, le=65535, description="0 turns the metrics endpoint off.")
    tick_interval_s: float = Field(1.0, gt=0, le=60, description="How often the clock looks for due reports.")
    reload_interval_s: float = Field(2.0, gt=0)
    unknown_ack_grace_s: float = Field(
        300.0, ge=0, description="How long an acknowledgement may wait for its routing decision."
    )
    closed_retention_s: float = Field(7 * 24 * 3600.0, ge=0, description="How long a closed report is kept.")
    store: str = Field("memory://", description="faust table store: memory:// or rocksdb://.")
