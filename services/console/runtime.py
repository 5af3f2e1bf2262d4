"""What the console runs beside its pages: one inbox per department, and the escalations and status feeds.

Each department's :class:`DepartmentInbox` (its SQLite store and Kafka clients)
lives on one thread of its own: every page and action of that department and
its periodic ``sync`` run there one after another, so the store is never used
from two threads and a slow department never holds up another. The store is the
one the CLI uses (``inbox_store_path``): one inbox store per department.

:class:`OversightFeed` follows the escalations and status topics from their
beginning (ids, stages and clocks only; no consumer group) for the supervisors'
and the joint meeting office's pages. It keeps them in memory: every escalation,
and the latest status per report.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import ValidationError

from schemas import Escalation, ReportStatus
from services.common.kafka import KafkaUnavailable
from services.common.logging import get_logger
from services.inbox.client import DepartmentInbox, InboxError

log = get_logger(__name__)
T = TypeVar("T")


class DepartmentUnavailable(RuntimeError):
    """The department's inbox cannot work now (no topic, no access, Kafka away at start)."""


class DepartmentWorker:
    def __init__(self, department: str, make_inbox: Callable[[], DepartmentInbox], sync_interval_s: float) -> None:
        self.department = department
        self._make_inbox = make_inbox
        self.sync_interval_s = sync_interval_s
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"console-{department}")
        self._inbox: DepartmentInbox | None = None
        self._pending_sync: Future[Any] | None = None
        self.last_sync: float | None = None
        self.last_error: str | None = None
        self._failed_at = 0.0
        self._backoff_s = 0.0

    def call(self, work: Callable[[DepartmentInbox], T], timeout_s: float = 30.0) -> T:
        """Run ``work(inbox)`` on the department's thread and return its result (its exception)."""
        return self._executor.submit(self._run, work).result(timeout_s)

    def _run(self, work: Callable[[DepartmentInbox], T]) -> T:
        if self._inbox is None:
            self._inbox = self._make_inbox()
        return work(self._inbox)

    def request_sync(self, now: float | None = None) -> None:
        """Queue one sync unless one is already waiting, or the last failed less than the backoff ago.

        A sync while Kafka is away blocks this department's thread until the client's
        bootstrap timeout (10 s by default); backing off (up to a minute) keeps the
        department's pages (which work from the store, acks queued) answering meanwhile.
        """
        now = time.monotonic() if now is None else now
        if self._pending_sync is not None and not self._pending_sync.done():
            return
        if self.last_error is not None and now - self._failed_at < self._backoff_s:
            return
        self._pending_sync = self._executor.submit(self._run, self._sync)

    def _sync(self, inbox: DepartmentInbox) -> None:
        try:
            inbox.sync(timeout_s=2.0)
        except (InboxError, KafkaUnavailable, ValueError, OSError) as exc:
            message = str(exc) if isinstance(exc, InboxError | KafkaUnavailable) else type(exc).__name__
            if self.last_error != message:
                log.warning("department inbox sync failed", department=self.department, error=message[:200])
            self.last_error, self._failed_at = message, time.monotonic()
            self._backoff_s = min(60.0, max(self.sync_interval_s, self._backoff_s * 2))
            return
        self.last_sync, self.last_error, self._backoff_s = time.time(), None, 0.0

    def close(self) -> None:
        def shut(inbox: DepartmentInbox) -> None:
            inbox.close()

        if self._inbox is not None:
            try:
                self.call(shut, timeout_s=30)
            except Exception:  # noqa: BLE001 - closing must not hide the real outcome
                log.debug("inbox close failed", department=self.department)
        self._executor.shutdown(wait=True, cancel_futures=True)


class Syncer:
    """Asks every department's worker to sync every ``interval_s`` (a daemon thread)."""

    def __init__(self, workers: list[DepartmentWorker], interval_s: float) -> None:
        self.workers, self.interval_s = workers, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="console-syncer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            for worker in self.workers:
                worker.request_sync()
            self._stop.wait(self.interval_s)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


