"""The faust topic objects of the tracker."""

from __future__ import annotations

from typing import Any

from services.common.topics import TopicNames


class TrackerTopics:
    def __init__(self, app: Any, names: TopicNames) -> None:
        def topic(*topic_names: str) -> Any:
            return app.topic(*topic_names, key_serializer="raw", value_serializer="raw")

        self.names = names
        # One stream over all inputs, so that a report's events are handled one at a time.
        self.inputs = topic(names.decisions, names.acks, names.tracker_ticks)
        self.ticks = topic(names.tracker_ticks)
        self.escalations = topic(names.escalations)
        self.status = topic(names.status)
        self.deadletter = topic(names.deadletter)
