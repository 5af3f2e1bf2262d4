"""What a rules change would do to real reports (`cluebus rules diff`): pure comparison.

Each report is routed under the old and the new rules; a change is a recipient added
or removed, a role or case-owner requirement changed, or a different priority. Each
change is credited to a route (the new rules' route for what appears or changes, the
old rules' route for what disappears), and summed per route, so an administrator sees
what a change to one route does before deploying it. Ids, departments, roles and
route paths only: never a report's content.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from services.rules.engine import RouteResult
from services.rules.facts import Facts
from services.rules.loader import CompiledRules

KINDS = ("added", "removed", "role", "case_owner", "priority")


def _path(path: tuple[str, ...] | None) -> str | None:
    return " > ".join(path) if path else None


@dataclass
class ReportChange:
    report: str  # the report id, or where it was read from
    source: str
    category: str
    added: list[dict[str, Any]] = field(default_factory=list)
    removed: list[dict[str, Any]] = field(default_factory=list)
    role: list[dict[str, Any]] = field(default_factory=list)
    case_owner: list[dict[str, Any]] = field(default_factory=list)
    priority: dict[str, Any] | None = None

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.role or self.case_owner or self.priority)

    def as_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v or k in ("report", "source", "category")}


def compare(label: str, facts: Facts, old: RouteResult, new: RouteResult) -> ReportChange:
    change = ReportChange(label, facts.source.value, facts.category.value)
    before = {r.department: r for r in old.recipients}
    after = {r.department: r for r in new.recipients}
    for d in sorted(set(after) - set(before)):
        change.added.append({"department": d, "role": after[d].role.value, "route": _path(after[d].rule_path)})
    for d in sorted(set(before) - set(after)):
        change.removed.append({"department": d, "role": before[d].role.value, "route": _path(before[d].rule_path)})
    for d in sorted(set(before) & set(after)):
        a, b = before[d], after[d]
        if a.role != b.role:
            change.role.append({"department": d, "old": a.role.value, "new": b.role.value, "route": _path(b.rule_path)})
        if a.case_owner_required != b.case_owner_required:
            change.case_owner.append(
                {
                    "department": d,
                    "old": a.case_owner_required,
                    "new": b.case_owner_required,
                    "route": _path(b.rule_path),
                }
            )
    if old.priority != new.priority:
        change.priority = {
            "old": old.priority.value,
            "new": new.priority.value,
            "old_route": _path(old.priority_route),
            "route": _path(new.priority_route) or _path(old.priority_route),
        }
    return change


@dataclass
class Diff:
    old_version: str
    new_version: str
    reports: int = 0
    changes: list[ReportChange] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)  # where, and why (no content)

    def per_route(self) -> dict[str, dict[str, int]]:
        """Route path -> reports changed through it, and how many changes of each kind."""
        out: dict[str, dict[str, Any]] = {}
        for change in self.changes:
            items = [(k, e) for k in KINDS[:-1] for e in getattr(change, k)]
            if change.priority:
                items.append(("priority", change.priority))
            for kind, entry in items:
                route = entry["route"] or "(the reporter's urgency)"
                row = out.setdefault(route, {"reports": set(), **dict.fromkeys(KINDS, 0)})
                row["reports"].add(change.report)
                row[kind] += 1
        return {route: {**row, "reports": len(row["reports"])} for route, row in sorted(out.items())}

    def as_json(self) -> dict[str, Any]:
        return {
            "old": self.old_version,
            "new": self.new_version,
            "reports": self.reports,
            "changed": len(self.changes),
            "skipped": self.skipped,
            "changes": [c.as_json() for c in self.changes],
            "routes": self.per_route(),
        }


def diff(old: CompiledRules, new: CompiledRules, reports: Iterable[tuple[str, Any]]) -> Diff:
    """Route every ``(label, report)`` under both rule sets; a report given as a string is a skip reason."""
    out = Diff(old.version, new.version)
    for label, report in reports:
        if isinstance(report, str):
            out.skipped.append({"report": label, "reason": report})
            continue
        out.reports += 1
        facts = Facts.of(report)
        change = compare(label, facts, old.route(facts), new.route(facts))
        if change:
            out.changes.append(change)
    return out


def render(d: Diff) -> list[str]:
    lines = [f"rules {d.old_version} -> {d.new_version}: {d.reports} reports, {len(d.changes)} would change"]
    for c in d.changes:
        lines.append(f"{c.report} ({c.source}, {c.category}):")
        for e in c.added:
            lines.append(f"  + {e['department']:<20} {e['role']:<12} via {e['route']}")
        for e in c.removed:
            lines.append(f"  - {e['department']:<20} {e['role']:<12} was via {e['route']}")
        for e in c.role:
            lines.append(f"  ~ {e['department']:<20} {e['old']} -> {e['new']}   via {e['route']}")
        for e in c.case_owner:
            need = {True: "case owner required", False: "no case owner required"}
            lines.append(f"  ~ {e['department']:<20} {need[e['old']]} -> {need[e['new']]}   via {e['route']}")
        if c.priority:
            p = c.priority
            lines.append(f"  ~ priority {p['old']} -> {p['new']}   via {p['route'] or 'the reporter urgency'}")
    if d.changes:
        lines.append("per route:")
        for route, row in d.per_route().items():
            counts = ", ".join(f"{k.replace('_', ' ')} {row[k]}" for k in KINDS if row[k])
            lines.append(f"  {route:<56} {row['reports']:>4} reports   {counts}")
    if d.skipped:
        lines.append(f"{len(d.skipped)} skipped (not routable):")
        lines.extend(f"  {s['report']}: {s['reason']}" for s in d.skipped)
    return lines
