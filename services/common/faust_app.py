"""A faust application base shared by the router and the tracker.

faust only turns on producer idempotence inside transactions; cluebus runs
at-least-once and wants every producer idempotent with ``acks=all``, so the
app uses a transport whose producer always asks for both.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from prometheus_client import Counter

from services.common.kafka import faust_broker_credentials
from services.common.logging import get_logger
from services.common.settings import KafkaSettings, TopicSettings

log = get_logger(__name__)

# How often the guards below had to step in: a steady rise means faust keeps losing
# partitions after rebalances (records are replayed, never lost, but arrive late).
GUARD_INTERVENTIONS = Counter(
    "cluebus_consumer_guard_interventions_total",
    "Times the consumer guard re-fetched dropped records or unstalled a partition, by kind and topic.",
    ["kind", "topic"],
)


class IdempotentProducer(faust_aiokafka.Producer):
    def _settings_extra(self) -> dict[str, Any]:
        return {**super()._settings_extra(), "acks": "all", "enable_idempotence": True}


class SafeAckConsumer(faust_aiokafka.Consumer):
    """faust's consumer, made safe for at-least-once across rebalances.

    faust-streaming 0.15 loses events around rebalances in four ways, all
    seen here with two router workers: it acknowledges events that it dropped
    (fetched in an older consumer generation, or queued while flow control
    was suspended); it discards records prefetched before a rebalance and
    then takes the hole for a compaction gap, which it commits as processed;
    its commit arithmetic treats the committed offset as the last processed
    one (Kafka's is the next to read), and with no committed offset it
    commits the first run of acknowledged offsets whatever came before; and
    after a rebalance a partition can stop being fetched behind its committed
    offset. For the topics cluebus agents consume (never compacted, never
    transactional, so offsets are contiguous) this consumer

    * accepts an acknowledgement only for an event an agent really received
      (see :func:`handled_events`);
    * treats a jump between two fetched offsets as records dropped, seeks
      back to the first missing one, and never marks a hole as processed;
    * never commits a partition unless the next offset to commit (the
      committed offset, or the first offset fetched since the last seek) has
      been acknowledged;
    * seeks a partition back to its committed offset (or the start of the log
      when nothing was committed) and fetches it again when records wait past
      it (by the broker's end offset) and the commit has not moved for
      ``stall_seconds``.

    Events after a replayed one are processed again; the services are
    idempotent, so the guarantee is at-least-once with nothing lost.
    """

    guarded_topics: frozenset[str] = frozenset()
    stall_seconds: float = 15.0

    def _guard(self) -> dict[str, Any]:
        state = self.__dict__.get("_cluebus_guard")
        if state is None:
            state = self.__dict__["_cluebus_guard"] = {
                "handled": set(),  # (tp, offset) delivered to an agent, not yet acked
                "first_fetched": {},  # tp -> first offset fetched since the last seek
                "last_fetched": {},  # tp -> last offset passed on since the last seek
                "refetch": {},  # tp -> offset being fetched again after a hole
                "commit_seen": {},  # tp -> (committed offset, monotonic time first seen)
                "watchdog": None,
            }
        return state

    def mark_handled(self, message: Any) -> None:
        guard = self._guard()
        guard["handled"].add((message.tp, message.offset))
        if guard["watchdog"] is None:
            guard["watchdog"] = asyncio.ensure_future(self._watch_stalls())

    def ack(self, message: Any) -> bool:
        if message.topic not in self.guarded_topics:
            return super().ack(message)
        handled = self._guard()["handled"]
        key = (message.tp, message.offset)
        if key not in handled:
            log.debug(
                "ack refused for an event no agent received",
                topic=message.topic,
                partition=message.partition,
                offset=message.offset,
            )
            return False
        handled.discard(key)
        return super().ack(message)

    async def getmany(self, timeout: float) -> Any:
        guard = self._guard()
        first, last, refetch = guard["first_fetched"], guard["last_fetched"], guard["refetch"]
        async for tp, message in super().getmany(timeout):
            if tp.topic in self.guarded_topics:
                offset = message.offset
                expected = refetch.get(tp)
                if expected is not None:
                    if offset < expected or (offset > expected and last.get(tp, -1) >= offset):
                        continue  # still the old batch after seeking back
                    refetch.pop(tp)
                previous = last.get(tp)
                if previous is not None and offset > previous + 1 and expected is None:
                    log.warning(
                        "fetch skipped records; seeking back",
                        topic=tp.topic,
                        partition=tp.partition,
                        missing_from=previous + 1,
                        got=offset,
                    )
                    GUARD_INTERVENTIONS.labels(kind="refetch", topic=tp.topic).inc()
                    refetch[tp] = previous + 1
                    await super().seek(tp, previous + 1)
                    continue
                last[tp] = offset
                first.setdefault(tp, offset)
            yield tp, message

    def _forget_position(self, tp: Any | None = None) -> None:
        guard = self._guard()
        for key in ("first_fetched", "last_fetched", "refetch"):
            if tp is None:
                guard[key].clear()
            else:
                guard[key].pop(tp, None)

    async def seek(self, partition: Any, offset: int) -> None:
        self._forget_position(partition)
        await super().seek(partition, offset)

    async def perform_seek(self) -> None:
        self._forget_position()
        await super().perform_seek()

    async def _add_gap(self, tp: Any, offset_from: int, offset_to: int) -> None:
        if tp.topic in self.guarded_topics:
            return  # contiguous topics have no gaps: a hole is records not yet processed
        await super()._add_gap(tp, offset_from, offset_to)

    def _new_offset(self, tp: Any) -> int | None:
        acked = self._acked[tp]
        if acked and tp.topic in self.guarded_topics:
            head = self._committed_offset[tp]
            if head is None:
                head = self._guard()["first_fetched"].get(tp)
            if head is None or min(acked) > head:
                return None  # the next offset to commit has not been processed
        return super()._new_offset(tp)

    async def _commit(self, offsets: Any) -> bool:
        log.debug("committing offsets", offsets={f"{tp.topic}:{tp.partition}": o for tp, o in offsets.items()})
        return await super()._commit(offsets)

    async def _watch_stalls(self) -> None:
        seen = self._guard()["commit_seen"]
        while not self.should_stop:
            await asyncio.sleep(self.stall_seconds / 5)
            if self.app.rebalancing or not self.app.flow_control.is_active():
                seen.clear()
                continue
            try:
                await self._unstall(seen)
            except Exception as exc:  # noqa: BLE001 - the watchdog must outlive a broker hiccup
                log.debug("stall check skipped", error=type(exc).__name__)

    async def _unstall(self, seen: dict[Any, tuple[int, float]]) -> None:
        tps = [tp for tp in self.assignment() if tp.topic in self.guarded_topics]
        if not tps:
            return
        # Ask the broker: a partition that is never fetched has no high-water mark in the
        # consumer, and one never committed has no committed offset; both can stall.
        ends = await self.highwaters(*tps)
        uncommitted = [tp for tp in tps if self._committed_offset[tp] is None]
        starts = await self.earliest_offsets(*uncommitted) if uncommitted else {}
        now = time.monotonic()
        for tp in tps:
            committed = self._committed_offset[tp]
            position = committed if committed is not None else starts.get(tp)
            end = ends.get(tp)
            if position is None or end is None or position >= end:
                seen.pop(tp, None)
                continue
            last = seen.get(tp)
            if last is None or last[0] != position:
                seen[tp] = (position, now)
            elif now - last[1] > self.stall_seconds:
                log.warning(
                    "partition stalled at its committed offset; seeking back",
                    topic=tp.topic,
                    partition=tp.partition,
                    committed=position,
                    highwater=end,
                )
                seen[tp] = (position, now)
                GUARD_INTERVENTIONS.labels(kind="unstall", topic=tp.topic).inc()
                # faust drops a partition from its fetch set while its buffer is full and may
                # never add it back after a rebalance; fetch it again unless faust paused it.
                self._buffered_partitions.discard(tp)
                if tp not in self._paused_partitions:
                    self._get_active_partitions().add(tp)
                await self.seek(tp, position)


async def handled_events(stream: Any) -> Any:
    """``stream.events()``, telling the consumer which events an agent really received."""
    consumer = stream.app.consumer
    mark = getattr(consumer, "mark_handled", None)
    if isinstance(consumer, SafeAckConsumer):
        consumer.guarded_topics = consumer.guarded_topics | frozenset(getattr(stream.channel, "topics", ()))
    async for event in stream.events():
        if mark is not None:
            mark(event.message)
        yield event


class IdempotentTransport(faust_aiokafka.Transport):
    Producer = IdempotentProducer
    Consumer = SafeAckConsumer


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


class BusWorker(faust.Worker):
    """A faust worker that logs through cluebus's structlog setup, without the banner."""

    def __init__(self, app: faust.App, *, service: str, log_level: str, log_format: str) -> None:
        self._cluebus_logging = (log_level, log_format, service)
        super().__init__(app, quiet=True, redirect_stdouts=False, loglevel=log_level)
        self.spinner = None  # the terminal spinner writes escape codes into log files

    def _setup_logging(self) -> None:
        from services.common.logging import configure

        level, fmt, service = self._cluebus_logging
        configure(level=level, fmt=fmt, service=service)

    def install_signal_handlers(self) -> None:
        super().install_signal_handlers()
        import signal

        self.loop.add_signal_handler(signal.SIGUSR2, dump_tasks)


def dump_tasks() -> None:
    """Log every asyncio task's full await chain (SIGUSR2): what a stuck worker waits on."""
    for task in asyncio.all_tasks():
        frames = []
        awaitable: Any = task.get_coro()
        for _ in range(60):
            frame = (
                getattr(awaitable, "cr_frame", None)
                or getattr(awaitable, "ag_frame", None)
                or getattr(awaitable, "gi_frame", None)
            )
            if frame is not None:
                frames.append(
                    f"{frame.f_code.co_filename.rsplit('site-packages/', 1)[-1]}:{frame.f_lineno} "
                    f"{frame.f_code.co_name}"
                )
            nxt = (
                getattr(awaitable, "cr_await", None)
                or getattr(awaitable, "ag_await", None)
                or getattr(awaitable, "gi_yieldfrom", None)
            )
            if nxt is None:
                break
            awaitable = nxt
        log.warning("asyncio task", task=task.get_name(), frames=frames, waiting_on=repr(awaitable)[:200])


def run_worker(app: faust.App, *, service: str, log_level: str = "info", log_format: str = "auto") -> None:
    """Run a faust app until SIGTERM/SIGINT (blocks; exits the process)."""
    BusWorker(app, service=service, log_level=log_level, log_format=log_format).execute_from_commandline()


class ConsumerLagCollector:
    """``cluebus_consumer_lag_messages{service,topic,partition}``: records not yet committed.

    Computed at scrape time from the consumer's own view (high-water mark minus
    committed offset) for the partitions this worker owns.
    """

    def __init__(self, app: faust.App, service: str) -> None:
        self.app = app
        self.service = service

    def collect(self) -> Any:
        from prometheus_client.core import GaugeMetricFamily

        family = GaugeMetricFamily(
            "cluebus_consumer_lag_messages",
            "Records past the committed offset, per partition this worker owns.",
            labels=["service", "topic", "partition"],
        )
        try:
            consumer = self.app.consumer
            for tp in sorted(consumer.assignment()):
                if tp.topic not in getattr(consumer, "guarded_topics", frozenset()):
                    continue
                highwater = consumer.highwater(tp)
                committed = consumer._committed_offset[tp]
                if highwater is None:
                    continue
                lag = highwater - (committed or 0)
                family.add_metric([self.service, tp.topic, str(tp.partition)], max(0, lag))
        except Exception:  # scraping must never break on a worker that is (re)starting
            log.debug("consumer lag not available yet")
        yield family


def register_lag_collector(app: faust.App, service: str) -> None:
    from prometheus_client import REGISTRY

    REGISTRY.register(ConsumerLagCollector(app, service))


def add_operations(
    app: faust.App,
    holder: Any,
    *,
    service: str,
    reload_interval_s: float,
    metrics_port: int,
    metrics_host: str,
    collectors: tuple[Any, ...] = (),
) -> None:
    """What every faust service runs beside its agents: rules reload (file change or
    SIGHUP) and, unless the port is 0, ``/metrics`` with build info and consumer lag."""

    @app.timer(reload_interval_s)
    async def watch_rules_file() -> None:
        holder.reload_if_changed()

    @app.task
    async def on_start() -> None:
        import signal

        from prometheus_client import REGISTRY

        from services.common import metrics as bus_metrics

        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, holder.reload)
        if metrics_port:
            bus_metrics.build_info(service)
            register_lag_collector(app, service)
            for collector in collectors:
                REGISTRY.register(collector)
            bus_metrics.serve(metrics_port, metrics_host)
