"""Why a report is routed as it is (`cluebus rules explain`): pure, from the rules and one report.

For every route the report's (source, category) let the tree test: whether it matched,
which of its matchers held (for ``any``/``all``, which elements), or which failed,
or which ``match_not`` matcher excluded it. For every recipient: the route that named
it first, every route that named it, the matchers of that route, clocks and field
names, and what was shared of whom and why (each grant's reason) and what was withheld.
For the priority: the route that raised it, or the reporter's urgency. Only kinds, paths,
roles and field names are shown: never a person's values.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from schemas import SharedGrant, Withheld
from services.rules.engine import Node, Trace
from services.rules.facts import Facts
from services.rules.inputs import TOOL_SOURCE_SYSTEM
from services.rules.loader import CompiledRules


def _route_entry(node: Node, admitted: bool, facts: Facts) -> dict[str, Any]:
    entry: dict[str, Any] = {"path": list(node.path), "matched": admitted}
    if admitted:
        entry["matched_by"] = list(node.match.why(facts))
        return entry
    failed = [t.kind for t in node.match.tests if not t.holds(facts)]
    if failed:
        entry["failed"] = failed
    else:
        entry["excluded_by"] = list(node.match_not.why(facts))
    return entry


def explain(rules: CompiledRules, report: Any) -> dict[str, Any]:
    """The explanation of one report's routing as a JSON-ready dict."""
    facts = Facts.of(report)
    trace: Trace = []
    plan = rules.plan(report, report.received_at, trace)
    result = plan.result
    nodes = {node.path: node for node, _ in trace}
    why = {path: list(nodes[path].match.why(facts)) for path in result.matched_paths if path in nodes}
    priority: dict[str, Any] = {"value": result.priority.value, "urgency": report.urgency.value}
    if result.priority_route is not None:
        priority["route"] = list(result.priority_route)
        priority["matched_by"] = why.get(result.priority_route, [])
    return {
        "report_id": report.report_id,
        "source": report.source.value,
        "category": report.category.value,
        "urgency": report.urgency.value,
        "submission": report.source_system == TOOL_SOURCE_SYSTEM,
        "rules_version": rules.version,
        "fallback": result.fallback,
        "matched_routes": [list(p) for p in result.matched_paths],
        "routes": [_route_entry(node, admitted, facts) for node, admitted in trace],
        "priority": priority,
        "recipients": [
            {
                "department": p.department,
                "role": p.role.value,
                "rule_path": list(p.rule_path),
                "matched_by": why.get(p.rule_path, []),
                "via": [list(v) for v in next(r.via for r in result.recipients if r.department == p.department)],
                "case_owner_required": p.case_owner_required,
                "anonymised": p.anonymised,
                "due": {stage: when.astimezone(UTC).isoformat() for stage, when in p.due.items()},
                "fields": list(p.fields),
                "grants": [g.model_dump(mode="json", exclude_none=True) for g in p.disclosure.grants],
                "withheld": p.disclosure.withheld.model_dump(mode="json"),
            }
            for p in plan.referrals
        ],
    }


def render(explanation: dict[str, Any]) -> list[str]:
    """The explanation as lines of text."""
    e = explanation
    lines = [
        f"report {e['report_id']} ({e['source']}, {e['category']}, urgency {e['urgency']}) "
        f"under rules {e['rules_version']}"
    ]
    if e["submission"]:
        lines.append("  (a submission, routed with a stand-in envelope as the adapter would stamp it)")
    lines.append("matched routes:" if not e["fallback"] else "no route matched; the root's fallback applies:")
    for path in e["matched_routes"]:
        lines.append(f"  {' > '.join(path)}")
    lines.append("routes tested (the report's source and category admit them):")
    for route in e["routes"]:
        path = " > ".join(route["path"])
        if route["matched"]:
            lines.append(f"  yes  {path}   by {', '.join(route['matched_by']) or '(no matchers)'}")
        elif "failed" in route:
            lines.append(f"  no   {path}   fails {', '.join(route['failed'])}")
        else:
            lines.append(f"  no   {path}   excluded by match_not {', '.join(route['excluded_by'])}")
    p = e["priority"]
    if "route" in p:
        lines.append(
            f"priority: {p['value']} (raised from urgency {p['urgency']} by {' > '.join(p['route'])}"
            f"{': ' + ', '.join(p['matched_by']) if p['matched_by'] else ''})"
        )
    else:
        lines.append(f"priority: {p['value']} (the reporter's urgency)")
    lines.append("recipients:")
    for r in e["recipients"]:
        flags = [r["role"]]
        if r["case_owner_required"]:
            flags.append("case owner required")
        if r["anonymised"]:
            flags.append("anonymised (adult victim refused consent)")
        by = f" ({', '.join(r['matched_by'])})" if r["matched_by"] else ""
        also = [" > ".join(v) for v in r["via"][1:]]
        lines.append(
            f"  {r['department']:<20} {', '.join(flags)}   via {' > '.join(r['rule_path'])}{by}"
            + (f"; also {'; '.join(also)}" if also else "")
        )
        due = ", ".join(f"{stage} {when[:16].replace('T', ' ')}Z" for stage, when in r["due"].items())
        lines.append(f"      due: {due}")
        lines.append(f"      fields ({len(r['fields'])}): {', '.join(r['fields'])}")
        lines.extend(f"      {g.describe()}" for g in (SharedGrant.model_validate(g) for g in r["grants"]))
        lines.extend(f"      {line}" for line in Withheld.model_validate(r["withheld"]).describe())
    return lines
