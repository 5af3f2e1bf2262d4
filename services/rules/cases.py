"""Routing test cases (`cluebus rules test`), like `amtool config routes test`.

Two forms, found in files or (recursively) in directories:

* **Corpus cases** (``*.json``, one case per file, or a list): what a sector's system
  posts, and what the plan requires (``/work/coord/rules-language.md`` §3)::

      {"id": "labour-017", "title": "...", "clause": "二.(一).2.(4)", "clause_text": "[...]",
       "source": "labour", "submission": {...},
       "expect": {"recipients": {"police": "lead"}, "exact": true, "absent": ["education"],
                  "min_priority": "high", "max_priority": "critical", "case_owner": ["police"]}}

* **Facts cases** (``*.toml``, ``[[case]]`` tables): a report (a JSON path relative to
  the file, or an inline ``[case.report]``) or just the facts (``[case.facts]``: the
  keys of ``Facts.from_mapping``), and the exact recipients::

      [[case]]
      name = "child labour reaches labour inspection and the police"
      facts = { source = "labour", category = "child_labour", any_minor = true }
      expect = { hrss = "lead", police = "lead", education = "cooperating" }
      priority = "high"                  # optional, exact; or min_priority / max_priority
      case_owner = ["police"]            # optional
      absent = ["joint_meeting"]         # optional; exact = false to check only the listed ones

``case_owner`` is the exact set of departments that must name a case owner when
``exact`` holds, a subset otherwise.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from schemas import Priority, Role, Source
from services.deadletter.letters import describe_error
from services.rules.engine import Path as RoutePath
from services.rules.engine import RouteResult
from services.rules.facts import Facts
from services.rules.inputs import InputError, as_report, read_json
from services.rules.loader import CompiledRules


class Expectation(BaseModel):
    """What a case requires of the routing."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    recipients: dict[str, Role] = Field(default_factory=dict)
    exact: bool = True
    absent: tuple[str, ...] = ()
    priority: Priority | None = Field(None, description="Exactly this priority.")
    min_priority: Priority | None = None
    max_priority: Priority | None = None
    case_owner: tuple[str, ...] | None = None

    def departments(self) -> set[str]:
        return set(self.recipients) | set(self.absent) | set(self.case_owner or ())


class CorpusCase(BaseModel):
    """One JSON case file of the corpus."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    title: str = Field(min_length=1)
    clause: str = Field(min_length=1, description="The plan section whose bracket the case checks.")
    clause_text: str = ""
    notes: str = ""
    source: Source
    submission: dict[str, Any]
    expect: Expectation


@dataclass
class Case:
    id: str
    origin: str  # file (and case number) it came from
    title: str = ""
    clause: str = ""
    facts: Facts | None = None
    expect: Expectation = field(default_factory=Expectation)
    error: str | None = None  # the case cannot be run, and why


@dataclass
class CaseResult:
    case: Case
    ok: bool
    problems: list[str] = field(default_factory=list)
    result: RouteResult | None = None

    @property
    def name(self) -> str:
        return self.case.id

    @property
    def matched_paths(self) -> tuple[RoutePath, ...]:
        return self.result.matched_paths if self.result and not self.result.fallback else ()


def _errors(exc: ValidationError) -> str:
    return describe_error(exc)[1]


# --- loading -------------------------------------------------------------------------------


def collect(paths: list[Path]) -> list[Case]:
    """Every case in the given files and directories (``*.json`` and ``*.toml``, recursively)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.suffix in (".json", ".toml") and p.is_file()))
        else:
            files.append(path)
    cases: list[Case] = []
    for file in files:
        cases.extend(_json_cases(file) if file.suffix == ".json" else _toml_cases(file))
    return cases


def _json_cases(file: Path) -> list[Case]:
    try:
        data = read_json(file)
    except InputError as exc:
        return [Case(file.stem, str(file), error=str(exc))]
    items = data if isinstance(data, list) else [data]
    return [_json_case(item, f"{file}" if len(items) == 1 else f"{file}#{i}") for i, item in enumerate(items)]


def _json_case(item: Any, origin: str) -> Case:
    fallback_id = item.get("id", Path(origin).stem) if isinstance(item, dict) else Path(origin).stem
    try:
        case = CorpusCase.model_validate(item)
    except ValidationError as exc:
        return Case(str(fallback_id), origin, error=f"not a corpus case: {_errors(exc)}")
    base = Case(case.id, origin, case.title, case.clause, expect=case.expect)
    try:
        base.facts = Facts.of(as_report({"source": case.source.value, "submission": case.submission}))
    except InputError as exc:
        base.error = f"submission is not a valid {case.source.value} submission: {exc}"
    return base


