"""The reconciler against the real broker and the real router (issue 20).

The router's committed offsets are moved past reports it never routed -- what the chaos run's
lost reports looked like from outside -- and the reconciler, which trusts no offsets, finds
them after its grace period and re-drives them through the router.
"""

from __future__ import annotations

import json
import subprocess
import time

from kafka import KafkaAdminClient, TopicPartition
from kafka.admin import OffsetSpec

from schemas import RoutingDecision

from ..support import CLUEBUS, collect, free_port, many_reports, metric_value, produce, wait_until

GRACE_S = 6


def send(bootstrap: str, bus, reports) -> None:  # type: ignore[no-untyped-def]
    produce(
        bootstrap, [(bus.report(r.source.value), r.report_id.encode(), r.model_dump_json().encode()) for r in reports]
    )


def decided(bootstrap: str, bus, wanted: set[str], timeout: float) -> set[str]:  # type: ignore[no-untyped-def]
    messages = collect(
        bootstrap,
        [bus.decisions],
        done=lambda ms: {RoutingDecision.model_validate_json(m.value).report_id for m in ms} >= wanted,
        timeout=timeout,
    )
    return {RoutingDecision.model_validate_json(m.value).report_id for m in messages}


def test_reports_skipped_by_the_routers_offsets_are_found_and_redriven_within_the_grace_period(
    kafka_bootstrap, bus, services, service_env
):
    first, skipped = many_reports(6), many_reports(9)
    router = services("router", ["router", "--metrics-port", "0"], service_env)
    send(kafka_bootstrap, bus, first)
    assert decided(kafka_bootstrap, bus, {r.report_id for r in first}, 60) >= {r.report_id for r in first}
    router.stop()

    # While the router is away, reports arrive; then its group's offsets are moved to the end,
    # past them, as if it had committed them without routing.
    send(kafka_bootstrap, bus, skipped)
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        tps = [TopicPartition(t, p) for t in bus.reports() for p in range(3)]
        admin.reset_group_offsets(bus.app_id("router"), {tp: OffsetSpec.LATEST for tp in tps})
    finally:
        admin.close()
    moved_at = time.monotonic()
    services("router-again", ["router", "--metrics-port", "0"], service_env)
    metrics_port = free_port()
    env = {
        **service_env,
        "CLUEBUS_RECONCILER_GRACE_S": str(GRACE_S),
        "CLUEBUS_RECONCILER_CHECK_INTERVAL_S": "1",
        "CLUEBUS_RECONCILER_METRICS_PORT": str(metrics_port),
    }
    reconciler = services("reconciler", ["reconciler"], env)

    wanted = {r.report_id for r in skipped}
    # The skipped reports are counted as unrouted before they are re-driven...
    wait_until(
        lambda: (
            sum(
                metric_value(metrics_port, "cluebus_reports_unrouted", {"source": s}) or 0
                for s in ("hospital", "school", "labour", "marriage", "venue")
            )
            > 0
        ),
        timeout=60,
    )
    # ... and routed through the router once re-driven.
    seen = decided(kafka_bootstrap, bus, wanted, timeout=90)
    took = time.monotonic() - moved_at
    redriven = {x["report_id"] for x in reconciler.lines() if x.get("event") == "unrouted report re-driven"}
    print(
        f"\nskipped={len(wanted)} redriven={len(redriven)} decided={len(seen & wanted)} in {took:.1f}s "
        f"(grace {GRACE_S}s)"
    )
    assert seen >= wanted
    assert redriven == wanted  # exactly the skipped ones; the routed ones were never touched
    wait_until(lambda: metric_value(metrics_port, "cluebus_reports_unrouted", {"source": "school"}) == 0, timeout=30)
    total = sum(
        metric_value(metrics_port, "cluebus_reconciler_redriven_total", {"source": s, "kind": "report"}) or 0
        for s in ("hospital", "school", "labour", "marriage", "venue")
    )
    assert total == len(wanted)
    assert not any(
        x.get("event") == "report unrouted" and x.get("report_id") in {r.report_id for r in first}
        for x in reconciler.lines()
    )


def test_reconcile_command_lists_reports_without_outcome_and_exits_1(kafka_bootstrap, bus, bus_env):
    reports = many_reports(3)
    send(kafka_bootstrap, bus, reports)
    routed, dead, unrouted = reports
    letter = {"topic": bus.report(dead.source.value), "partition": 0, "offset": 0}
    # Where did the dead one land? Its coordinates are what a dead letter names.
    messages = collect(kafka_bootstrap, bus.reports(), done=lambda ms: len(ms) >= 3, timeout=30)
    where = next(m for m in messages if m.key == dead.report_id.encode())
    letter.update(partition=where.partition, offset=where.offset)
    produce(
        kafka_bootstrap,
        [
            (bus.decisions, routed.report_id.encode(), json.dumps({"report_id": routed.report_id}).encode()),
            (bus.status, routed.report_id.encode(), b"{}"),  # the tracker took the decision in
            (bus.deadletter, None, json.dumps(letter).encode()),
        ],
    )
    time.sleep(1.5)
    run = subprocess.run(  # noqa: S603
        [CLUEBUS, "reconcile", "--since", "10m", "--grace", "1s", "--format", "json"],
        env=bus_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1, run.stderr
    out = json.loads(run.stdout)
    assert [row["report_id"] for row in out["unrouted"]] == [unrouted.report_id]
    assert out["untracked"] == []
    assert out["summary"]["routed_or_dead_lettered"] == 2 and out["summary"]["unrouted"] == 1


def test_decisions_the_tracker_never_took_in_are_found_and_redriven_to_it(kafka_bootstrap, bus, services, service_env):
    first, skipped = many_reports(4), many_reports(7)
    services("router", ["router", "--metrics-port", "0"], service_env)
    tracker = services("tracker", ["tracker", "--metrics-port", "0"], service_env)
    send(kafka_bootstrap, bus, first)
    statuses = lambda ids: collect(  # noqa: E731
        kafka_bootstrap, [bus.status], done=lambda ms: {m.key.decode() for m in ms} >= ids, timeout=90
    )
    assert {m.key.decode() for m in statuses({r.report_id for r in first})} >= {r.report_id for r in first}
    tracker.stop()
    # Routed while the tracker is away; then the tracker's offsets are moved past those decisions.
    send(kafka_bootstrap, bus, skipped)
    assert decided(kafka_bootstrap, bus, {r.report_id for r in skipped}, 60) >= {r.report_id for r in skipped}
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        tps = [TopicPartition(bus.decisions, p) for p in range(3)]
        admin.reset_group_offsets(bus.app_id("tracker"), {tp: OffsetSpec.LATEST for tp in tps})
    finally:
        admin.close()
    services("tracker-again", ["tracker", "--metrics-port", "0"], service_env)
    env = {
        **service_env,
        "CLUEBUS_RECONCILER_GRACE_S": str(GRACE_S),
        "CLUEBUS_RECONCILER_CHECK_INTERVAL_S": "1",
        "CLUEBUS_RECONCILER_METRICS_PORT": "0",
    }
    reconciler = services("reconciler", ["reconciler"], env)
    wanted = {r.report_id for r in skipped}
    seen = {m.key.decode() for m in statuses(wanted)}
    redriven = {x["report_id"] for x in reconciler.lines() if x.get("event") == "untracked decision re-driven"}
    print(f"\nuntracked={len(wanted)} redriven={len(redriven)} tracked={len(seen & wanted)}")
    assert seen >= wanted and redriven == wanted
