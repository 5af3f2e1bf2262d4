"""``docs/PRIVACY.md``: who sees what of a report, of whom and why, generated from the rules (pure).

    cluebus rules privacy > docs/PRIVACY.md

``tests/unit/rules/test_privacy.py`` regenerates it from the shipped rules and fails when the
file differs, so the document cannot drift from what the router does.
"""

from __future__ import annotations

from typing import Any

from schemas import Role, SubjectRole
from services.rules.engine import Path
from services.rules.grants import OFFENDER_ROLES
from services.rules.loader import CompiledRules
from services.rules.model import Grant, Route
from services.rules.redaction import SUBJECT_PREFIX, identity_leaves

ROLES = [r.value for r in SubjectRole]


def _of(grant: Grant) -> str:
    return ", ".join(p.value for p in grant.of) or "—"


def _fields(grant: Grant) -> str:
    return ", ".join(f"`{f}`" for f in grant.fields)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _route_grants(route: Route, path: Path = ()) -> list[tuple[Path, Any]]:
    path = (*path, route.name)
    out = [(path, g) for g in route.grants]
    for child in route.routes:
        out += _route_grants(child, path)
    return out


def _identity(rules: CompiledRules, department: str, role: Role, routes: tuple[Path, ...]) -> dict[str, str]:
    """Per subject role: whose identity this department may hold (full, some fields, none)."""
    identity = identity_leaves()
    out = {}
    for subject in ROLES:
        granted: set[str] = set()
        for g in rules.grants.applicable(department, role, routes):
            if subject in g.roles:
                granted |= {leaf for leaf in g.leaves if leaf.startswith(SUBJECT_PREFIX)} & identity
        if granted == identity:
            out[subject] = "identity"
        elif granted:
            out[subject] = ", ".join(sorted(leaf.removeprefix(SUBJECT_PREFIX) for leaf in granted))
        else:
            out[subject] = "—"
    return out


def render(rules: CompiledRules) -> str:
    spec = rules.spec
    route_grants = _route_grants(spec.route)
    lines = [
        "# Who sees what of a report, and why",
        "",
        f"Generated from `routing_rules.toml` (rules {spec.version}) by `cluebus rules privacy > docs/PRIVACY.md`;",
        "a test regenerates it and fails when it differs. Every referral and every routing decision records",
        "the grants applied to its copy, of which subjects' roles, with these reasons, and what was withheld",
        "(`cluebus audit` shows them beside who opened the referral). Field names and roles only, never values.",
        "",
        "## Rules of law the loader enforces",
        "",
        f"- **DNA and biometric data**: the police (`{spec.police}`) only; no source schema carries any, and intake",
        "  refuses DNA-class text.",
        "- **A suspect's or a buyer's identity** (name, id, phone, description): only "
        + ", ".join(spec.offender_identity),
        "  (`offender_identity`); a grant that gives it to anyone else is a load error.",
        "- **Free text** (the narrative, descriptions, the identity-check anomaly, the pick-up description) may name",
        "  anyone: a copy holds it only when it holds the identity of every subject of the report. Otherwise it is",
        "  withheld (and said so), and the reporter's `shareable_summary` (refused at intake if it repeats a name,",
        "  id, phone or address of the report) is what that department reads.",
        "- **Lead and cooperating**: a department's own grants apply when it leads; a cooperating department gets",
        "  the case summary and only what a matched route grants it, with the reason.",
        "- **Consent refused** by an adult victim: non-police copies also lose "
        + ", ".join(f"`{f}`" for f in spec.anonymise)
        + ".",
        "",
        "## Every recipient",
        "",
        "| grant | of | fields | why |",
        "|---|---|---|---|",
        "| always shared | every subject | " + ", ".join(f"`{f}`" for f in spec.always_shared) + " | "
        "identifiers, category, times, area codes; no personal data |",
    ]
    for g in spec.summary:
        lines.append(f"| summary | {_of(g)} | {_fields(g)} | {_cell(g.reason)} |")
    lines += [
        "",
        "## What a department sees when it leads",
        "",
        "| department | of | fields | why |",
        "|---|---|---|---|",
    ]
    for dep_id, dep in spec.departments.items():
        for g in dep.grants:
            lines.append(f"| {dep_id} | {_of(g)} | {_fields(g)} | {_cell(g.reason)} |")
    lines += ["", "The summary only: " + ", ".join(d for d, dep in spec.departments.items() if not dep.grants) + "."]
    lines += [
        "",
        "## What a route grants when it matches (lead or cooperating)",
        "",
        "| route | to | of | fields | why |",
        "|---|---|---|---|---|",
    ]
    for path, g in route_grants:
        lines.append(f"| {' > '.join(path[1:])} | {', '.join(g.to)} | {_of(g)} | {_fields(g)} | {_cell(g.reason)} |")
    lines += [
        "",
        "## Whose identity a department may hold when it leads",
        "",
        "Per subject role: `identity` is all of name, id, phone and description; otherwise the fields it may hold.",
        "",
        "| department | " + " | ".join(ROLES) + " |",
        "|---|" + "---|" * len(ROLES),
    ]
    by_department: dict[str, list[Path]] = {}
    for path, g in route_grants:
        for dep in g.to:
            by_department.setdefault(dep, []).append(path)
    cooperating = []
    for dep_id in spec.departments:
        cells = _identity(rules, dep_id, Role.lead, ())
        if any(c != "—" for c in cells.values()):
            lines.append(f"| {dep_id} | " + " | ".join(cells[r] for r in ROLES) + " |")
        routes = tuple(by_department.get(dep_id, ()))
        as_cooperating = _identity(rules, dep_id, Role.cooperating, routes)
        if any(c != "—" for c in as_cooperating.values()):
            whose = ", ".join(f"{r} ({c})" for r, c in as_cooperating.items() if c != "—")
            cooperating.append(f"- {dep_id}, by {'; '.join(' > '.join(p[1:]) for p in routes)}: {whose}")
    lines += ["", "Every other department: nobody's identity. As a cooperating unit (by a route's grant):", ""]
    lines += cooperating or ["- nobody's identity"]
    lines += ["", "## Field sets", "", "| set | fields |", "|---|---|"]
    for name, fields in spec.field_sets.items():
        lines.append(f"| `@{name}` | " + ", ".join(f"`{f}`" for f in fields) + " |")
    offenders = ", ".join(sorted(OFFENDER_ROLES))
    lines += ["", f"Offender roles (the invariant): {offenders}. Identity fields of a subject: "]
    lines[-1] += ", ".join(f"`{leaf}`" for leaf in sorted(identity_leaves())) + "."
    return "\n".join(lines) + "\n"
