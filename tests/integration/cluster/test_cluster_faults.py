"""Brokers fail under the bus (issue 19): on the real three-broker cluster, nothing accepted is lost.

Two adapters (hospital, school) take reports over HTTP at a steady rate while the router
routes them; the topics have three copies and ``min.insync.replicas=2``. Each scenario
prints sent, accepted, 503s, expected and seen referrals, duplicates, lost and the
longest gap in routing (also listed at the end of the session), and fails on any loss.
Timings are what the scenario does, never what it asserts.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from ..support import wait_until
from .admin import group_coordinator, lead_all, partitions, wait_in_sync
from .harness import SOURCES, ClusterBus, Load, Tally, note

pytestmark = [pytest.mark.slow, pytest.mark.cluster, pytest.mark.timeout(400)]

RATE = 4.0  # reports per second to each adapter
BEFORE_S = 5.0  # routing under load before the fault
OUTAGE_S = 12.0  # a killed node stays down (longer than the brokers' 9 s session timeout)
AFTER_S = 5.0  # load goes on after the node is back


@pytest.fixture
def cluster_bus(services, service_env, bus, rules_file, tmp_path):
    started: list[ClusterBus] = []

    def start(adapter_env: dict[str, str] | None = None) -> ClusterBus:
        cluster_bus = ClusterBus(services, service_env, bus, rules_file, tmp_path / "logs", adapter_env).start()
        started.append(cluster_bus)
        return cluster_bus

    yield start
    for cluster_bus in started:
        cluster_bus.stop()


LEADER_MOVE_LIMIT_S = 30.0  # from the kill: far past the 9 s session timeout


def moved_leaders(bootstrap: str, topics: list[str], victim: int) -> set[int]:
    """The topics' partition leaders once none is ``victim``, or as they are at the limit."""
    return off_the_victim(lambda: {p["leader_id"] for p in partitions(bootstrap, topics)}, victim)


def off_the_victim(read: Callable[[], set[int]], victim: int) -> set[int]:
    """``read()`` (leader ids) once none is ``victim`` and each is known, or as it is at the limit.

    Not ``wait_until``: on a timeout the test must still restart the victim and tally the load
    before it fails, or the session's cluster would stay a node short for the tests after it.
    """
    deadline = time.monotonic() + LEADER_MOVE_LIMIT_S - OUTAGE_S
    while True:
        leaders = read()
        if (victim not in leaders and all(x is not None and x >= 0 for x in leaders)) or time.monotonic() > deadline:
            return leaders
        time.sleep(0.5)


def timed(action, *args, **kwargs) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    action(*args, **kwargs)
    return time.monotonic() - started


def assert_nothing_lost(tally: Tally) -> None:
    assert tally.accepted > 0 and tally.expected > 0
    assert tally.lost == 0, f"{tally.lost} referrals of accepted reports never arrived: {tally.line()}"
    assert tally.unexpected == 0, "duplicates may only repeat referral ids"
    assert tally.seen == tally.expected


def test_kill_9_the_broker_leading_the_report_partitions(cluster, cluster_bus, bus):
    bus_ = cluster_bus()
    coordinator = group_coordinator(cluster.bootstrap, bus.app_id("router"))
    victim = next(n.node_id for n in cluster.nodes if n.node_id != coordinator)  # only the leader fails
    lead_all(cluster.bootstrap, [bus.report(s) for s in SOURCES], victim)
    with Load(bus_.urls, RATE, "leader") as load:
        time.sleep(BEFORE_S)
        killed = time.monotonic()
        cluster.node(victim).kill()
        time.sleep(OUTAGE_S)
        # The controller notices the dead broker after its 9 s session timeout; on a loaded
        # machine the election can finish later (seen once in a full run: still led by the
        # victim at 12 s). The test waits for it, within a bound, and says how long it took.
        leaders = moved_leaders(cluster.bootstrap, [bus.report(s) for s in SOURCES], victim)
        moved_s = time.monotonic() - killed
        rejoin = timed(cluster.start_nodes, victim)
        time.sleep(AFTER_S)
    tally = bus_.finish(f"kill -9 node {victim} (leader of all report partitions)", load)
    note(f"node {victim} down, leaders moved {moved_s:.1f}s after the kill, rejoined {rejoin:.1f}s after its start")
    assert victim not in leaders, "the report partitions moved to the surviving brokers"
    assert all(x is not None and x >= 0 for x in leaders), f"a report partition has no leader: {leaders}"
    assert tally.accepted == tally.sent, "adapters accept while a partition leader fails over"
    assert_nothing_lost(tally)


