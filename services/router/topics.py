"""The router's topics, and how it sends to them."""

from __future__ import annotations

import asyncio
from typing import Any

from schemas.enums import Source
from services.common.streams.app import send_record
from services.common.topics import TopicNames
from services.rules import CompiledRules


class RouterTopics:
    """Source, destination and internal topics; referral topic names are resolved on first use.

    ``send`` hands a record to faust's producer directly (``send_record``).
    """

    def __init__(self, app: Any, names: TopicNames) -> None:
        self._app = app
        self._names = names

        def topic(*names: str) -> Any:
            return app.topic(*names, key_serializer="raw", value_serializer="raw")

        self.reports = topic(*names.reports())
        self.decisions = names.decisions
        self.deadletter = names.deadletter
        self.report_topic_source = {names.report(s): s.value for s in Source}

    def referral(self, rules: CompiledRules, department: str) -> str:
        """The name of a department's referral topic, as the rules in force name it (override included)."""
        return rules.referral_topic(department, self._names)

    async def send(self, topic: str, key: bytes | None, value: bytes) -> asyncio.Future[Any]:
        """Queue one record; the future resolves when the broker acknowledged it (``acks=all``)."""
        return await send_record(self._app, topic, key, value)