def _toml_cases(file: Path) -> list[Case]:
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError) as exc:
        return [Case(file.name, str(file), error=f"cannot read: {exc}")]
    raw_cases = data.get("case", [])
    if not raw_cases:
        return [Case(file.name, str(file), error="no [[case]] tables")]
    return [_toml_case(raw, file, i) for i, raw in enumerate(raw_cases)]


_TOML_EXPECT = ("exact", "absent", "priority", "min_priority", "max_priority", "case_owner")


def _toml_case(raw: dict[str, Any], file: Path, number: int) -> Case:
    case = Case(str(raw.get("name", f"case {number}")), f"{file}#{number}", title=str(raw.get("name", "")))
    unknown = sorted(set(raw) - {"name", "clause", "report", "facts", "expect", *_TOML_EXPECT})
    if unknown:
        case.error = f"unknown keys {unknown}"
        return case
    case.clause = str(raw.get("clause", ""))
    try:
        case.expect = Expectation.model_validate(
            {"recipients": raw.get("expect", {}), **{k: raw[k] for k in _TOML_EXPECT if k in raw}}
        )
    except ValidationError as exc:
        case.error = f"bad expectation: {_errors(exc)}"
        return case
    try:
        if "report" in raw:
            report = raw["report"]
            data = read_json(file.parent / report) if isinstance(report, str) else report
            case.facts = Facts.of(as_report(data))
        elif "facts" in raw:
            case.facts = Facts.from_mapping(raw["facts"])
        else:
            case.error = "a case needs 'report' or 'facts'"
    except (InputError, ValueError, OSError) as exc:
        case.error = f"cannot run: {exc}"
    return case


# --- judging ---------------------------------------------------------------------------------


def _via(path: RoutePath) -> str:
    return " > ".join(path)


def run_case(rules: CompiledRules, case: Case) -> CaseResult:
    if case.error is not None or case.facts is None:
        return CaseResult(case, False, [case.error or "nothing to route"])
    unknown = sorted(case.expect.departments() - set(rules.departments))
    if unknown:
        return CaseResult(case, False, [f"unknown departments in the expectation: {', '.join(unknown)}"])
    result = rules.route(case.facts)
    return CaseResult(case, *_judge(case.expect, result), result=result)


def _judge(expect: Expectation, result: RouteResult) -> tuple[bool, list[str]]:
    problems: list[str] = []
    got = {r.department: r for r in result.recipients}
    wanted = {d: r.value for d, r in expect.recipients.items()}
    departments = set(wanted) | (set(got) if expect.exact else set())
    for department in sorted(departments):
        want, have = wanted.get(department), got.get(department)
        if want != (have.role.value if have else None):
            shown = f"{have.role.value} (via {_via(have.rule_path)})" if have else "nothing"
            problems.append(f"{department}: expected {want or 'nothing'}, got {shown}")
    for department in sorted(set(expect.absent) & set(got)):
        have = got[department]
        problems.append(f"{department}: expected absent, got {have.role.value} (via {_via(have.rule_path)})")
    priority = result.priority
    raised = f" (raised by {_via(result.priority_route)})" if result.priority_route else ""
    if expect.priority is not None and expect.priority != priority:
        problems.append(f"priority: expected {expect.priority.value}, got {priority.value}{raised}")
    if expect.min_priority is not None and priority.rank < expect.min_priority.rank:
        problems.append(f"priority: expected at least {expect.min_priority.value}, got {priority.value}")
    if expect.max_priority is not None and priority.rank > expect.max_priority.rank:
        problems.append(f"priority: expected at most {expect.max_priority.value}, got {priority.value}{raised}")
    if expect.case_owner is not None:
        owners = {d for d, r in got.items() if r.case_owner_required}
        want_owners = set(expect.case_owner)
        if (owners != want_owners) if expect.exact else not want_owners <= owners:
            problems.append(
                f"case owner required for: expected {sorted(want_owners)}, got {sorted(owners)}"
                if expect.exact
                else f"case owner required for: expected at least {sorted(want_owners)}, got {sorted(owners)}"
            )
    return not problems, problems


def run_cases(rules: CompiledRules, paths: Path | list[Path]) -> list[CaseResult]:
    """Run every case found; raises ValueError when there are none."""
    paths = [paths] if isinstance(paths, Path) else paths
    cases = collect(paths)
    if not cases:
        raise ValueError(f"no cases in {', '.join(str(p) for p in paths)}")
    return [run_case(rules, case) for case in cases]


def describe(case: Case) -> str:
    """A short line naming a case: id, clause and title."""
    parts = [case.id]
    if case.clause:
        parts.append(f"[{case.clause}]")
    if case.title and case.title != case.id:
        parts.append(case.title)
    return "  ".join(parts)


def as_json(result: CaseResult) -> dict[str, Any]:
    return {
        "id": result.case.id,
        "origin": result.case.origin,
        "clause": result.case.clause,
        "ok": result.ok,
        "problems": result.problems,
        "matched_routes": [list(p) for p in result.matched_paths],
    }
