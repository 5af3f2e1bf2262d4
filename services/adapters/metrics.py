"""Prometheus metrics of one adapter, in its own registry (several apps may share a process).

Labels carry bounded values only: the source, an outcome or a reason code.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.common.metrics import FAST_BUCKETS, PREFIX, build_info

OUTCOMES = ("accepted", "duplicate", "rejected")
REASONS = (
    "unauthorized",
    "forbidden",
    "unsupported_media_type",
    "payload_too_large",
    "invalid",
    "backlog_full",
    "outbox_unavailable",
    "too_many_rows",
    "bad_request",
    # slow and abusive clients (intake.py and server.py)
    "rate_limited",
    "auth_throttled",
    "certificate_mismatch",
    "header_timeout",
    "body_timeout",
    "over_capacity",
    "tls_handshake",
)


class AdapterMetrics:
    def __init__(self, source: str, registry: CollectorRegistry | None = None) -> None:
        self.source = source
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.reports = Counter(
            f"{PREFIX}_adapter_reports",
            "Reports received, by outcome (accepted, duplicate, rejected).",
            ["source", "outcome"],
            registry=r,
        )
        self.rejects = Counter(
            f"{PREFIX}_adapter_rejects",
            "Requests refused, by reason.",
            ["source", "reason"],
            registry=r,
        )
        self.backlog = Gauge(
            f"{PREFIX}_adapter_outbox_backlog",
            "Accepted reports not yet acknowledged by Kafka.",
            ["source"],
            registry=r,
        )
        self.oldest_unsent = Gauge(
            f"{PREFIX}_adapter_outbox_oldest_unsent_seconds",
            "Age of the oldest report waiting in the outbox (0 when none waits).",
            ["source"],
            registry=r,
        )
        self.publish_latency = Histogram(
            f"{PREFIX}_adapter_publish_latency_seconds",
            "From the 202 receipt to the broker's acknowledgement.",
            ["source"],
            buckets=FAST_BUCKETS,
            registry=r,
        )
        self.intake_latency = Histogram(
            f"{PREFIX}_adapter_intake_seconds",
            "Time to answer an intake request (durably stored).",
            ["source", "endpoint"],
            buckets=FAST_BUCKETS,
            registry=r,
        )
        self.published = Counter(
            f"{PREFIX}_adapter_published",
            "Reports acknowledged by Kafka.",
            ["source"],
            registry=r,
        )
        self.kafka_up = Gauge(
            f"{PREFIX}_adapter_kafka_up",
            "1 while the relay reaches Kafka.",
            ["source"],
            registry=r,
        )
        self.commit_rows = Histogram(
            f"{PREFIX}_adapter_outbox_commit_rows",
            "Writes per outbox transaction (group commit).",
            ["source"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
            registry=r,
        )
        self.statuses = Counter(
            f"{PREFIX}_adapter_statuses_stored",
            "Report status updates stored for GET /v1/reports/{id}.",
            ["source"],
            registry=r,
        )
        build_info(f"adapter-{source}", registry=r)
        # Every child exists from the start (a scrape shows zeros), and the per-request ones
        # are kept so that counting does not look labels up on every request.
        self._outcomes = {o: self.reports.labels(source=source, outcome=o) for o in OUTCOMES}
        self._reasons = {r: self.rejects.labels(source=source, reason=r) for r in REASONS}
        self.publish_latency.labels(source=source)
        self.published.labels(source=source)
        self.statuses.labels(source=source)
        self.intake = {e: self.intake_latency.labels(source=source, endpoint=e) for e in ("single", "batch")}

    def bind_state(
        self,
        backlog: Callable[[], float],
        oldest_unsent_s: Callable[[], float],
        kafka_up: Callable[[], float],
    ) -> None:
        """Gauges computed when scraped."""
        self.backlog.labels(source=self.source).set_function(backlog)
        self.oldest_unsent.labels(source=self.source).set_function(oldest_unsent_s)
        self.kafka_up.labels(source=self.source).set_function(kafka_up)

    def received(self, outcome: str, n: int = 1) -> None:
        child = self._outcomes.get(outcome)
        if child is None:
            child = self.reports.labels(source=self.source, outcome=outcome)
        child.inc(n)

    def rejected(self, reason: str, n: int = 1) -> None:
        child = self._reasons.get(reason)
        if child is None:
            child = self.rejects.labels(source=self.source, reason=reason)
        child.inc(n)
