"""Settings of the router service (``CLUEBUS_ROUTER_*`` or ``[router]``)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.settings import _Settings


class RouterSettings(_Settings):
    section: ClassVar[str] = "router"
    model_config = SettingsConfigDict(env_prefix="CLUEBUS_ROUTER_")

    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(9301, ge=0, le=65535, description="0 turns the metrics endpoint off.")
    reload_interval_s: float = Field(2.0, gt=0, description="How often the rules file is checked for changes.")
    store: str = Field("memory://", description="faust table store: memory:// or rocksdb://.")
