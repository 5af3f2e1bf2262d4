"""What the fault tests ask the cluster: partitions and their replicas, a group's coordinator;
and moving every leadership of some topics to one node."""

from __future__ import annotations

from typing import Any

from kafka import KafkaAdminClient, TopicPartition

from ..support import wait_until


def _admin(bootstrap: str) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000, bootstrap_timeout_ms=10_000)


def partitions(bootstrap: str, topics: list[str] | None = None) -> list[dict[str, Any]]:
    """Every partition of ``topics`` (all topics when None) with its leader, replicas and ISR."""
    admin = _admin(bootstrap)
    try:
        described = admin.describe_topics(topics)
    finally:
        admin.close()
    return [{"topic": t["name"], **p} for t in described for p in t["partitions"]]


def wait_in_sync(bootstrap: str, timeout: float = 120.0, topics: list[str] | None = None) -> None:
    """Until every partition has a leader and all its replicas in sync (a rolling restart's gate)."""

    def in_sync() -> bool:
        parts = partitions(bootstrap, topics)
        return all(p["leader_id"] >= 0 and set(p["isr_nodes"]) == set(p["replica_nodes"]) for p in parts)

    wait_until(in_sync, timeout=timeout, interval=0.5)


def java_string_hash(text: str) -> int:
    h = 0
    for ch in text:
        h = (31 * h + ord(ch)) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def group_coordinator(bootstrap: str, group: str) -> int:
    """The node coordinating ``group``: the leader of its partition of ``__consumer_offsets``
    (Kafka places a group on partition abs(groupId.hashCode()) % offsets.topic.num.partitions)."""
    offsets = partitions(bootstrap, ["__consumer_offsets"])
    index = (java_string_hash(group) & 0x7FFFFFFF) % len(offsets)
    return next(p["leader_id"] for p in offsets if p["partition_index"] == index)


def lead_all(bootstrap: str, topics: list[str], node: int) -> None:
    """Make ``node`` the leader of every partition of ``topics``: it goes first in each
    replica list (same replicas, no data moved) and a preferred-leader election follows."""
    admin = _admin(bootstrap)
    try:
        moves = {}
        for p in partitions(bootstrap, topics):
            replicas = p["replica_nodes"]
            if replicas[0] != node:
                moves[TopicPartition(p["topic"], p["partition_index"])] = [node] + [r for r in replicas if r != node]
        if moves:
            admin.alter_partition_reassignments(moves)
            wait_until(lambda: not admin.list_partition_reassignments(list(moves)), timeout=30)
        admin.elect_leaders(0, {t: [p["partition_index"] for p in partitions(bootstrap, [t])] for t in topics})
    finally:
        admin.close()
    wait_until(lambda: {p["leader_id"] for p in partitions(bootstrap, topics)} == {node}, timeout=30)
