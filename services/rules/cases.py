"""Routing test cases (`cluebus rules test`), like `amtool config routes test`.

A cases file holds ``[[case]]`` tables. Each case gives either a report (a
JSON file path relative to the cases file, or an inline ``[case.report]``
table) or just the facts the tree matches on (``[case.facts]``), and the
exact recipients expected::

    [[case]]
    name = "child labour reaches labour inspection and the police"
    facts = { source = "labour", category = "child_labour", any_minor = true }
    expect = { hrss = "lead", police = "lead", education = "cooperating" }
    priority = "high"                  # optional
    case_owner = ["police"]            # optional: departments whose acceptance needs a case owner
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from schemas import parse_report
from services.rules.facts import Facts
from services.rules.loader import CompiledRules


@dataclass
class CaseResult:
    name: str
    ok: bool
    problems: list[str] = field(default_factory=list)


def _load_report(case: dict[str, Any], base: Path) -> Any:
    report = case["report"]
    if isinstance(report, str):
        return parse_report((base / report).read_bytes())
    return parse_report(json.dumps(report))


def run_case(rules: CompiledRules, case: dict[str, Any], base: Path) -> CaseResult:
    name = str(case.get("name", "(unnamed)"))
    problems: list[str] = []
    owners: set[str] = set()
    if "report" in case:
        report = _load_report(case, base)
        plan = rules.plan(report, datetime.now(UTC))
        got = {p.department: p.role.value for p in plan.referrals}
        priority = plan.result.priority.value
        owners = {p.department for p in plan.referrals if p.case_owner_required}
    elif "facts" in case:
        result = rules.route(Facts.from_mapping(case["facts"]))
        got = {r.department: r.role.value for r in result.recipients}
        priority = result.priority.value
        owners = {r.department for r in result.recipients if r.case_owner_required}
    else:
        return CaseResult(name, False, ["a case needs 'report' or 'facts'"])
    expected = dict(case.get("expect", {}))
    for department in sorted(set(expected) | set(got)):
        want, have = expected.get(department), got.get(department)
        if want != have:
            problems.append(f"{department}: expected {want or 'nothing'}, got {have or 'nothing'}")
    if "priority" in case and case["priority"] != priority:
        problems.append(f"priority: expected {case['priority']}, got {priority}")
    if "case_owner" in case and set(case["case_owner"]) != owners:
        problems.append(f"case owner required for: expected {sorted(case['case_owner'])}, got {sorted(owners)}")
    return CaseResult(name, not problems, problems)


def run_cases(rules: CompiledRules, cases_file: Path) -> list[CaseResult]:
    data = tomllib.loads(cases_file.read_text(encoding="utf-8"))
    cases = data.get("case", [])
    if not cases:
        raise ValueError(f"{cases_file}: no [[case]] tables")
    results = []
    for case in cases:
        try:
            results.append(run_case(rules, case, cases_file.parent))
        except (ValueError, TypeError, KeyError, OSError) as exc:
            results.append(CaseResult(str(case.get("name", "(unnamed)")), False, [f"cannot run: {exc}"]))
    return results
