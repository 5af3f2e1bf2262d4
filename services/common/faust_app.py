"""A faust application base shared by the router and the tracker.

faust only turns on producer idempotence inside transactions; cluebus runs
at-least-once and wants every producer idempotent with ``acks=all``, so the
app uses a transport whose producer always asks for both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka

from services.common.kafka import faust_broker_credentials
from services.common.settings import KafkaSettings, TopicSettings


class IdempotentProducer(faust_aiokafka.Producer):
    def _settings_extra(self) -> dict[str, Any]:
        return {**super()._settings_extra(), "acks": "all", "enable_idempotence": True}


class IdempotentTransport(faust_aiokafka.Transport):
    Producer = IdempotentProducer


class BusApp(faust.App):
    """faust.App with the idempotent transport for both consuming and producing."""

    def _new_transport(self) -> Any:
        return IdempotentTransport(self.conf.broker_consumer, self)

    def _new_producer_transport(self) -> Any:
        return IdempotentTransport(self.conf.broker_producer, self)


def make_app(
    service: str,
    kafka: KafkaSettings,
    topics: TopicSettings,
    *,
    store: str = "memory://",
    data_dir: Path | None = None,
    **extra: Any,
) -> BusApp:
    """Create the faust app of one service with the bus's defaults.

    ``store`` is ``memory://`` by default: tables are rebuilt from their
    changelog topics at start. ``rocksdb://`` can be given where the
    changelog is too large to replay quickly.
    """
    options: dict[str, Any] = {
        "broker": [f"kafka://{server}" for server in kafka.servers],
        "broker_credentials": faust_broker_credentials(kafka),
        "store": store,
        "producer_acks": -1,
        "topic_partitions": topics.partitions,
        "topic_replication_factor": topics.replication_factor,
        "topic_allow_declare": True,
        "consumer_auto_offset_reset": "earliest",
        "web_enabled": False,
        # Standby replicas duplicate state on other workers for fast failover.
        "table_standby_replicas": 1,
        "broker_commit_every": 1000,
        "broker_commit_interval": 1.0,
        **extra,
    }
    if data_dir is not None:
        options["datadir"] = str(data_dir)
    return BusApp(topics.names.app_id(service), **options)
