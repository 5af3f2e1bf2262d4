"""Assembles the router: faust app, topics, table, agent, rules reload."""

from __future__ import annotations

import asyncio
import signal
from dataclasses import dataclass
from typing import Any

from services.common import metrics as bus_metrics
from services.common.faust_app import make_app, register_lag_collector
from services.common.settings import KafkaSettings, ServiceSettings, TopicSettings
from services.router import agents, tables
from services.router.metrics import RouterMetrics
from services.router.settings import RouterSettings
from services.router.topics import RouterTopics
from services.rules.reload import RulesHolder


@dataclass
class Router:
    app: Any
    holder: RulesHolder
    metrics: RouterMetrics
    settings: RouterSettings


def create_router(
    kafka: KafkaSettings, topic_settings: TopicSettings, service: ServiceSettings, settings: RouterSettings
) -> Router:
    holder = RulesHolder(service.rules_file, service="router")
    app = make_app("router", kafka, topic_settings, store=settings.store,
                   data_dir=service.state_dir / topic_settings.names.app_id("router"),
                   session_timeout_s=service.session_timeout_s)
    topics = RouterTopics(app, topic_settings.names)
    seen = tables.seen_reports(app)
    router_metrics = RouterMetrics()
    agents.register(app, topics, seen, holder, router_metrics)

    @app.timer(settings.reload_interval_s)
    async def watch_rules_file() -> None:
        holder.reload_if_changed()

    @app.task
    async def on_start() -> None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, holder.reload)
        if settings.metrics_port:
            bus_metrics.build_info("router")
            register_lag_collector(app, "router")
            bus_metrics.serve(settings.metrics_port, settings.metrics_host)

    return Router(app=app, holder=holder, metrics=router_metrics, settings=settings)
