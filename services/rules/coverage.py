"""Which test cases exercise which part of the rules (`cluebus rules coverage`).

A route is exercised by a case when the case's report matches it (it is among
the matched routes). Every route must be exercised by some case; every
category × source pair is listed with its cases, for a reader to see what is tested.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product
from typing import Any

from schemas import Category, Source
from services.rules.cases import CaseResult
from services.rules.engine import Node, walk_nodes
from services.rules.loader import CompiledRules


@dataclass(frozen=True)
class Coverage:
    pairs: dict[tuple[Source, Category], list[str]]  # case ids per (source, category)
    routes: dict[tuple[str, ...], list[str]]  # case ids per route path, in tree order
    fact_driven: frozenset[tuple[str, ...]]  # routes matching on more than source and category
    failed_cases: list[str]
    unrunnable_cases: list[str]

    @property
    def unexercised(self) -> list[tuple[str, ...]]:
        return [path for path, ids in self.routes.items() if not ids]

    def as_json(self) -> dict[str, Any]:
        return {
            "pairs": {f"{c.value}/{s.value}": ids for (s, c), ids in self.pairs.items()},
            "routes": [
                {"path": list(path), "fact_driven": path in self.fact_driven, "cases": ids}
                for path, ids in self.routes.items()
            ],
            "unexercised": [list(p) for p in self.unexercised],
            "failed_cases": self.failed_cases,
            "unrunnable_cases": self.unrunnable_cases,
        }


def coverage(rules: CompiledRules, results: list[CaseResult]) -> Coverage:
    nodes: list[Node] = walk_nodes(rules.root)
    pairs: dict[tuple[Source, Category], list[str]] = {pair: [] for pair in product(Source, Category)}
    routes: dict[tuple[str, ...], list[str]] = {node.path: [] for node in nodes}
    for r in results:
        if r.result is None or r.case.facts is None:
            continue
        pairs[(r.case.facts.source, r.case.facts.category)].append(r.case.id)
        for path in r.matched_paths:
            routes[path].append(r.case.id)
    return Coverage(
        pairs=pairs,
        routes=routes,
        fact_driven=frozenset(n.path for n in nodes if n.fact_driven),
        failed_cases=[r.case.id for r in results if not r.ok and r.result is not None],
        unrunnable_cases=[r.case.id for r in results if r.result is None],
    )


def render(cov: Coverage, *, width: int = 60) -> list[str]:
    sources = list(Source)
    lines = ["category × source: number of cases", f"  {'':<32}" + "".join(f"{s.value:>10}" for s in sources)]
    for category in Category:
        counts = [len(cov.pairs[(s, category)]) for s in sources]
        lines.append(f"  {category.value:<32}" + "".join(f"{n or '-':>10}" for n in counts))
    lines.append("routes: cases that exercise each (* = fact-driven)")
    for path, ids in cov.routes.items():
        mark = "*" if path in cov.fact_driven else " "
        lines.append(f"  {mark} {' > '.join(path):<56} {len(ids):>4}  {_first(ids, width) or 'NONE'}")
    if cov.failed_cases:
        lines.append(f"{len(cov.failed_cases)} cases fail their expectations (see `cluebus rules test`)")
    if cov.unrunnable_cases:
        lines.append(f"{len(cov.unrunnable_cases)} cases cannot be run: {', '.join(cov.unrunnable_cases)}")
    return lines


def _first(ids: list[str], width: int) -> str:
    """As many ids as fit in ``width`` characters, then how many more."""
    shown: list[str] = []
    for i, case_id in enumerate(ids):
        if shown and len(" | ".join([*shown, case_id])) > width:
            return " | ".join(shown) + f" (+{len(ids) - i} more)"
        shown.append(case_id)
    return " | ".join(shown)
