"""The adapter's runtime: the outbox and the threads around it, their start, stop and health.

One :class:`AdapterRuntime` per source's adapter: the outbox (its writer thread), the
relay that publishes it, the status follower that answers ``GET /v1/reports/{id}``,
and the pruner. The HTTP side only calls :meth:`AdapterRuntime.store` (a 202 follows
the fsynced commit) and reads health, readiness and receipts.

Its Kafka clients come from an :class:`AdapterKafka`: :class:`KafkaClients` in
production; a test passes its own fake (one that is never reachable keeps every
report in the outbox), as FastStream's ``TestKafkaBroker`` stands in for a broker.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Protocol

import structlog

from schemas import Source
from services.adapters.errors import ClientError
from services.adapters.metrics import AdapterMetrics
from services.adapters.outbox import BacklogFull, Intake, Outbox, OutboxError, Pending, Receipt
from services.adapters.relay import RELAY_PRODUCER_OPTIONS, ProducerLike, Relay
from services.adapters.settings import AdapterSettings
from services.adapters.status import StatusFollower
from services.common import kafka as kafka_clients
from services.common.logging import get_logger
from services.common.settings import KafkaSettings, TopicSettings

log = get_logger("cluebus.adapters")


class AdapterKafka(Protocol):
    """Where an adapter's Kafka clients come from (each call: a new client)."""

    def producer(self) -> ProducerLike: ...
    def status_consumer(self) -> Any: ...


class KafkaClients:
    """The adapter's clients of the real Kafka: the relay's idempotent producer, the status consumer."""

    def __init__(self, kafka: KafkaSettings, source: Source | str, settings: AdapterSettings) -> None:
        self.kafka = kafka
        self.client_id = f"{kafka.client_id}-adapter-{Source(source).value}"
        self.linger_ms = settings.relay_linger_ms

    def producer(self) -> ProducerLike:
        return kafka_clients.producer(
            self.kafka, client_id=self.client_id, linger_ms=self.linger_ms, **RELAY_PRODUCER_OPTIONS
        )

    def status_consumer(self) -> Any:
        return kafka_clients.consumer(self.kafka, group_id=None, client_id=f"{self.client_id}-status")