@dataclass(frozen=True)
class DepartmentCounts:
    department: str
    open: int
    overdue: int
    escalated: int


class OversightFeed:
    """Escalations and the latest status per report, read from the bus into memory."""

    def __init__(self, make_consumer: Callable[[], Any], escalations_topic: str, status_topic: str) -> None:
        self._make_consumer = make_consumer
        self.topics = (escalations_topic, status_topic)
        self._lock = threading.Lock()
        self._escalations: dict[str, Escalation] = {}
        self._status: dict[str, ReportStatus] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="console-oversight", daemon=True)
        self.error: str | None = None
        self.caught_up = threading.Event()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        from kafka import TopicPartition
        from kafka.errors import KafkaError

        consumer = None
        while not self._stop.is_set():
            try:
                if consumer is None:
                    consumer = self._make_consumer()
                    tps = [
                        TopicPartition(t, p)
                        for t in self.topics
                        for p in sorted(consumer.partitions_for_topic(t) or ())
                    ]
                    if not tps:
                        raise DepartmentUnavailable(f"no partitions of {', '.join(self.topics)}")
                    consumer.assign(tps)
                    consumer.seek_to_beginning(*tps)
                    ends = consumer.end_offsets(tps)
                for records in consumer.poll(timeout_ms=500).values():
                    for record in records:
                        self.add(record.topic, record.value)
                if not self.caught_up.is_set() and all(consumer.position(tp) >= e for tp, e in ends.items()):
                    self.caught_up.set()
                self.error = None
            except (KafkaError, DepartmentUnavailable, OSError, RuntimeError) as exc:
                if self.error is None:
                    log.warning("oversight feed interrupted; retrying", error=type(exc).__name__)
                self.error = type(exc).__name__
                if consumer is not None:
                    consumer.close()
                    consumer = None
                self._stop.wait(2.0)
        if consumer is not None:
            consumer.close()

    def add(self, topic: str, value: bytes | None) -> None:
        """One record of either topic (unreadable ones are skipped: the tracker's dead letters say why)."""
        if value is None:
            return
        try:
            if topic == self.topics[0]:
                escalation = Escalation.model_validate_json(value)
                with self._lock:
                    self._escalations[escalation.escalation_id] = escalation
            else:
                status = ReportStatus.model_validate_json(value)
                with self._lock:
                    if status.newer_than(self._status.get(status.report_id)):
                        self._status[status.report_id] = status
        except (ValidationError, ValueError):
            log.debug("unreadable oversight record skipped", topic=topic)

    def escalations_to(self, department: str) -> list[Escalation]:
        """Escalations whose target is this department or one of its roles, newest first."""
        with self._lock:
            found = [e for e in self._escalations.values() if e.target.split(".", 1)[0] == department]
        return sorted(found, key=lambda e: (e.escalated_at, e.escalation_id), reverse=True)

    def counts(self) -> list[DepartmentCounts]:
        """Per department that was ever sent a referral: how many are open (not declined or completed),
        overdue and escalated; most overdue first."""
        open_: dict[str, int] = {}
        overdue: dict[str, int] = {}
        escalated: dict[str, int] = {}
        with self._lock:
            for status in self._status.values():
                for d in status.departments:
                    is_open = d.stage.value not in ("declined", "completed")
                    open_[d.department] = open_.get(d.department, 0) + int(is_open)
                    overdue[d.department] = overdue.get(d.department, 0) + int(is_open and d.overdue)
                    escalated[d.department] = escalated.get(d.department, 0) + int(is_open and d.escalation_level > 0)
        rows = [DepartmentCounts(d, open_[d], overdue[d], escalated[d]) for d in open_]
        return sorted(rows, key=lambda c: (-c.overdue, -c.open, c.department))
