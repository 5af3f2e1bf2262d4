"""Test doubles of the adapter's Kafka side, passed in from the tests (nothing in the runtime knows them)."""

from __future__ import annotations

from typing import Any

from services.common.kafka import KafkaUnavailable


class NoKafka:
    """A Kafka that is never reachable: the relay keeps every report in the outbox (its readiness says
    ``kafka: false``), the status follower finds no status; both keep retrying, as against a broker down."""

    def producer(self) -> Any:
        raise KafkaUnavailable("no Kafka in this test")

    def status_consumer(self) -> Any:
        raise KafkaUnavailable("no Kafka in this test")
