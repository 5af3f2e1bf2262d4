"""Assembles the router: faust app, topics, table, agent, rules reload."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.common.settings import KafkaSettings, ServiceSettings, TopicSettings
from services.common.streams.app import make_app
from services.common.streams.operations import add_operations
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
    app = make_app(
        "router",
        kafka,
        topic_settings,
        store=settings.store,
        data_dir=service.state_dir / topic_settings.names.app_id("router"),
        session_timeout_s=service.session_timeout_s,
    )
    topics = RouterTopics(app, topic_settings.names)
    seen = tables.seen_reports(app)
    router_metrics = RouterMetrics()
    agents.register(app, topics, seen, holder, router_metrics)

    add_operations(
        app,
        holder,
        service="router",
        reload_interval_s=settings.reload_interval_s,
        metrics_port=settings.metrics_port,
        metrics_host=settings.metrics_host,
    )
    return Router(app=app, holder=holder, metrics=router_metrics, settings=settings)
