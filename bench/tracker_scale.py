"""Tracker memory and clock cost with 10k, 100k and 1M open referrals.

Targets: under 1 KB of tracker memory per open referral; the clock's scan
(finding due reports) independent of how many are open. Builds the state the
way the running tracker holds it: compact bytes per report in the table's
memory store, plus the process-local due and outstanding indexes, and
measures with tracemalloc. Also reports how long rebuilding the indexes from
the table takes (the CPU part of a restart's recovery).

    .venv/bin/python bench/tracker_scale.py [--sizes 10000,100000,1000000]
"""

from __future__ import annotations

import argparse
import gc
import json
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

from schemas import parse_report, referral_id_for
from schemas.examples import load_examples
from services.common.ids import uuid7
from services.router.routing import route_report
from services.rules import load_rules
from services.tracker import codec
from services.tracker.index import TrackerIndex
from services.tracker.state import Tracker

REPO = Path(__file__).resolve().parents[1]


def build(n_referrals: int, tracker: Tracker, decisions: list) -> tuple[dict[bytes, bytes], float]:
    """Open tracks for about n referrals, stored as the table stores them."""
    table: dict[bytes, bytes] = {}
    now = time.time()
    count = 0
    i = 0
    while count < n_referrals:
        template = decisions[i % len(decisions)]
        i += 1
        report_id = uuid7()
        recipients = tuple(
            r.model_copy(update={"referral_id": referral_id_for(report_id, r.department)}) for r in template.recipients
        )
        decision = template.model_copy(
            update={"report_id": report_id, "decision_id": report_id, "recipients": recipients}
        )
        out = tracker.on_decision(None, decision, i % 6, now)
        table[report_id.encode()] = codec.encode(out.track)
        count += len(out.track.refs)
    return table, now


def measure(n: int, tracker: Tracker, decisions: list) -> dict:
    gc.collect()
    tracemalloc.start()
    table, now = build(n, tracker, decisions)
    table_bytes = tracemalloc.get_traced_memory()[0]
    index = TrackerIndex()
    started = time.perf_counter()
    reports = index.rebuild(table.items(), frozenset(range(6)), tracker)
    rebuild_s = time.perf_counter() - started
    total_bytes = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    referrals = len(index.outstanding)
    # The clock's scan when nothing is due, and when 0.1% of reports are due.
    started = time.perf_counter()
    for _ in range(1000):
        index.due.pop_due(now)
    idle_scan_us = (time.perf_counter() - started) / 1000 * 1e6
    keys = list(table)[: max(1, reports // 1000)]
    for key in keys:
        index.due.schedule(key, now - 1)
    started = time.perf_counter()
    due = index.due.pop_due(now)
    busy_scan_ms = (time.perf_counter() - started) * 1e3
    # One scrape of the gauges.
    started = time.perf_counter()
    for department, stage in index.outstanding.groups():
        index.outstanding.oldest(department, stage)
    scrape_ms = (time.perf_counter() - started) * 1e3
    result = {
        "open_referrals": referrals,
        "reports": reports,
        "bytes_per_referral": round(total_bytes / referrals),
        "table_bytes_per_referral": round(table_bytes / referrals),
        "state_bytes_per_referral": round(sum(len(v) for v in table.values()) / referrals, 1),  # the codec's output
        "index_rebuild_s": round(rebuild_s, 3),
        "clock_scan_idle_us": round(idle_scan_us, 2),
        "clock_scan_due_ms": round(busy_scan_ms, 3),
        "due_found": len(due),
        "gauge_scrape_ms": round(scrape_ms, 3),
    }
    del table, index
    gc.collect()
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "tracker_scale.json")
    args = parser.parse_args()
    rules = load_rules(REPO / "routing_rules.toml")
    tracker = Tracker(lambda: rules)
    routed_at = datetime.now(UTC) - timedelta(minutes=1)
    decisions = [
        route_report(rules, parse_report(json.dumps({**d, "received_at": routed_at.isoformat()})), routed_at).decision
        for d in load_examples("v1", "reports").values()
    ]
    rows = [measure(int(n), tracker, decisions) for n in args.sizes.split(",")]
    result = {
        "benchmark": "tracker_scale",
        "target": "under 1 KB per open referral",
        "rows": rows,
        "met": all(r["bytes_per_referral"] < 1024 for r in rows),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
