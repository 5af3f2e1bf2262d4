"""Routing cost with 10, 100 and 1,000 rules (target: within 2x of each other).

The shipped rules plus N synthetic routes, each matching one (source, category)
pair and some township codes, as a district with many local rules would have.
Measures the tree evaluation per report and the full plan (evaluation,
clocks, need-to-know copies) over the v1 example reports.

    .venv/bin/python bench/rules_scale.py [--out bench/results/rules_scale.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import time
from datetime import UTC, datetime
from pathlib import Path

from schemas import Category, Source, parse_report
from schemas.examples import load_examples
from services.rules import Facts, parse_rules
from services.rules.engine import count_routes, evaluate

REPO = Path(__file__).resolve().parents[1]
DEPARTMENTS = ["police", "civil_affairs", "education", "health", "hrss", "womens_federation", "township"]


def synthetic_rules(n: int, seed: int = 7) -> str:
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    base = (REPO / "routing_rules.toml").read_text()
    pairs = list(itertools.product(list(Source), list(Category)))
    out = [base, f"# {n} synthetic local routes"]
    for i in range(n):
        source, category = pairs[i % len(pairs)]
        towns = sorted({f"120118{rng.randint(100, 130):03d}" for _ in range(3)})
        dept = DEPARTMENTS[i % len(DEPARTMENTS)]
        out.append(
            f'[[route.routes]]\nname = "local-{i}"\nmatch.source = ["{source.value}"]\n'
            f'match.category = ["{category.value}"]\nmatch.township = {json.dumps(towns)}\n'
            f'continue = true\nrecipients = [{{ department = "{dept}", role = "cooperating" }}]\n'
        )
    return "\n".join(out)


def measure(rules_count: int, reports: list, rounds: int) -> dict:
    started = time.perf_counter()
    rules = parse_rules(synthetic_rules(rules_count), f"synthetic-{rules_count}")
    load_s = time.perf_counter() - started
    facts = [Facts.of(r) for r in reports]
    # Some reports fall in the synthetic townships, as real ones would.
    facts += [Facts(f.source, f.category, f.urgency, f.any_minor, f.any_foreign, f.any_disability,
                    f.indicators, "120118110") for f in facts]
    for f in facts[:50]:
        evaluate(rules.root, f)
    started = time.perf_counter()
    for _ in range(rounds):
        for f in facts:
            evaluate(rules.root, f)
    evaluate_us = (time.perf_counter() - started) / (rounds * len(facts)) * 1e6
    now = datetime.now(UTC)
    started = time.perf_counter()
    plan_rounds = max(1, rounds // 10)
    for _ in range(plan_rounds):
        for r in reports:
            rules.plan(r, now)
    plan_us = (time.perf_counter() - started) / (plan_rounds * len(reports)) * 1e6
    return {"rules": count_routes(rules.root) - 1, "synthetic": rules_count, "load_s": round(load_s, 3),
            "evaluate_us": round(evaluate_us, 2), "plan_us": round(plan_us, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "rules_scale.json")
    parser.add_argument("--rounds", type=int, default=400)
    args = parser.parse_args()
    reports = [parse_report(json.dumps(d)) for d in load_examples("v1", "reports").values()]
    rows = [measure(n, reports, args.rounds) for n in (10, 100, 1000)]
    base = rows[0]
    for row in rows:
        row["evaluate_vs_10"] = round(row["evaluate_us"] / base["evaluate_us"], 2)
        row["plan_vs_10"] = round(row["plan_us"] / base["plan_us"], 2)
    result = {"benchmark": "rules_scale", "target": "1,000 rules cost within 2x of 10", "rows": rows,
              "met": all(r["evaluate_vs_10"] <= 2.0 and r["plan_vs_10"] <= 2.0 for r in rows)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
