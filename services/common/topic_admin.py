"""Topics as code: the full list of topics the bus needs, and creating them idempotently."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kafka.errors import TopicAlreadyExistsError, for_code

from schemas.enums import Source
from services.common import kafka as kafka_clients
from services.common.settings import KafkaSettings, TopicSettings
from services.common.topics import TopicSpec

if TYPE_CHECKING:
    from services.rules import CompiledRules


def topic_specs(settings: TopicSettings, rules: CompiledRules | None = None) -> list[TopicSpec]:
    """Every topic of the bus under the configured prefix, with its configuration.

    One referral topic per department of ``rules``, named as the rules name it (a ``topic``
    override included); without rules, only the topics that do not depend on them.
    """
    names = settings.names
    base = {"min.insync.replicas": str(settings.min_insync_replicas)}

    def spec(name: str, retention_ms: int, purpose: str, **config: str) -> TopicSpec:
        return TopicSpec(
            name=name,
            partitions=settings.partitions,
            replication_factor=settings.replication_factor,
            config={**base, "retention.ms": str(retention_ms), **config},
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


@dataclass
class EnsureResult:
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    # Existing topics whose partition count differs: never changed silently,
    # because it would move keys to other partitions.
    mismatched: list[str] = field(default_factory=list)


def ensure_topics(kafka: KafkaSettings, specs: list[TopicSpec], timeout_ms: int = 30_000) -> EnsureResult:
    """Create the missing topics, leave existing ones alone, and say which is which."""
    result = EnsureResult()
    admin = kafka_clients.admin(kafka)
    try:
        present = set(admin.list_topics())
        missing = {s.name: s for s in specs if s.name not in present}
        if missing:
            response = admin.create_topics(
                {
                    s.name: {
                        "num_partitions": s.partitions,
                        "replication_factor": s.replication_factor,
                        "configs": s.config,
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
            if len(desc["partitions"]) != spec.partitions:
                result.mismatched.append(
                    f"{name} has {len(desc['partitions'])} partitions, the settings say {spec.partitions}"
                )
            else:
                result.existing.append(name)
    finally:
        admin.close()
    return result


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
