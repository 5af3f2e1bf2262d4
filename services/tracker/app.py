"""Assembles the tracker: faust app, topics, table, agent, clock, metrics, rules reload."""

from __future__ import annotations

import asyncio
import signal
from dataclasses import dataclass
from typing import Any

from prometheus_client import REGISTRY

from services.common import metrics as bus_metrics
from services.common.faust_app import make_app, register_lag_collector
from services.common.settings import KafkaSettings, ServiceSettings, TopicSettings
from services.rules.reload import RulesHolder
from services.tracker import agents, tables
from services.tracker.metrics import OutstandingCollector, TrackerMetrics
from services.tracker.settings import TrackerSettings
from services.tracker.state import Tracker, TrackerPolicy
from services.tracker.topics import TrackerTopics


@dataclass
class TrackerService:
    app: Any
    holder: RulesHolder
    tracker: Tracker
    index: agents.TrackerIndex


def create_tracker(
    kafka: KafkaSettings, topic_settings: TopicSettings, service: ServiceSettings, settings: TrackerSettings
) -> TrackerService:
    holder = RulesHolder(service.rules_file, service="tracker")
    app = make_app("tracker", kafka, topic_settings, store=settings.store,
                   data_dir=service.state_dir / topic_settings.names.app_id("tracker"),
                   session_timeout_s=service.session_timeout_s)
    topics = TrackerTopics(app, topic_settings.names)
    table = tables.tracking(app)
    tracker = Tracker(lambda: holder.current, TrackerPolicy(
        unknown_ack_grace_s=settings.unknown_ack_grace_s, closed_retention_s=settings.closed_retention_s))
    index = agents.TrackerIndex()
    metrics = TrackerMetrics()
    agents.register(app, topics, table, tracker, index, metrics)
    agents.register_clock(app, topics, table, tracker, index, settings.tick_interval_s)

    @app.timer(settings.reload_interval_s)
    async def watch_rules_file() -> None:
        holder.reload_if_changed()

    @app.task
    async def on_start() -> None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, holder.reload)
        if settings.metrics_port:
            bus_metrics.build_info("tracker")
            register_lag_collector(app, "tracker")
            # Until the index is built for this worker's partitions, gauges stay empty, not wrong.
            REGISTRY.register(OutstandingCollector(lambda: index.outstanding if index.partitions is not None else None))
            bus_metrics.serve(settings.metrics_port, settings.metrics_host)

    return TrackerService(app=app, holder=holder, tracker=tracker, index=index)
