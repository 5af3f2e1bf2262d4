"""Every Kafka topic name the bus uses, in one place.

All topics that carry per-report data are keyed by ``report_id`` and share one
partition count, so that consumers joining them (the tracker joins routing
decisions with acknowledgements) are co-partitioned.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from schemas.enums import Source

# What Kafka accepts as a topic name (a department's referral topic override must be one).
TOPIC_NAME = r"^[A-Za-z0-9._-]{1,249}$"


@dataclass(frozen=True)
class TopicSpec:
    """A topic to create: its name, size and broker-side configuration.

    Replication left ``None`` is fitted to the cluster when the topic is created
    (:func:`services.common.settings.fit_replication`).
    """

    name: str
    partitions: int
    replication_factor: int | None
    config: dict[str, str] = field(default_factory=dict)
    purpose: str = ""
    min_insync_replicas: int | None = None


@dataclass(frozen=True)
class TopicNames:
    """Topic names under one prefix (``cluebus`` in production, a unique one per test run)."""

    prefix: str = "cluebus"

    def report(self, source: Source | str) -> str:
        """Reports from one reporting sector, published by that sector's adapter."""
        return f"{self.prefix}.reports.{source}"

    def reports(self) -> list[str]:
        return [self.report(s) for s in Source]

    def referral(self, department: str) -> str:
        """Referrals routed to one department; only that department may read it."""
        return f"{self.prefix}.referrals.{department}"

    @property
    def decisions(self) -> str:
        """Routing decisions: the audit trail, and the tracker's feed of new referrals."""
        return f"{self.prefix}.decisions"

    @property
    def acks(self) -> str:
        return f"{self.prefix}.acks"

    @property
    def escalations(self) -> str:
        return f"{self.prefix}.escalations"

    @property
    def status(self) -> str:
        """Per-report status for feedback to the reporter (compacted, latest per report)."""
        return f"{self.prefix}.status"

    @property
    def access_audit(self) -> str:
        """Access records: who opened which referral's personal data (keyed by report_id, like decisions)."""
        return f"{self.prefix}.audit.access"

    @property
    def deadletter(self) -> str:
        return f"{self.prefix}.deadletter"

    @property
    def tracker_ticks(self) -> str:
        """Internal: the tracker's clock asks its own agent to re-check a report."""
        return f"{self.prefix}.tracker.ticks"

    def app_id(self, service: str) -> str:
        """Faust application id (consumer group and changelog prefix) of a service."""
        return f"{self.prefix}-{service}"

    def inbox_group(self, department: str) -> str:
        """Consumer group of one department's inbox (its committed offsets; one inbox store per department)."""
        return self.app_id(f"inbox-{department}")
