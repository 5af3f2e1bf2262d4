"""Assembles the tracker: faust app, topics, table, agent, clock, metrics, rules reload."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.common.settings import KafkaSettings, ServiceSettings, TopicSettings
from services.common.streams.app import make_app
from services.common.streams.operations import add_operations
from services.rules.reload import RulesHolder
from services.tracker import agents, tables
from services.tracker.index import TrackerIndex
from services.tracker.metrics import OutstandingCollector, TrackerMetrics
from services.tracker.settings import TrackerSettings
from services.tracker.state import Tracker, TrackerPolicy
from services.tracker.topics import TrackerTopics


@dataclass
class TrackerService:
    app: Any
    holder: RulesHolder
    tracker: Tracker
    index: TrackerIndex


def create_tracker(
    kafka: KafkaSettings, topic_settings: TopicSettings, service: ServiceSettings, settings: TrackerSettings
) -> TrackerService:
    holder = RulesHolder(service.rules_file, service="tracker")
    app = make_app(
        "tracker",
        kafka,
        topic_settings,
        store=settings.store,
        data_dir=service.state_dir / topic_settings.names.app_id("tracker"),
        session_timeout_s=service.session_timeout_s,
    )
    topics = TrackerTopics(app, topic_settings.names)
    table = tables.tracking(app)
    tracker = Tracker(
        lambda: holder.current,
        TrackerPolicy(unknown_ack_grace_s=settings.unknown_ack_grace_s, closed_retention_s=settings.closed_retention_s),
    )
    index = TrackerIndex()
    metrics = TrackerMetrics()
    pending = agents.register(app, topics, table, tracker, index, metrics)
    agents.register_clock(app, topics, table, pending, tracker, index, settings.tick_interval_s)

    # Until the index is built for this worker's partitions, gauges stay empty, not wrong.
    outstanding = OutstandingCollector(lambda: index.outstanding if index.partitions is not None else None)
    add_operations(
        app,
        holder,
        service="tracker",
        reload_interval_s=settings.reload_interval_s,
        metrics_port=settings.metrics_port,
        metrics_host=settings.metrics_host,
        collectors=(outstanding,),
    )

    return TrackerService(app=app, holder=holder, tracker=tracker, index=index)