class AdapterRuntime:
    """Outbox, relay, status follower and pruner of one source's adapter."""

    def __init__(
        self,
        source: Source | str,
        settings: AdapterSettings,
        *,
        kafka: AdapterKafka,
        topic_settings: TopicSettings,
        state_dir: Path = Path(".run/state"),
    ) -> None:
        self.source = Source(source)
        self.settings = settings
        self.kafka = kafka
        self.topic = topic_settings.names.report(self.source.value)
        self.status_topic = topic_settings.names.status
        self.outbox_path = settings.resolved_outbox_dir(self.source, state_dir) / "outbox.sqlite3"
        self.metrics = AdapterMetrics(self.source.value)
        self.outbox: Outbox | None = None
        self.relay: Relay | None = None
        self.status: StatusFollower | None = None
        self._stop = threading.Event()
        self._pruner: threading.Thread | None = None
        self.log_context = {"service": f"adapter-{self.source.value}"}

    # lifecycle
    def start(self) -> None:
        s = self.settings
        self.outbox = Outbox(
            self.outbox_path,
            backlog_limit=s.backlog_limit,
            commit_max_rows=s.commit_max_rows,
            commit_linger_ms=s.commit_linger_ms,
        )
        commit_rows = self.metrics.commit_rows.labels(source=self.source.value)
        self.outbox.on_commit = commit_rows.observe
        self.metrics.bind_state(
            backlog=lambda: self.outbox.backlog if self.outbox else 0,
            oldest_unsent_s=self._oldest_unsent_s,
            kafka_up=lambda: 1.0 if self.relay is not None and self.relay.kafka_up else 0.0,
        )
        self.relay = Relay(
            self.outbox,
            self.topic,
            self.kafka.producer,
            batch_size=s.relay_batch_size,
            backoff_max_s=s.relay_backoff_max_s,
            on_published=self._published,
            gather_ms=s.relay_linger_ms,
            log_context=self.log_context,
        ).start()
        if s.status_enabled:
            stored = self.metrics.statuses.labels(source=self.source.value)
            self.status = StatusFollower(
                self.outbox,
                self.status_topic,
                self.source,
                self.kafka.status_consumer,
                on_stored=stored.inc,
                backoff_max_s=s.relay_backoff_max_s,
                log_context=self.log_context,
            ).start()
        self._pruner = threading.Thread(target=self._prune_loop, name="outbox-pruner", daemon=True)
        self._pruner.start()
        log.info(
            "adapter started",
            source=self.source.value,
            topic=self.topic,
            outbox=str(self.outbox_path),
            backlog=self.outbox.backlog,
        )

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self.status is not None:
            self.status.stop()
        if self.relay is not None:
            self.relay.stop(timeout)
        if self.outbox is not None:
            self.outbox.close()
        log.info("adapter stopped", source=self.source.value)

    def _oldest_unsent_s(self) -> float:
        try:
            return self.outbox.oldest_unsent_age_s() if self.outbox else 0.0
        except Exception:  # noqa: BLE001 - a scrape must not fail
            return 0.0

    def _published(self, rows: list[Pending], sent_ms: int) -> None:
        hist = self.metrics.publish_latency.labels(source=self.source.value)
        for row in rows:
            hist.observe(max(0.0, (sent_ms - row.created_ms) / 1000.0))
        self.metrics.published.labels(source=self.source.value).inc(len(rows))

    def prune_once(self) -> tuple[int, int]:
        assert self.outbox is not None
        now = self.outbox.clock_ms()
        return self.outbox.prune(
            sent_before_ms=now - int(self.settings.sent_retention_s * 1000),
            receipts_before_ms=now - int(self.settings.receipt_retention_s * 1000),
        ).result()

    def _prune_loop(self) -> None:
        structlog.contextvars.bind_contextvars(**self.log_context)
        wait = min(5.0, self.settings.prune_interval_s)  # soon after start, then every interval
        while not self._stop.wait(wait):
            wait = self.settings.prune_interval_s
            try:
                outbox, receipts = self.prune_once()
                if outbox or receipts:
                    log.info("outbox pruned", reports=outbox, receipts=receipts)
            except Exception as exc:  # noqa: BLE001 - try again next time
                log.warning("outbox pruning failed", error_type=type(exc).__name__)

    # health
    def health(self) -> dict[str, bool]:
        return {
            "outbox_writer": self.outbox is not None and self.outbox.alive,
            "relay": self.relay is not None and self.relay.alive,
        }

    def readiness(self) -> dict[str, Any]:
        alive = self.health()
        age = self._oldest_unsent_s()
        backlog = self.outbox.backlog if self.outbox else 0
        checks = {
            **alive,
            "kafka": self.relay is not None and self.relay.kafka_up,
            "outbox_not_stuck": age < self.settings.stuck_after_s,
            "backlog_below_limit": backlog < self.settings.backlog_limit,
        }
        return {
            "ready": all(checks.values()),
            "checks": checks,
            "backlog": backlog,
            "oldest_unsent_seconds": round(age, 3),
        }

    async def store(self, intakes: list[Intake]) -> list[Receipt | OutboxError]:
        assert self.outbox is not None
        try:
            return await self.outbox.submit_async(intakes)
        except OutboxError as exc:
            raise self.unavailable(exc) from None

    def unavailable(self, exc: OutboxError) -> ClientError:
        retry = {"Retry-After": str(self.settings.retry_after_s)}
        if isinstance(exc, BacklogFull):
            return ClientError(503, "backlog_full", "too many reports wait for Kafka; retry later", headers=retry)
        log.error("outbox unavailable", error_type=type(exc).__name__)
        return ClientError(503, "outbox_unavailable", "the report could not be stored; retry later", headers=retry)
