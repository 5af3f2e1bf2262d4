"""The reconciler's Kafka side: find what was published but not routed, or routed but not tracked.

Two ledgers, the same rule: a record must be followed by an outcome within the grace period.

* routing: a report record on a report topic must have a routing decision (or a dead letter);
* tracking: a routing decision must have a status from the tracker (the tracker writes a
  report's first status when it takes the decision in and starts its clocks), or a dead letter.

Together with the tracker's own clocks and escalations this means an accepted report cannot end
silent: unrouted, it is counted here; routed but untracked, it is counted here; tracked, its
overdue acknowledgements escalate.

It uses no consumer group and commits nothing (it trusts no committed offset, its own
included): at start it reads every report, decision and dead-letter partition from the first
record newer than the horizon (or ``--since``), then follows them. What it knows is rebuilt
from the topics at every start, so any number of reconcilers may run; a report re-driven by
two of them is routed once (the router de-duplicates by report id, referral ids are
deterministic).

A re-drive publishes the original record again, same key and bytes, to the same topic (so the
same partition) with a ``cluebus-redriven-by`` header: the router (or the tracker) then handles
it like any other, through its own rules and guarantees, idempotently. Only ids, coordinates
and counts are logged; report contents are read only to be copied back unchanged.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from kafka import TopicPartition

from schemas.enums import Source
from services.common import kafka as clients
from services.common.logging import get_logger
from services.common.settings import KafkaSettings, TopicSettings
from services.reconciler.ledger import Finding, Ledger, Published
from services.reconciler.metrics import ReconcilerMetrics
from services.reconciler.settings import ReconcilerSettings

log = get_logger(__name__)
_SOURCES = tuple(s.value for s in Source)  # the source label values
REDRIVE_HEADER = "cluebus-redriven-by"


@dataclass(frozen=True)
class Findings:
    unrouted: list[Finding]  # report records without a routing decision
    untracked: list[Finding]  # routing decisions the tracker has not taken in

    def __bool__(self) -> bool:
        return bool(self.unrouted or self.untracked)


class Reconciler:
    def __init__(
        self,
        kafka: KafkaSettings,
        topics: TopicSettings,
        settings: ReconcilerSettings,
        metrics: ReconcilerMetrics | None = None,
    ) -> None:
        self.kafka, self.settings, self.metrics = kafka, settings, metrics
        self.names = topics.names
        self.routing = Ledger(settings.grace_s, settings.horizon_s, settings.redrive_every_s)
        self.tracking = Ledger(settings.grace_s, settings.horizon_s, settings.redrive_every_s)
        self._source_of = {self.names.report(s): s.value for s in Source}
        self._consumer: Any = None
        self._producer: Any = None
        self._settled_seen = 0

    # --- reading -------------------------------------------------------------------------------
    def open(self, since_s: float) -> None:
        """Assign every partition and seek to the first record at or after ``since_s`` (epoch)."""
        consumer = clients.consumer(self.kafka, group_id=None, client_id="cluebus-reconciler")
        names = [*self._source_of, self.names.decisions, self.names.status, self.names.deadletter]
        tps = []
        for name in names:
            partitions = consumer.partitions_for_topic(name)
            if not partitions:
                consumer.close()
                raise ValueError(f"topic {name} does not exist or may not be read; run `cluebus topics ensure`")
            tps.extend(TopicPartition(name, p) for p in sorted(partitions))
        consumer.assign(tps)
        starts = consumer.offsets_for_times({tp: int(since_s * 1000) for tp in tps})
        ends = consumer.end_offsets(tps)
        for tp in tps:
            found = starts.get(tp)
            consumer.seek(tp, found.offset if found is not None else ends[tp])
        self._consumer = consumer

    def read(self, timeout_ms: int = 500) -> int:
        """One poll; every record settles or opens an entry in the ledger. Returns records read."""
        count = 0
        for tp, records in self._consumer.poll(timeout_ms=timeout_ms, max_records=5000).items():
            for record in records:
                count += 1
                self._take(tp.topic, record)
        self._count_settled()
        return count

    def _take(self, topic: str, record: Any) -> None:
        names = self.names
        if topic in self._source_of:
            key = record.key.decode("utf-8", "replace") if record.key else None
            self.routing.published(
                Published(
                    report_id=key or f"unkeyed@{topic}:{record.partition}:{record.offset}",
                    source=self._source_of[topic],
                    topic=topic,
                    partition=record.partition,
                    offset=record.offset,
                    published_ms=record.timestamp,
                )
            )
        elif topic == names.decisions:
            decision = _json(record.value) or {}
            report_id = record.key.decode("utf-8", "replace") if record.key else decision.get("report_id")
            if not isinstance(report_id, str):
                return  # the tracker dead-letters it; the dead-letter alert covers it
            self.routing.decided(report_id, record.timestamp)
            source = decision.get("source")
            self.tracking.published(
                Published(
                    report_id,
                    source if source in _SOURCES else "unknown",
                    topic,
                    record.partition,
                    record.offset,
                    record.timestamp,
                )
            )
        elif topic == names.status:
            if record.key:
                self.tracking.decided(record.key.decode("utf-8", "replace"), record.timestamp)
        else:  # a dead letter: does it name one of the records we follow?
            letter = _json(record.value)
            if not letter:
                return
            try:
                where = (str(letter["topic"]), int(letter["partition"]), int(letter["offset"]))
            except (KeyError, TypeError, ValueError):
                return  # not a dead letter of ours; the dead-letter alert covers it
            ledger = (
                self.routing if where[0] in self._source_of else self.tracking if where[0] == names.decisions else None
            )
            if ledger is None:
                return
            if letter.get("cause") == "internal":  # processing failed, not the input: no outcome, wait again
                ledger.failed(
                    Published(
                        _letter_key(letter) or f"unkeyed@{where[0]}:{where[1]}:{where[2]}",
                        self._source_of.get(where[0], "unknown"),
                        *where,
                        record.timestamp,
                    )
                )
            else:
                ledger.dead_lettered(*where, record.timestamp)

    def caught_up(self, budget_s: float = 5.0) -> bool:
        """Read until every partition reaches the end it had when this was called (or the budget ends)."""
        consumer = self._consumer
        ends = consumer.end_offsets(list(consumer.assignment()))
        deadline = time.monotonic() + budget_s
        while True:
            if all(consumer.position(tp) >= end for tp, end in ends.items()):
                return True
            if time.monotonic() >= deadline:
                return False
            self.read(timeout_ms=200)

    # --- finding and re-driving ------------------------------------------------------------------
    def check(self, now_s: float | None = None) -> Findings:
        """Unrouted reports and untracked decisions now; updates the metrics. Only meaningful caught up."""
        now_s = time.time() if now_s is None else now_s
        found = Findings(self.routing.unrouted(now_s), self.tracking.unrouted(now_s))
        if self.metrics is not None:
            for gauge, findings in ((self.metrics.unrouted, found.unrouted), (self.metrics.untracked, found.untracked)):
                by_source = Counter(f.record.source for f in findings)
                for source in {*_SOURCES, *by_source}:
                    gauge.labels(source=source).set(by_source.get(source, 0))
            self.metrics.waiting.set(self.routing.waiting + self.tracking.waiting)
            self.metrics.last_check.set(now_s)
        for event, findings in (("report unrouted", found.unrouted), ("decision untracked", found.untracked)):
            for finding in findings:
                r = finding.record
                log.warning(
                    event,
                    report_id=r.report_id,
                    source=r.source,
                    partition=r.partition,
                    offset=r.offset,
                    age_s=round(finding.age_s, 1),
                    redrives=finding.redrives,
                )
        self.routing.forget_before(now_s)
        self.tracking.forget_before(now_s)
        return found

    def redrive(self, found: Findings, now_s: float | None = None) -> int:
        """Publish each due finding's record again; returns how many were re-driven."""
        now_s = time.time() if now_s is None else now_s
        due = [("report", self.routing, f) for f in self.routing.due_for_redrive(found.unrouted, now_s)]
        due += [("decision", self.tracking, f) for f in self.tracking.due_for_redrive(found.untracked, now_s)]
        if not due:
            return 0
        producer = self._producer or clients.producer(self.kafka, client_id="cluebus-reconciler")
        self._producer = producer
        sent = []
        for kind, ledger, finding in due:
            r = finding.record
            original = self._fetch(r.topic, r.partition, r.offset)
            if original is None:
                log.error(
                    f"{kind} no longer in the log; cannot re-drive",
                    report_id=r.report_id,
                    source=r.source,
                    partition=r.partition,
                    offset=r.offset,
                )
                continue
            future = producer.send(
                r.topic, key=original.key, value=original.value, headers=[(REDRIVE_HEADER, b"reconciler")]
            )
            sent.append((kind, ledger, finding, future))
        producer.flush(timeout=30)
        count = 0
        for kind, ledger, finding, future in sent:
            r = finding.record
            if not future.succeeded():
                log.warning("re-drive not acknowledged; tried again next check", report_id=r.report_id, kind=kind)
                continue
            count += 1
            ledger.redriven(r.report_id, now_s)
            if self.metrics is not None:
                self.metrics.redriven.labels(source=r.source, kind=kind).inc()
            log.warning(
                f"{'unrouted report' if kind == 'report' else 'untracked decision'} re-driven",
                report_id=r.report_id,
                source=r.source,
                partition=r.partition,
                offset=r.offset,
                redrives=finding.redrives + 1,
            )
        return count

    def _fetch(self, topic: str, partition: int, offset: int) -> Any:
        consumer = clients.consumer(self.kafka, group_id=None, client_id="cluebus-reconciler-fetch")
        try:
            tp = TopicPartition(topic, partition)
            consumer.assign([tp])
            consumer.seek(tp, offset)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                for record in consumer.poll(timeout_ms=500, max_records=1).get(tp, []):
                    return record if record.offset == offset else None
            return None
        finally:
            consumer.close()

    # --- the service loop ----------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        self.open(time.time() - self.settings.horizon_s)
        log.info("reconciler started", grace_s=self.settings.grace_s, horizon_s=self.settings.horizon_s)
        next_check = 0.0
        while not stop.is_set():
            self.read()
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + self.settings.check_interval_s
                if not self.caught_up():
                    log.info("reconciler behind the topics; check postponed")
                    continue
                found = self.check()
                if found and self.settings.redrive:
                    self.redrive(found)

    def close(self) -> None:
        for client in (self._consumer, self._producer):
            if client is not None:
                try:
                    client.close()
                except Exception:  # noqa: BLE001 - closing must not hide the real outcome
                    log.debug("reconciler client close failed")

    def _count_settled(self) -> None:
        settled = self.routing.settled
        if self.metrics is not None and settled > self._settled_seen:
            self.metrics.settled.inc(settled - self._settled_seen)
        self._settled_seen = settled


def _json(value: bytes | None) -> dict[str, Any] | None:
    try:
        data = json.loads(value or b"")
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _letter_key(letter: dict[str, Any]) -> str | None:
    """The report id a dead letter's original record was keyed by (ids only, never the value)."""
    import base64

    try:
        return base64.b64decode(letter.get("key_b64") or "").decode("utf-8") or None
    except (ValueError, UnicodeDecodeError):
        return None


def _field(value: bytes | None, name: str) -> str | None:
    data = _json(value)
    found = data.get(name) if data else None
    return found if isinstance(found, str) else None
