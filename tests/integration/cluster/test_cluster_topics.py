"""On three brokers every topic of the bus, and every topic faust makes for it, keeps three copies."""

from __future__ import annotations

import os
import subprocess

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from ..support import CLUEBUS, wait_until
from .admin import partitions

pytestmark = [pytest.mark.cluster]


def topic_configs(bootstrap: str, topics: list[str]) -> dict[str, dict[str, str]]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        resources = [ConfigResource(ConfigResourceType.TOPIC, t) for t in topics]
        described = admin.describe_configs(resources, config_filter="all")  # broker defaults included
    finally:
        admin.close()
    return {t: {k: v["value"] for k, v in c.items()} for t, c in described["topic"].items()}


def test_bus_and_faust_topics_get_three_copies_two_in_sync_and_no_unclean_election(
    cluster, bus, services, service_env, topic_settings
):
    cli = subprocess.run(
        [CLUEBUS, "topics", "ensure"], env=service_env, capture_output=True, text=True, timeout=60, check=False
    )
    assert cli.returncode == 0 and "(3 brokers answer)" in cli.stdout, cli.stderr
    router = services("router", ["router", "--metrics-port", "0"], service_env)
    tracker = services("tracker", ["tracker", "--metrics-port", "0"], service_env)
    prefix = topic_settings.prefix
    faust_topics = {
        f"{prefix}-router-seen-reports-changelog",
        f"{prefix}-router-__assignor-__leader",
        f"{prefix}-tracker-tracking-changelog",
        f"{prefix}-tracker-__assignor-__leader",
    }

    def all_made() -> list[dict]:
        parts = [p for p in partitions(cluster.bootstrap) if p["topic"].startswith((f"{prefix}.", f"{prefix}-"))]
        offsets = partitions(cluster.bootstrap, ["__consumer_offsets"])  # made when the first group commits
        return parts if faust_topics <= {p["topic"] for p in parts} and offsets else []

    parts = wait_until(all_made, timeout=90)
    assert router.proc.poll() is None and tracker.proc.poll() is None
    names = sorted({p["topic"] for p in parts})
    assert len(names) >= len(faust_topics) + 10
    assert {len(p["replica_nodes"]) for p in parts} == {3}, "every partition has three replicas"
    configs = topic_configs(cluster.bootstrap, names)
    assert {c["min.insync.replicas"] for c in configs.values()} == {"2"}
    assert {c["unclean.leader.election.enable"] for c in configs.values()} == {"false"}
    assert configs[f"{prefix}-router-seen-reports-changelog"]["cleanup.policy"] == "compact"
    # Kafka's own group offsets (where the router and tracker commit) are replicated the same way.
    offsets = partitions(cluster.bootstrap, ["__consumer_offsets"])
    assert {len(p["replica_nodes"]) for p in offsets} == {3}
    assert topic_configs(cluster.bootstrap, ["__consumer_offsets"])["__consumer_offsets"]["min.insync.replicas"] == "2"


def test_kafka_up_brokers_3_reuses_the_running_cluster_and_status_lists_its_nodes(cluster):
    where = ["--port", str(cluster.port), "--run-dir", str(cluster.run_dir)]
    env = {**os.environ, "CLUEBUS_KAFKA_BOOTSTRAP": cluster.bootstrap}
    up = subprocess.run([CLUEBUS, "kafka", "up", "--brokers", "3", *where], env=env, capture_output=True, text=True)
    assert up.returncode == 0, up.stderr
    assert f"Kafka cluster already running at {cluster.bootstrap}" in up.stdout and "reused" in up.stdout
    assert f"export CLUEBUS_KAFKA_BOOTSTRAP={cluster.bootstrap}" in up.stdout
    assert "note:" not in up.stderr  # the environment already points at this cluster
    status = subprocess.run([CLUEBUS, "kafka", "status", *where], env=env, capture_output=True, text=True)
    assert status.stdout.count(" ready ") == 3, status.stdout
    check = subprocess.run([CLUEBUS, "kafka", "check"], env=env, capture_output=True, text=True)
    assert "answers: 3 brokers (ids 1, 2, 3)" in check.stdout, check.stderr
