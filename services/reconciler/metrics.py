"""The reconciler's Prometheus metrics (labels: the five sources, and report/decision)."""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge


class ReconcilerMetrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.unrouted = Gauge(
            "cluebus_reports_unrouted",
            "Published reports older than the grace period with no routing decision or dead letter, by source.",
            ["source"],
            registry=registry,
        )
        self.untracked = Gauge(
            "cluebus_reports_untracked",
            "Routing decisions older than the grace period that the tracker has not taken in (no status), by source.",
            ["source"],
            registry=registry,
        )
        self.redriven = Counter(
            "cluebus_reconciler_redriven_total",
            "Records published again: unrouted reports (kind=report) for the router, untracked decisions "
            "(kind=decision) for the tracker, by source.",
            ["source", "kind"],
            registry=registry,
        )
        self.settled = Counter(
            "cluebus_reconciler_reports_settled_total",
            "Reports the reconciler matched with a routing decision or a dead letter.",
            registry=registry,
        )
        self.waiting = Gauge(
            "cluebus_reconciler_reports_waiting",
            "Reports seen without an outcome yet (within the grace period or unrouted).",
            registry=registry,
        )
        self.last_check = Gauge(
            "cluebus_reconciler_last_check_timestamp_seconds",
            "When the reconciler last compared published reports with decisions (caught up on both).",
            registry=registry,
        )
