"""The faust application of a cluebus service, with the bus's transport and defaults.

faust only turns on producer idempotence inside transactions; cluebus runs
at-least-once and wants every producer idempotent with ``acks=all``, so the
app uses a transport whose producer always asks for both, and whose consumer
is the guarded one (``services.common.streams.guard``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka

from services.common.kafka import faust_broker_credentials
from services.common.settings import KafkaSettings, TopicSettings
from services.common.streams.guard import SafeAckConsumer


class IdempotentProducer(faust_aiokafka.Producer):
    def _settings_extra(self) -> dict[str, Any]:
        return {**super()._settings_extra(), "acks": "all", "enable_idempotence": True}


class IdempotentTransport(faust_aiokafka.Transport):
    Producer = IdempotentProducer
    Consumer = SafeAckConsumer


class BusApp(faust.App):
    """faust.App with the idempotent transport, and the topics its guarded agents consume."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.guarded_topics: set[str] = set()  # filled by guarded_agent when an agent is defined

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
    session_timeout_s: float = 30.0,
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
        # For guarded topics the guard starts a partition with no committed offset at the
        # log start whatever this says (see SafeAckConsumer); it still applies elsewhere.
        "consumer_auto_offset_reset": "earliest",
        "web_enabled": False,
        # Standby replicas duplicate state on other workers for fast failover.
        "table_standby_replicas": 1,
        "broker_commit_every": 1000,
        "broker_commit_interval": 1.0,
        "broker_session_timeout": session_timeout_s,
        "broker_heartbeat_interval": max(1.0, session_timeout_s / 10),
        **extra,
    }
    if data_dir is not None:
        data_dir.mkdir(parents=True, exist_ok=True)
        options["datadir"] = str(data_dir)
    return BusApp(topics.names.app_id(service), **options)
