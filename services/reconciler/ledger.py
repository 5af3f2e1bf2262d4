"""What was published against what was decided, per report id (pure: no Kafka, no clock).

The reconciler trusts no consumer's offsets. It reads the report topics (what the adapters
published) and the decisions and dead-letter topics (what the router made of them) and keeps,
for every report seen, whether it has an outcome:

* a routing decision with its ``report_id`` (any record of the report: a relay retry or a
  re-drive publishes the same id again, and one decision settles them all), or
* a dead letter naming the report record's topic, partition and offset whose cause is the
  input (the router refused it: not silent, it is counted and alerted on as a dead letter). A
  dead letter whose cause is internal (processing failed though the input may be right) is no
  outcome: the report stays unrouted here, is re-driven and, if it keeps failing, pages.

A report with neither, published more than ``grace`` ago, is **unrouted**. Reports and
decisions are read in whatever order the topics deliver them, so a decision may be seen first;
it is kept until its report shows up or until it is older than ``horizon`` (how far back the
reconciler reads). Memory is therefore bounded by the reports of one horizon, ids only.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Published:
    """One report record on a report topic (coordinates and ids only, never content)."""

    report_id: str
    source: str
    topic: str
    partition: int
    offset: int
    published_ms: int  # the record's timestamp


@dataclass(frozen=True, slots=True)
class Finding:
    """A report without an outcome past the grace period."""

    record: Published
    age_s: float
    redrives: int  # how often it was re-driven before this finding


@dataclass
class Ledger:
    grace_s: float
    horizon_s: float
    redrive_every_s: float
    _waiting: dict[str, Published] = field(default_factory=dict)  # report id -> first record seen
    _records: dict[tuple[str, int, int], str] = field(default_factory=dict)  # waiting records' coordinates
    _coordinates: dict[str, list[tuple[str, int, int]]] = field(default_factory=dict)  # the reverse
    _decided: dict[str, int] = field(default_factory=dict)  # decided, report not seen yet -> seen at (ms)
    _dead: dict[tuple[str, int, int], int] = field(default_factory=dict)  # dead-lettered coordinates -> ms
    _redriven: dict[str, tuple[int, float]] = field(default_factory=dict)  # id -> (count, last at, s)
    settled: int = 0  # reports matched with an outcome since the start

    def published(self, record: Published) -> None:
        coordinates = (record.topic, record.partition, record.offset)
        if record.report_id in self._decided:
            del self._decided[record.report_id]
            self.settled += 1
        elif self._dead.pop(coordinates, None) is not None:
            self.settled += 1
        else:
            self._waiting.setdefault(record.report_id, record)
            self._records[coordinates] = record.report_id
            self._coordinates.setdefault(record.report_id, []).append(coordinates)

    def decided(self, report_id: str, seen_ms: int) -> None:
        if report_id in self._waiting:
            self._settle(report_id)
        else:
            self._decided[report_id] = seen_ms

    def dead_lettered(self, topic: str, partition: int, offset: int, seen_ms: int) -> None:
        report_id = self._records.get((topic, partition, offset))
        if report_id is not None:
            self._settle(report_id)
        else:
            self._dead[(topic, partition, offset)] = seen_ms

    def failed(self, record: Published) -> None:
        """Processing of ``record`` failed inside the service (a dead letter whose cause is internal).

        No outcome, whatever was seen before it: a status the tracker sent before its state
        write failed proves nothing. The report waits again, from the failure's time, and is
        re-driven after the grace period.
        """
        self._decided.pop(record.report_id, None)
        if record.report_id in self._waiting:
            self._settle(record.report_id)
            self.settled -= 1
        self._waiting[record.report_id] = record
        self._records[(record.topic, record.partition, record.offset)] = record.report_id
        self._coordinates.setdefault(record.report_id, []).append((record.topic, record.partition, record.offset))

    def _settle(self, report_id: str) -> None:
        del self._waiting[report_id]
        self._redriven.pop(report_id, None)
        for coordinates in self._coordinates.pop(report_id, ()):
            self._records.pop(coordinates, None)
        self.settled += 1

    def unrouted(self, now_s: float) -> list[Finding]:
        """Reports published more than ``grace`` ago with no outcome, oldest first."""
        limit_ms = (now_s - self.grace_s) * 1000
        out = [
            Finding(r, now_s - r.published_ms / 1000, self._redriven.get(r.report_id, (0, 0.0))[0])
            for r in self._waiting.values()
            if r.published_ms <= limit_ms
        ]
        return sorted(out, key=lambda f: f.record.published_ms)

    def due_for_redrive(self, findings: list[Finding], now_s: float) -> list[Finding]:
        """The findings not re-driven within ``redrive_every_s`` (one re-drive, then patience)."""
        due = []
        for finding in findings:
            count, last = self._redriven.get(finding.record.report_id, (0, 0.0))
            if count == 0 or now_s - last >= self.redrive_every_s:
                due.append(finding)
        return due

    def redriven(self, report_id: str, now_s: float) -> None:
        count, _ = self._redriven.get(report_id, (0, 0.0))
        self._redriven[report_id] = (count + 1, now_s)

    def forget_before(self, now_s: float) -> None:
        """Drop outcomes whose report never showed up within the horizon (read before our window)."""
        limit_ms = (now_s - self.horizon_s) * 1000
        self._decided = {k: v for k, v in self._decided.items() if v >= limit_ms}
        self._dead = {k: v for k, v in self._dead.items() if v >= limit_ms}

    @property
    def waiting(self) -> int:
        return len(self._waiting)
