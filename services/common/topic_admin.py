"""Topics as code: every topic the bus needs, and creating them idempotently.

Replication fits the cluster: settings left unset give three copies and
``min.insync.replicas=2`` when three brokers answer, one copy on a single broker
(:func:`services.common.settings.fit_replication`), and every topic refuses unclean
leader election. The topics faust would declare for the router and the tracker (table
changelogs, the assignor's leader topic) are made here too, before faust starts, so they
get the same replication (faust would give them its ``topic_replication_factor`` but the
broker's default min ISR).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kafka.errors import TopicAlreadyExistsError, for_code

from schemas.enums import Source
from services.common import kafka as kafka_clients
from services.common.settings import KafkaSettings, TopicSettings, fit_replication
from services.common.topics import TopicSpec

if TYPE_CHECKING:
    from services.rules import CompiledRules

# Whatever a topic carries: a replica that missed acknowledged records never becomes leader.
DURABILITY_CONFIG = {"unclean.leader.election.enable": "false"}


def topic_specs(settings: TopicSettings, rules: CompiledRules | None = None) -> list[TopicSpec]:
    """Every topic of the bus under the configured prefix, with its configuration.

    One referral topic per department of ``rules``, named as the rules name it (a ``topic``
    override included); without rules, only the topics that do not depend on them.
    """
    names = settings.names

    def spec(name: str, retention_ms: int, purpose: str, **config: str) -> TopicSpec:
        return TopicSpec(
            name=name,
            partitions=settings.partitions,
            replication_factor=settings.replication_factor,
            min_insync_replicas=settings.min_insync_replicas,
            config={"retention.ms": str(retention_ms), **config},
            purpose=purpose,
        )

    specs = [spec(names.report(s), settings.reports_retention_ms, f"reports from {s}") for s in Source]
    specs += [
        spec(rules.referral_topic(d, names), settings.referrals_retention_ms, f"referrals to {d}")
        for d in sorted(rules.departments if rules is not None else ())
    ]
    specs += [
        spec(names.decisions, settings.decisions_retention_ms, "routing decisions (audit)"),
        spec(names.acks, settings.acks_retention_ms, "acknowledgements from departments"),
        spec(names.escalations, settings.escalations_retention_ms, "escalations of overdue referrals"),
        spec(names.access_audit, settings.access_audit_retention_ms, "access records: who opened which referral"),
        spec(names.deadletter, settings.deadletter_retention_ms, "events that could not be processed"),
        spec(names.tracker_ticks, settings.ticks_retention_ms, "tracker clock ticks (internal)"),
        # Latest status per report; compaction keeps it forever at bounded size.
        spec(names.status, -1, "report status for reporters", **{"cleanup.policy": "compact"}),
    ]
    return specs


def faust_internal_specs(app: Any, settings: TopicSettings) -> list[TopicSpec]:
    """The topics faust declares for ``app`` itself: each table's changelog and the leader topic.

    Names, partitions and clean-up policy are read from faust's own topic objects (as
    ``faust/tables/base.py`` and ``faust/transport/drivers/aiokafka.py`` of faust-streaming
    0.15 make them); the leader topic is ``<app id>-__assignor-__leader`` with one partition
    (``faust/assignor/leader_assignor.py``; a unit test compares it with faust's object).
    """
    specs = []
    for table in app.tables.values():
        topic = table.changelog_topic
        policy = [name for name, on in (("compact", topic.compacting), ("delete", topic.deleting)) if on]
        config = {"cleanup.policy": ",".join(policy)} if policy else {}
        if topic.retention:
            config["retention.ms"] = str(int(topic.retention * 1000))
        specs.append(
            TopicSpec(
                name=topic.get_topic_name(),
                partitions=topic.partitions or app.conf.topic_partitions,
                replication_factor=settings.replication_factor,
                min_insync_replicas=settings.min_insync_replicas,
                config={**config, **(topic.config or {})},
                purpose=f"faust changelog of table {table.name}",
            )
        )
    if not app.conf.topic_disable_leader:
        specs.append(
            TopicSpec(
                name=f"{app.conf.id}-__assignor-__leader",
                partitions=1,
                replication_factor=settings.replication_factor,
                min_insync_replicas=settings.min_insync_replicas,
                purpose="faust assignor leader election",
            )
        )
    return specs


@dataclass(frozen=True)
class ClusterInfo:
    """The brokers that answer (not fenced) and the active controller."""

    brokers: tuple[int, ...]
    controller: int | None

    def __str__(self) -> str:
        count = f"{len(self.brokers)} broker{'' if len(self.brokers) == 1 else 's'}"
        return f"{count} (ids {', '.join(map(str, self.brokers))}), controller {self.controller}"


def describe_cluster(kafka: KafkaSettings) -> ClusterInfo:
    admin = kafka_clients.admin(kafka)
    try:
        return _cluster_info(admin)
    finally:
        admin.close()


def _cluster_info(admin: Any) -> ClusterInfo:
    described = admin.describe_cluster()
    brokers = tuple(sorted(b["broker_id"] for b in described["brokers"] if not b.get("is_fenced")))
    controller = described.get("controller_id")
    return ClusterInfo(brokers=brokers, controller=controller if controller is not None and controller >= 0 else None)


def fit_to_cluster(kafka: KafkaSettings, settings: TopicSettings) -> TopicSettings:
    """``settings`` with replication decided for the brokers that answer now."""
    return settings.fitted(len(describe_cluster(kafka).brokers))


@dataclass
class EnsureResult:
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    # Existing topics whose partition count or replication differs: never changed silently
    # (more partitions would move keys; replicas are moved with kafka-reassign-partitions).
    mismatched: list[str] = field(default_factory=list)
    brokers: int = 0  # that answered when replication was fitted


def ensure_topics(kafka: KafkaSettings, specs: list[TopicSpec], timeout_ms: int = 30_000) -> EnsureResult:
    """Create the missing topics, leave existing ones alone, and say which is which."""
    result = EnsureResult()
    admin = kafka_clients.admin(kafka)
    try:
        brokers = result.brokers = len(_cluster_info(admin).brokers)
        replication = {s.name: fit_replication(s.replication_factor, s.min_insync_replicas, brokers) for s in specs}
        present = set(admin.list_topics())
        missing = {s.name: s for s in specs if s.name not in present}
        if missing:
            response = admin.create_topics(
                {
                    s.name: {
                        "num_partitions": s.partitions,
                        "replication_factor": replication[s.name][0],
                        "configs": {
                            **DURABILITY_CONFIG,
                            "min.insync.replicas": str(replication[s.name][1]),
                            **s.config,
                        },
                    }
                    for s in missing.values()
                },
                timeout_ms=timeout_ms,
                raise_errors=False,
            )
            for topic in response["topics"]:
                code = topic["error_code"]
                if code == 0:
                    result.created.append(topic["name"])
                elif code == TopicAlreadyExistsError.errno:  # created concurrently elsewhere
                    present.add(topic["name"])
                else:
                    raise TopicAdminError(
                        f"cannot create topic {topic['name']}: {topic.get('error_message') or for_code(code).__name__}"
                    )
            admin.wait_for_topics(result.created, timeout_ms=timeout_ms)
        wanted = {s.name: s for s in specs if s.name in present}
        for desc in admin.describe_topics(sorted(wanted)) if wanted else []:
            name, spec = desc["name"], wanted[desc["name"]]
            replicas = {len(p["replica_nodes"]) for p in desc["partitions"]}
            if len(desc["partitions"]) != spec.partitions:
                result.mismatched.append(
                    f"{name} has {len(desc['partitions'])} partitions, the settings say {spec.partitions}"
                )
            elif _under_replicated(spec, replicas, replication[name][0]):
                result.mismatched.append(
                    f"{name} has {'/'.join(map(str, sorted(replicas)))} replicas per partition, "
                    f"the settings say {replication[name][0]}"
                )
            else:
                result.existing.append(name)
    finally:
        admin.close()
    return result


def _under_replicated(spec: TopicSpec, replicas: set[int], fitted: int) -> bool:
    """Fewer copies than fit the cluster now, or not the replication the settings name.

    A fitted factor is a floor only: with a broker down, three copies fit two brokers.
    """
    return min(replicas) < fitted or (spec.replication_factor is not None and replicas != {fitted})


def delete_prefixed_topics(kafka: KafkaSettings, prefix: str, timeout_ms: int = 30_000) -> list[str]:
    """Delete every topic under ``prefix`` (the bus's and its faust apps' internal ones).

    For throw-away namespaces (tests, benchmarks): a long-lived development broker
    otherwise collects thousands of partitions and, in the end, runs out of file
    handles. Never used on a real deployment's prefix.
    """
    admin = kafka_clients.admin(kafka)
    try:
        names = sorted(t for t in admin.list_topics() if t.startswith((f"{prefix}.", f"{prefix}-")))
        if names:
            admin.delete_topics(names, timeout_ms=timeout_ms)
        return names
    finally:
        admin.close()


class TopicAdminError(RuntimeError):
    """The broker refused to create a topic; the message says which and why."""
