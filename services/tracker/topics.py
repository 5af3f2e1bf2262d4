"""The faust topic objects of the tracker, and how it sends to its output topics."""

from __future__ import annotations

import asyncio
from typing import Any

from services.common.streams.app import send_record
from services.common.topics import TopicNames


class TrackerTopics:
    def __init__(self, app: Any, names: TopicNames) -> None:
        def topic(*topic_names: str) -> Any:
            return app.topic(*topic_names, key_serializer="raw", value_serializer="raw")

        self._app = app
        self.names = names
        # One stream over all inputs, so that a report's events are handled one at a time.
        self.inputs = topic(names.decisions, names.acks, names.tracker_ticks)

    async def send(self, topic: str, key: bytes | None, value: bytes) -> asyncio.Future[Any]:
        """Queue one record; the future resolves when the broker acknowledged it (``acks=all``)."""
        return await send_record(self._app, topic, key, value)
