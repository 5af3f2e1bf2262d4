"""The tracker's Prometheus metrics: acknowledgement delays, outstanding and overdue referrals.

Gauges are computed at scrape time from the index, which is rebuilt from the
table (Kafka changelog), so they are right again after a restart. With several
tracker workers each exports its own partitions: sum them by department.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

from services.common.metrics import ACK_BUCKETS
from services.tracker.index import Outstanding
from services.tracker.state import Observation


class TrackerMetrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.ack_delay = Histogram(
            "cluebus_ack_delay_seconds",
            "Seconds from routing to a department's acknowledgement, by stage acknowledged.",
            ["department", "stage", "priority"],
            buckets=ACK_BUCKETS,
            registry=registry,
        )
        self.acks = Counter(
            "cluebus_acks_total", "Acknowledgements recorded.", ["department", "stage"], registry=registry
        )
        self.acks_rejected = Counter(
            "cluebus_acks_rejected_total",
            "Acknowledgements rejected to the dead-letter topic, by reason.",
            ["reason"],
            registry=registry,
        )
        self.overdue = Counter(
            "cluebus_referrals_overdue_total",
            "Referrals that ran past a clock (received, decided, completed).",
            ["department", "stage"],
            registry=registry,
        )
        self.escalations = Counter(
            "cluebus_escalations_total",
            "Escalations sent, by level and reason.",
            ["department", "level", "reason"],
            registry=registry,
        )
        self.declines = Counter(
            "cluebus_declines_total",
            "Referrals declined, by reason code.",
            ["department", "reason_code"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "cluebus_tracker_dead_letters_total",
            "Inputs the tracker sent to the dead-letter topic, by reason.",
            ["reason"],
            registry=registry,
        )

    def apply(self, observations: Iterable[Observation]) -> None:
        for o in observations:
            if o.kind == "ack":
                self.acks.labels(department=o.department, stage=o.stage).inc()
                self.ack_delay.labels(department=o.department, stage=o.stage, priority=o.priority).observe(o.seconds)
            elif o.kind == "overdue":
                self.overdue.labels(department=o.department, stage=o.stage).inc()
            elif o.kind == "escalation":
                self.escalations.labels(department=o.department, level=str(o.level), reason=o.reason).inc()
            elif o.kind == "decline":
                self.declines.labels(department=o.department, reason_code=o.reason or "unknown").inc()


class OutstandingCollector:
    """``cluebus_referrals_outstanding`` and ``cluebus_referral_oldest_unacknowledged_seconds``."""

    def __init__(self, outstanding: Callable[[], Outstanding | None], clock: Callable[[], float] = time.time) -> None:
        self._outstanding = outstanding
        self._clock = clock

    def collect(self) -> Any:
        count = GaugeMetricFamily(
            "cluebus_referrals_outstanding",
            "Open referrals by the stage they wait in (routed, received, accepted).",
            labels=["department", "stage"],
        )
        oldest = GaugeMetricFamily(
            "cluebus_referral_oldest_unacknowledged_seconds",
            "How long the longest-waiting open referral has waited in its stage.",
            labels=["department", "stage"],
        )
        index = self._outstanding()
        if index is not None:
            now = self._clock()
            for department, stage in sorted(index.groups()):
                count.add_metric([department, stage], index.counts[(department, stage)])
                since = index.oldest(department, stage)
                if since is not None:
                    oldest.add_metric([department, stage], max(0.0, now - since))
        yield count
        yield oldest