def test_kill_9_the_broker_coordinating_the_router_group(cluster, cluster_bus, bus):
    bus_ = cluster_bus()
    victim = group_coordinator(cluster.bootstrap, bus.app_id("router"))
    with Load(bus_.urls, RATE, "coordinator") as load:
        time.sleep(BEFORE_S)
        killed = time.monotonic()
        cluster.node(victim).kill()
        time.sleep(OUTAGE_S)
        # Like the report partitions' leaders above, the group's partition of __consumer_offsets
        # moves once the controller has seen the victim's session expire; on a loaded machine
        # that can be after OUTAGE_S (seen once in a clean-clone CI run: still on the victim).
        (moved_to,) = off_the_victim(lambda: {group_coordinator(cluster.bootstrap, bus.app_id("router"))}, victim)
        moved_s = time.monotonic() - killed
        rejoin = timed(cluster.start_nodes, victim)
        time.sleep(AFTER_S)
    tally = bus_.finish(f"kill -9 node {victim} (router group coordinator)", load)
    note(
        f"node {victim} down, the group moved to node {moved_to} {moved_s:.1f}s after the kill, "
        f"rejoined {rejoin:.1f}s after its start"
    )
    assert moved_to != victim, "the group moved to another coordinator"
    assert tally.accepted == tally.sent
    assert_nothing_lost(tally)


def test_rolling_restart_of_all_three_brokers_under_load(cluster, cluster_bus):
    bus_ = cluster_bus()
    with Load(bus_.urls, RATE, "rolling") as load:
        time.sleep(BEFORE_S)
        steps = []
        for node in cluster.nodes:  # one at a time, each back in sync before the next goes
            stop = timed(node.down)  # SIGTERM: a controlled shutdown moves its leaderships first
            rejoin = timed(cluster.start_nodes, node.node_id)
            in_sync = timed(wait_in_sync, cluster.bootstrap, timeout=120)
            steps.append(f"node {node.node_id}: stop {stop:.1f}s, rejoin {rejoin:.1f}s, in sync {in_sync:.1f}s")
        time.sleep(AFTER_S)
    tally = bus_.finish("rolling restart of nodes 1, 2, 3", load)
    note("; ".join(steps))
    assert tally.accepted == tally.sent
    assert_nothing_lost(tally)


BACKLOG_LIMIT = 30


def test_two_brokers_down_adapters_fill_their_outboxes_then_answer_503(cluster, cluster_bus, bus):
    bus_ = cluster_bus(adapter_env={"CLUEBUS_ADAPTER_BACKLOG_LIMIT": str(BACKLOG_LIMIT)})
    down = [1, 2]
    with Load(bus_.urls, RATE, "min-isr") as load:
        time.sleep(BEFORE_S)
        for node in down:
            cluster.node(node).kill()
        killed_at = time.monotonic()

        def outage_seen() -> dict[str, dict]:
            views = {s: bus_.adapter_view(s) for s in SOURCES}
            full = all(v["status"] == 503 and not v["checks"]["kafka"] and v["kafka_up"] == 0.0 for v in views.values())
            rejected = all(any(p.source == s for p in load.answered(503)) for s in SOURCES)
            return (
                views
                if full and rejected and all(not v["checks"]["backlog_below_limit"] for v in views.values())
                else {}
            )

        during = wait_until(outage_seen, timeout=90, interval=0.5)
        accepted_while_down = {
            s: sum(1 for p in load.answered(202) if p.source == s and p.sent_at > killed_at) for s in SOURCES
        }
        outage_s = time.monotonic() - killed_at
        rejoin = timed(cluster.start_nodes, *down)
        back_at = time.monotonic()

        def recovered() -> dict[str, dict]:
            views = {s: bus_.adapter_view(s) for s in SOURCES}
            return views if all(v["status"] == 200 and v["kafka_up"] == 1.0 for v in views.values()) else {}

        after = wait_until(recovered, timeout=120, interval=0.5)
        recovered_s = time.monotonic() - back_at
        time.sleep(AFTER_S)
    tally = bus_.finish(f"nodes {down} kill -9 (below min ISR), backlog limit {BACKLOG_LIMIT}", load)
    rejected = load.answered(503)
    note(f"while down: readyz {[(s, v['status'], v['checks'], v['backlog']) for s, v in during.items()]}")
    note(f"while down: kafka_up {[(s, v['kafka_up']) for s, v in during.items()]}; accepted {accepted_while_down}")
    note(f"nodes {down} down {outage_s:.1f}s, rejoined {rejoin:.1f}s after their start")
    backlogs = {s: v["backlog"] for s, v in after.items()}
    note(f"back: readyz 200 and kafka_up 1 {recovered_s:.1f}s after the nodes returned (backlog then {backlogs})")
    assert all(0 < n <= BACKLOG_LIMIT for n in accepted_while_down.values()), accepted_while_down
    assert rejected and all(p.error == "backlog_full" and p.retry_after for p in rejected)
    assert tally.unanswered == 0
    assert_nothing_lost(tally)
