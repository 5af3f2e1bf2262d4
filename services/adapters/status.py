"""Follows the status topic and keeps, per report of this source, the highest-seq ReportStatus.

The status topic is compacted and shared by every source. The follower reads
all its partitions without a consumer group (``assign``), keeps only statuses
of its own source, and stores them together with the next offsets in one
outbox transaction, so that a restart resumes where it stopped instead of
re-reading the topic.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import structlog
from pydantic import ValidationError

from schemas import ReportStatus, Source
from services.adapters.outbox import Outbox, OutboxError
from services.adapters.relay import Backoff
from services.common.logging import get_logger

log = get_logger("cluebus.adapters.status")


class StatusFollower:
    def __init__(
        self,
        outbox: Outbox,
        topic: str,
        source: Source,
        consumer_factory: Callable[[], Any],
        *,
        on_stored: Callable[[int], None] | None = None,
        backoff_max_s: float = 10.0,
        log_context: dict[str, str] | None = None,
    ) -> None:
        self.outbox = outbox
        self.log_context = log_context or {}
        self.topic = topic
        self.source = source
        self.consumer_factory = consumer_factory
        self.on_stored = on_stored
        self._backoff = Backoff(max_s=backoff_max_s)
        self._stop = threading.Event()
        self._consumer: Any = None
        self._thread: threading.Thread | None = None
        self.stored = 0
        self.skipped = 0
        self.ready = False  # assigned and positioned
        self._missing_reported = False

    def start(self) -> StatusFollower:
        self._thread = threading.Thread(target=self._run, name="status-follower", daemon=True)
        self._thread.start()
        return self

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._close()

    def _close(self) -> None:
        consumer, self._consumer = self._consumer, None
        self.ready = False
        if consumer is not None:
            try:
                consumer.close()
            except Exception:  # noqa: BLE001, S110
                pass

    def _assign(self) -> bool:
        from kafka import TopicPartition

        try:
            consumer = self.consumer_factory()
        except Exception as exc:  # noqa: BLE001 - broker down: try again later
            log.debug("status topic unavailable", error_type=type(exc).__name__)
            return False
        self._consumer = consumer
        partitions = consumer.partitions_for_topic(self.topic)
        if not partitions:
            if not self._missing_reported:
                log.warning("status topic not found; will retry", topic=self.topic)
                self._missing_reported = True
            self._close()
            return False
        self._missing_reported = False
        tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        stored = self.outbox.status_offsets(self.topic)
        fresh = [tp for tp in tps if tp.partition not in stored]
        for tp in tps:
            if tp.partition in stored:
                consumer.seek(tp, stored[tp.partition])
        if fresh:
            # Explicit offsets, not seek_to_beginning(): that leaves each partition waiting
            # for an asynchronous reset, and once, under load, kafka-python reset one of the
            # three and never fetched the other two. A failed lookup raises here, and the
            # follower starts again.
            for tp, offset in consumer.beginning_offsets(fresh).items():
                consumer.seek(tp, offset)
        self.ready = True
        log.info("following the status topic", topic=self.topic, resumed=len(tps) - len(fresh))
        return True

    def _run(self) -> None:
        structlog.contextvars.bind_contextvars(**self.log_context)
        while not self._stop.is_set():
            try:
                if self._consumer is None and not self._assign():
                    self._stop.wait(self._backoff.next())
                    continue
                self._backoff.reset()
                self._poll_once()
            except Exception as exc:  # noqa: BLE001 - keep following after any single fault
                log.error("status follower failed; restarting it", error_type=type(exc).__name__)
                self._close()
                self._stop.wait(self._backoff.next())
        self._close()

    def _poll_once(self) -> None:
        batches = self._consumer.poll(timeout_ms=1000, max_records=1000)
        if not batches:
            return
        latest: dict[str, tuple[str, int, int, bytes]] = {}
        offsets: dict[tuple[str, int], int] = {}
        for tp, records in batches.items():
            for record in records:
                offsets[(tp.topic, tp.partition)] = record.offset + 1
                if record.value is None:  # a tombstone
                    continue
                try:
                    status = ReportStatus.model_validate_json(record.value)
                except ValidationError:
                    self.skipped += 1
                    log.warning("unreadable status skipped", partition=tp.partition, offset=record.offset)
                    continue
                if status.source != self.source:
                    continue
                prev = latest.get(status.report_id)
                if prev is None or status.seq > prev[1]:
                    updated_ms = int(status.updated_at.timestamp() * 1000)
                    latest[status.report_id] = (
                        status.report_id,
                        status.seq,
                        updated_ms,
                        record.value,
                    )
        try:
            changed = self.outbox.store_statuses(list(latest.values()), offsets).result()
        except OutboxError as exc:
            # Not stored: read the same records again from the stored offsets.
            log.error("cannot store statuses", error_type=type(exc).__name__)
            self._close()
            return
        self.stored += changed
        if self.on_stored is not None and changed:
            self.on_stored(changed)
