"""The router's Prometheus metrics (bounded labels only)."""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

from services.common.metrics import FAST_BUCKETS


class RouterMetrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.reports = Counter(
            "cluebus_router_reports_total",
            "Reports consumed by the router, by source and outcome.",
            ["source", "outcome"],
            registry=registry,
        )
        self.referrals = Counter(
            "cluebus_router_referrals_total",
            "Referrals produced, by department, role and priority.",
            ["department", "role", "priority"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "cluebus_router_dead_letters_total",
            "Events the router sent to the dead-letter topic, by reason.",
            ["reason"],
            registry=registry,
        )
        self.routing_seconds = Histogram(
            "cluebus_router_routing_seconds",
            "Time to route one report (evaluation and sends).",
            buckets=FAST_BUCKETS,
            registry=registry,
        )
        self.end_to_end_seconds = Histogram(
            "cluebus_router_report_age_seconds",
            "Age of a report when routed: from the adapter's receipt to routing.",
            buckets=FAST_BUCKETS + (30.0, 60.0, 300.0, 3600.0),
            registry=registry,
        )
