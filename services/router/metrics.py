"""The router's Prometheus metrics (bounded labels only)."""

from __future__ import annotations

from typing import Any

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
        self._reports: dict[tuple[str, str], Any] = {}
        self._referrals: dict[tuple[str, str, str], Any] = {}
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

    # ``labels()`` takes a lock and builds its key on every call; a referral counts once per
    # recipient of every report, so the labelled children are kept (the label sets are bounded).
    def report(self, source: str, outcome: str) -> Any:
        """The ``cluebus_router_reports_total`` child of one source and outcome."""
        child = self._reports.get((source, outcome))
        if child is None:
            child = self._reports[(source, outcome)] = self.reports.labels(source=source, outcome=outcome)
        return child

    def referral(self, department: str, role: str, priority: str) -> Any:
        """The ``cluebus_router_referrals_total`` child of one department, role and priority."""
        key = (department, role, priority)
        child = self._referrals.get(key)
        if child is None:
            child = self._referrals[key] = self.referrals.labels(department=department, role=role, priority=priority)
        return child
