"""The relay: publishes the outbox to the sector's report topic, in order, never skipping a row.

One thread, one idempotent ``acks=all`` producer. Each round reads the first
unsent rows (``seq`` order), sends them keyed by report id, waits for the
broker's acknowledgement of every one of them, and only then marks them sent
(one outbox transaction). The producer retries internally without a delivery
deadline, so a broker outage only makes the round wait: when the broker
returns, the same producer session delivers the same batches, which the broker
de-duplicates by producer id and sequence number. A record that fails anyway
(a fatal error) leaves its row unsent; the producer is rebuilt and the round
starts again from the first unsent row. Delivery is therefore at least once
and, without fatal errors or crashes, exactly once.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import structlog

from services.adapters.outbox import Outbox, OutboxError, Pending
from services.common.logging import get_logger

log = get_logger("cluebus.adapters.relay")

# Producer tuning for the relay: no delivery deadline (the outbox is the queue,
# and an expired batch could come back as a duplicate), a short metadata age so
# an idle relay notices a lost broker, and a bounded wait for metadata in send().
# Batches of 256 KiB (not the 16 KiB default, which holds only ~8 reports): a round
# of reports then fills a few batches per partition instead of one wake-up of the
# producer's network thread and one small batch per handful of reports, which cut
# that thread's CPU per report by ~40% under the intake benchmark. The relay flushes
# after each round, so the bigger batch never holds a report back. It stays well
# below the topics' 1 MiB max.message.bytes.
RELAY_PRODUCER_OPTIONS: dict[str, Any] = {
    "batch_size": 256 * 1024,
    "delivery_timeout_ms": 2**31 - 1,
    "metadata_max_age_ms": 10_000,
    "max_block_ms": 10_000,
    "reconnect_backoff_max_ms": 2_000,
}


class ProducerLike(Protocol):  # the part of KafkaProducer the relay uses
    def send(self, topic: str, value: bytes | None = None, key: bytes | None = None) -> Any: ...
    def flush(self, timeout: float | None = None) -> None: ...
    def close(self, timeout: float | None = None) -> None: ...


class Backoff:
    """Exponential back-off with full jitter."""

    def __init__(self, base_s: float = 0.2, max_s: float = 10.0) -> None:
        self.base_s, self.max_s, self.attempt = base_s, max_s, 0
        self._random = random.Random()  # noqa: S311 - jitter, not crypto; its own, not the shared generator

    def next(self) -> float:
        ceiling = min(self.max_s, self.base_s * 2**self.attempt)
        self.attempt = min(self.attempt + 1, 30)
        return self._random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.attempt = 0


class Relay:
    def __init__(
        self,
        outbox: Outbox,
        topic: str,
        producer_factory: Callable[[], ProducerLike],
        *,
        batch_size: int = 500,
        backoff_max_s: float = 10.0,
        slow_after_s: float = 5.0,
        gather_ms: float = 0.0,
        on_published: Callable[[list[Pending], int], None] | None = None,
        clock_ms: Callable[[], int] | None = None,
        log_context: dict[str, str] | None = None,
    ) -> None:
        self.outbox = outbox
        self.log_context = log_context or {}
        self.topic = topic
        self.producer_factory = producer_factory
        self.batch_size = batch_size
        self.slow_after_s = slow_after_s
        self.gather_s = gather_ms / 1000.0
        self.on_published = on_published
        self.clock_ms = clock_ms or outbox.clock_ms
        self._backoff = Backoff(max_s=backoff_max_s)
        self._producer: ProducerLike | None = None
        self._stop = threading.Event()
        self._give_up_at: float | None = None
        self._last_round_end = float("-inf")
        self._thread: threading.Thread | None = None
        # Health, read by /readyz and the metrics.
        self.kafka_up = False
        self.last_error: str | None = None
        self.published = 0
        self.rounds = 0

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> Relay:
        self._thread = threading.Thread(target=self._run, name="outbox-relay", daemon=True)
        self._thread.start()
        return self

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the round in flight is acknowledged (or ``timeout`` passes)."""
        self._give_up_at = time.monotonic() + timeout
        self._stop.set()
        self.outbox.unsent_event.set()
        if self._thread is not None:
            self._thread.join(timeout + 5)
        self._close_producer(timeout=1.0)

    # -- the loop ----------------------------------------------------------------------
    def _run(self) -> None:
        structlog.contextvars.bind_contextvars(**self.log_context)
        while not self._stop.is_set():
            try:
                if self._producer is None and not self._connect():
                    self._pause()
                    continue
                self.outbox.unsent_event.clear()
                rows = self.outbox.fetch_unsent(self.batch_size)
                if not rows:
                    self._idle_check()
                    self.outbox.unsent_event.wait(1.0)
                    continue
                if len(rows) < self.batch_size and self.gather_s > 0 and self._busy(len(rows)):
                    # Under load, a moment's wait gathers a bigger batch, so fewer produce
                    # requests and outbox transactions carry the same reports (costs at most
                    # gather_s of latency). A lone row after a quiet spell goes out at once.
                    self._stop.wait(self.gather_s)
                    rows = self.outbox.fetch_unsent(self.batch_size)
                published = self._publish(rows)
                self._last_round_end = time.monotonic()
                if published:
                    self._backoff.reset()
                else:
                    self._pause()
            except Exception as exc:  # noqa: BLE001 - the relay must outlive any single fault
                self.last_error = type(exc).__name__
                log.error("relay round failed", error_type=type(exc).__name__)
                self._close_producer(timeout=0)
                self._pause()

    def _busy(self, waiting: int) -> bool:
        """Rows queued up, or the last round ended less than gather_s ago: load, not a lone report."""
        return waiting > 1 or time.monotonic() - self._last_round_end < self.gather_s

    def _pause(self) -> None:
        self._stop.wait(self._backoff.next())

    def _connect(self) -> bool:
        try:
            self._producer = self.producer_factory()
        except Exception as exc:  # noqa: BLE001 - broker down at start-up, bad TLS files, ...
            self.kafka_up = False
            if self.last_error != type(exc).__name__:
                log.warning(
                    "kafka unavailable; reports are kept in the outbox",
                    error_type=type(exc).__name__,
                    backlog=self.outbox.backlog,
                )
            self.last_error = type(exc).__name__
            return False
        self.kafka_up = True
        self.last_error = None
        log.info("relay connected to kafka", topic=self.topic, backlog=self.outbox.backlog)
        return True

    def _close_producer(self, timeout: float) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                producer.close(timeout=timeout)
            except Exception:  # noqa: BLE001, S110 - closing a broken client
                pass

    def _idle_check(self) -> None:
        """While idle, tell whether the producer still hears from the cluster."""
        metadata = getattr(self._producer, "_metadata", None)
        refreshed_ms = getattr(metadata, "_last_successful_refresh_ms", None)
        if isinstance(refreshed_ms, int | float) and refreshed_ms > 0:
            max_age = RELAY_PRODUCER_OPTIONS["metadata_max_age_ms"]
            # kafka-python stamps refreshes with time.monotonic() in milliseconds.
            self.kafka_up = time.monotonic() * 1000 - refreshed_ms < 3 * max_age

    def _publish(self, rows: list[Pending]) -> bool:
        producer = self._producer
        assert producer is not None
        self.rounds += 1
        futures: list[Any] = []
        send_error: Exception | None = None
        for row in rows:
            try:
                futures.append(producer.send(self.topic, key=row.report_id.encode(), value=row.payload))
            except Exception as exc:  # noqa: BLE001 - metadata timeout, buffer full, closed
                send_error = exc
                break
        if not self._await(producer, futures):
            return False  # stopping: the rows stay unsent and go out after the restart
        done = [row for row, fut in zip(rows, futures, strict=False) if fut.succeeded()]
        failed = [(row, fut) for row, fut in zip(rows, futures, strict=False) if not fut.succeeded()]
        if done:
            sent_ms = self.clock_ms()
            try:
                self.outbox.mark_sent([r.seq for r in done], sent_ms).result()
            except OutboxError as exc:
                log.error("cannot mark reports sent", error_type=type(exc).__name__)
                return False
            self.published += len(done)
            self.kafka_up = True
            if self.on_published is not None:
                self.on_published(done, sent_ms)
        if failed:
            row, fut = failed[0]
            error = type(fut.exception).__name__ if getattr(fut, "exception", None) else "unknown"
            self.last_error = error
            log.error(
                "publishing failed; the producer is rebuilt and the report retried",
                report_id=row.report_id,
                error_type=error,
                failed=len(failed),
            )
            self._close_producer(timeout=0)
            return False
        if send_error is not None:
            self.kafka_up = False
            self.last_error = type(send_error).__name__
            log.warning(
                "cannot send to kafka; retrying",
                error_type=type(send_error).__name__,
                topic=self.topic,
                backlog=self.outbox.backlog,
            )
            # Nothing is in flight any more (every future above is done): a fresh producer
            # cannot duplicate anything, and it recovers from a client stuck on old metadata.
            self._close_producer(timeout=0)
            return False
        self.last_error = None
        return True

    def _await(self, producer: ProducerLike, futures: list[Any]) -> bool:
        """Wait until every future is done; False if told to stop first."""
        started = time.monotonic()
        while True:
            if all(f.is_done for f in futures):
                return True
            if self._stop.is_set() and self._give_up_at is not None and time.monotonic() > self._give_up_at:
                return False
            if time.monotonic() - started > self.slow_after_s and self.kafka_up:
                self.kafka_up = False
                log.warning(
                    "kafka does not acknowledge; waiting",
                    topic=self.topic,
                    in_flight=sum(not f.is_done for f in futures),
                )
            try:
                producer.flush(timeout=0.5)
            except Exception:  # noqa: BLE001, S110 - KafkaTimeoutError: keep waiting
                pass
