"""Every case under tests/rules/ (the plan's duties and the realistic corpus) against the shipped rules.

One test per case file (JSON corpus) or per ``[[case]]`` (TOML facts files), so a case
added to ``tests/rules/`` is enforced here without touching this file.
"""

from pathlib import Path

import pytest

from services.rules import load_rules
from services.rules.cases import collect, run_case

REPO = Path(__file__).resolve().parents[3]
CASES_DIR = REPO / "tests" / "rules"
RULES = load_rules(REPO / "routing_rules.toml")
CASES = collect([CASES_DIR])


def _id(case) -> str:
    where = Path(case.origin.split("#")[0]).relative_to(CASES_DIR).as_posix()
    return f"{where}::{case.id}"


def test_there_are_cases():
    assert len(CASES) >= 30, [c.origin for c in CASES]


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_case(case):
    result = run_case(RULES, case)
    assert result.ok, f"{case.origin}: " + "; ".join(result.problems)
