"""The router's pure routing cost per report: ``route_report`` (tree, clocks, need-to-know copies, events).

No broker: the step the router's agent runs between parsing a report and sending its outputs,
over the v1 example reports and the rules corpus (realistic submissions made into reports), with
the shipped rules. Blocks of all reports alternate with a short pause; the median block counts,
so a neighbour's load on a shared machine moves one block, not the figure; times are this
process's CPU time (``time.process_time``), which waiting for a shared core does not add to. Also times
``CompiledRules.plan`` alone (no event models) to show where the cost sits.

    .venv/bin/python bench/routing_cost.py [--blocks 15] [--rounds 20] [--out bench/results/routing_cost.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def reports() -> list:
    from schemas import parse_report
    from schemas.examples import load_examples
    from services.rules.inputs import as_report, json_files, read_json

    out = [parse_report(json.dumps(d)) for d in load_examples("v1", "reports").values()]
    for path in json_files([REPO / "tests" / "rules" / "corpus"]):
        case = read_json(path)
        out.append(as_report({"source": case["source"], "submission": case["submission"]}))
    return out


def measure(blocks: int, rounds: int) -> dict:
    from services.router.routing import route_report
    from services.rules import load_rules

    rules = load_rules(REPO / "routing_rules.toml")
    batch = reports()
    now = datetime.now(UTC)
    referrals = sum(len(route_report(rules, r, now).referrals) for r in batch)  # also warms every cache
    route_us, plan_us = [], []
    for _ in range(blocks):
        started = time.process_time()
        for _ in range(rounds):
            for r in batch:
                route_report(rules, r, now)
        route_us.append((time.process_time() - started) / (rounds * len(batch)) * 1e6)
        started = time.process_time()
        for _ in range(rounds):
            for r in batch:
                rules.plan(r, r.received_at)
        plan_us.append((time.process_time() - started) / (rounds * len(batch)) * 1e6)
        time.sleep(0.05)
    return {
        "reports": len(batch),
        "referrals_per_report": round(referrals / len(batch), 2),
        "route_report_us_median": round(statistics.median(route_us), 1),
        "route_report_us_min": round(min(route_us), 1),
        "plan_us_median": round(statistics.median(plan_us), 1),
        "plan_us_min": round(min(plan_us), 1),
        "blocks": blocks,
        "rounds": rounds,
        "rules_version": rules.version,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "routing_cost.json")
    args = parser.parse_args()
    result = measure(args.blocks, args.rounds)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
