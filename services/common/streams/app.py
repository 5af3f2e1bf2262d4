"""The faust application of a cluebus service, with the bus's transport and defaults.

faust only turns on producer idempotence inside transactions; cluebus runs
at-least-once and wants every producer idempotent with ``acks=all``, so the
app uses a transport whose producer always asks for both, and whose consumer
is the guarded one (``services.common.streams.guard``). Its topics send without
a trip round the event loop per record (``BusTopic``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import faust
from aiokafka.partitioner import DefaultPartitioner, murmur2
from faust.transport.drivers import aiokafka as faust_aiokafka

from services.common.kafka import faust_broker_credentials
from services.common.settings import KafkaSettings, TopicSettings
from services.common.streams.guard import SafeAckConsumer


class IdempotentProducer(faust_aiokafka.Producer):
    def _settings_extra(self) -> dict[str, Any]:
        return {**super()._settings_extra(), "acks": "all", "enable_idempotence": True}


class BusTopic(faust.Topic):
    """faust's Topic, without three trips round the event loop for every record sent.

    Before every record faust awaits ``app.maybe_start_producer()``, a mode ``stampede`` that
    awaits ``asyncio.sleep(0)`` three times even when the producer runs. Each yield let
    aiokafka's sender ship what had been added so far, so the router made about one produce
    request per record (21,096 requests for 26,064 records in a profiled run), each costing
    ~100 us of encoding and response handling. Once the producer is started this returns it
    at once, as ``maybe_start_producer`` then does, only without the yields; table changelogs
    are sent through it as well.
    """

    async def _get_producer(self) -> Any:
        app = self.app
        producer = app.producer
        if producer.started and not app.in_transaction:
            return producer
        return await super()._get_producer()


async def send_record(app: Any, topic: str, key: bytes | None, value: bytes) -> Any:
    """Queue one record of bytes on the app's producer; the future resolves when the broker has it.

    Straight to faust's producer: faust's ``Topic.send`` wraps every record in a
    ``FutureMessage`` and a ``PendingMessage``, runs its sensors and adds a callback of its own
    before it reaches the same producer call: 40% of the cost of a send in the router's profile,
    for nothing the services use. Keys and values are bytes already.
    """
    return await app.producer.send(topic, key, value, None, None, None)


class KeyHashPartitioner:
    """aiokafka's default choice of partition (murmur2 of the key), hashing each key once.

    A report's outputs all carry its id as key: the router sends ~8.5 records per report
    (referrals, decision, its seen-table changelog) and aiokafka's pure-Python murmur2 was
    4% of the router's samples. Recent keys keep their hash; the choice is exactly
    ``DefaultPartitioner``'s (held equal by a unit test), so outputs stay co-partitioned
    with the reports, whose adapters use the same hash.
    """

    def __init__(self, remember: int = 4096) -> None:
        self._remember = remember
        self._hashes: dict[bytes, int] = {}

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            return DefaultPartitioner()(key, all_partitions, available)
        hashed = self._hashes.get(key)
        if hashed is None:
            if len(self._hashes) >= self._remember:
                self._hashes.clear()
            hashed = self._hashes[key] = murmur2(key) & 0x7FFFFFFF
        return all_partitions[hashed % len(all_partitions)]


# How long the broker may hold a fetch that finds no new records. faust fixes it at 1,500 ms.
# aiokafka keeps one fetch in flight per broker, and leaves out of it every partition whose
# fetched records the stream has not taken yet (after 100 ms). Under load that fetch holds
# only the idle partitions, so the broker holds it for the whole wait, and the busy
# partition's next records wait behind it: at 70% of the router's maximum, 264 reports/s to
# one source, p50 was 1,554 ms and p99 1,673 ms from the report's record to its routing,
# where light load gave p99 12–14 ms (bench/e2e_latency.py, 2026-12-02). An idle consumer
# pays for it in empty fetches only: at 100 ms, ten a second to each broker.
FETCH_MAX_WAIT_MS = 100


class BusConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """faust's aiokafka consumer thread, whose worker consumer waits at most ``FETCH_MAX_WAIT_MS``."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # faust passes 1500 to the constructor and offers no setting; the fetcher is built
        # from this attribute when the consumer starts.
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer


class BusConsumer(SafeAckConsumer):
    """The guarded consumer (``services.common.streams.guard``) on ``BusConsumerThread``."""

    def _new_consumer_thread(self) -> Any:
        return BusConsumerThread(self, loop=self.loop, beacon=self.beacon)


class IdempotentTransport(faust_aiokafka.Transport):
    Producer = IdempotentProducer
    Consumer = BusConsumer


class BusApp(faust.App):
    """faust.App with the idempotent transport, and the topics its guarded agents consume."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.guarded_topics: set[str] = set()  # filled by guarded_agent when an agent is defined
        # Awaited before faust waits for the events not yet acknowledged, with the flow stopped
        # (``SafeAckConsumer.wait_empty``).
        self.settle_hooks: list[Callable[[], Awaitable[None]]] = []

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
        "Topic": BusTopic,
        # Standby replicas duplicate state on other workers for fast failover.
        "table_standby_replicas": 1,
        # aiokafka keeps one produce request in flight per broker; while it is out, a partition
        # whose batch is full makes the sender wait (faust's 16 KiB default: 641 waits, 1.4 s,
        # in 3,000 reports routed; none at 256 KiB). Matches kafka_baseline's producer.
        "producer_max_batch_size": 256 * 1024,
        "producer_partitioner": KeyHashPartitioner(),
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
