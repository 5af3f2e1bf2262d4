"""What a fault test writes when a referral is missing: enough to find the window.

Each lost report's partition and offset, whether the router decided it, the router
group's committed offsets and the report topics' end offsets, and the router's log lines
about seeks, rebalances and errors.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from kafka import KafkaConsumer, TopicPartition

from schemas import RoutingDecision, referral_id_for

if TYPE_CHECKING:
    from .harness import ClusterBus, Post


def diagnose(bus: ClusterBus, accepted: list[Post], lost: set[str], path: Path) -> str:
    """Where each lost referral's report is, whether it was decided, the group's offsets, router logs."""
    by_referral = {referral_id_for(p.report_id, d): p for p in accepted for d in bus.departments[p.source]}
    lost_reports = {by_referral[r].report_id: by_referral[r] for r in lost if r in by_referral}
    consumer = KafkaConsumer(
        bootstrap_servers=bus.bootstrap, group_id=None, auto_offset_reset="earliest", enable_auto_commit=False
    )
    lines = [f"lost referrals: {len(lost)} of {len(lost_reports)} reports"]
    try:
        report_topics = [bus.names.report(s) for s in bus.departments]
        tps = [TopicPartition(t, p) for t in report_topics for p in consumer.partitions_for_topic(t) or ()]
        decision_tps = [
            TopicPartition(bus.names.decisions, p) for p in consumer.partitions_for_topic(bus.names.decisions)
        ]
        consumer.assign(tps + decision_tps)
        consumer.seek_to_beginning()
        ends = consumer.end_offsets(tps + decision_tps)
        where, decided = {}, set()
        deadline = time.monotonic() + 60
        while any(consumer.position(tp) < ends[tp] for tp in ends) and time.monotonic() < deadline:
            for tp, records in consumer.poll(timeout_ms=500).items():
                for r in records:
                    if tp.topic == bus.names.decisions:
                        decided.add(RoutingDecision.model_validate_json(r.value).report_id)
                    elif r.key and r.key.decode() in lost_reports:
                        where[r.key.decode()] = (tp.topic, tp.partition, r.offset, r.timestamp)
        for report_id, post in sorted(lost_reports.items()):
            lines.append(
                f"report {report_id} ({post.source}, 202 at +{post.answered_at - bus.started_at:.1f}s): "
                f"in {where.get(report_id, 'NOT IN ANY REPORT TOPIC')}, "
                f"decision {'yes' if report_id in decided else 'no'}"
            )
        group = KafkaConsumer(bootstrap_servers=bus.bootstrap, group_id=bus.names.app_id("router"))
        try:
            committed = {f"{tp.topic}:{tp.partition}": group.committed(tp) for tp in tps}
        finally:
            group.close()
        lines.append(f"router group committed offsets: {committed}")
        lines.append(f"report topic end offsets: { {f'{tp.topic}:{tp.partition}': ends[tp] for tp in tps} }")
    finally:
        consumer.close()
    for log in sorted(bus.log_dir.glob("router*.log")):
        interesting = [
            line
            for line in log.read_text(errors="replace").splitlines()
            if any(k in line for k in ("skipped", "seeking", "stalled", "assigned", "revoked", "rebalanc", "error"))
        ]
        lines.append(f"--- {log.name}: {len(interesting)} lines about seeks, rebalances, errors")
        lines += interesting[-80:]
    text = "\n".join(lines)
    path.write_text(text)
    return f"loss diagnosis written to {path}:\n" + "\n".join(lines[: 20 + len(lost_reports)])
