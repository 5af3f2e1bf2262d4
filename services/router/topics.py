"""The faust topic objects of the router."""

from __future__ import annotations

from typing import Any

from schemas.enums import Source
from services.common.topics import TopicNames
from services.rules import CompiledRules


class RouterTopics:
    """Source, destination and internal topics; referral topics are made on first use."""

    def __init__(self, app: Any, names: TopicNames) -> None:
        self._app = app
        self._names = names

        def topic(*names: str) -> Any:
            return app.topic(*names, key_serializer="raw", value_serializer="raw")

        self._topic = topic
        self.reports = topic(*names.reports())
        self.decisions = topic(names.decisions)
        self.deadletter = topic(names.deadletter)
        self._referrals: dict[str, Any] = {}
        self.report_topic_source = {names.report(s): s.value for s in Source}

    def referral(self, rules: CompiledRules, department: str) -> Any:
        """The topic of a department's referrals, as the rules in force name it (override included)."""
        name = rules.referral_topic(department, self._names)
        if name not in self._referrals:
            self._referrals[name] = self._topic(name)
        return self._referrals[name]
