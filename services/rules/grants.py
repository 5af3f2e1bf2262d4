"""Who may see what of a report: the grants of ``routing_rules.toml``, checked once at load and compiled.

A report's personal data belongs to **parties**: each subject, by its role (victim, suspect,
buyer, guardian, witness, other), and the reporter. A grant names fields and, for a
party's fields (``subjects.*``, ``reporter.*``), whose (``of``); every grant says why.
A recipient of a report gets:

* ``always_shared`` (ids, category, times, codes: no personal data, of every subject);
* the ``summary`` (facts, no identity, no free text but the reporter's shareable summary);
* its department's own ``grants`` only when it **leads**;
* the ``grants`` of every matched route that names it, in either role (a cooperating
  department's only way to more than the summary, with its reason).

Free text then follows identity (``services/rules/redaction.py``). Checked here, each
fault with its file line: unknown fields and sets; a party's field without that party
in ``of``, or a party in ``of`` that no field is of; identity or free text in the summary,
personal data in ``always_shared``; a route granting to a department it does not route;
and the invariants: **a suspect's or a buyer's identity only to ``offender_identity``**
(which must include the police), **DNA and biometric fields only to the police**.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from schemas import GrantBasis, Role, Sensitivity, SharedGrant, SubjectRole
from schemas.enums import Source
from services.rules.model import Grant, Party, Route, RulesFile
from services.rules.redaction import (
    REPORTER_PREFIX,
    SUBJECT_PREFIX,
    SUBJECT_ROLES,
    Copy,
    GrantSpec,
    compile_copy,
    expand,
    forbidden_for_non_police,
    free_text_leaves,
    identity_leaves,
    leaves_of,
    sensitivity_of,
)

OFFENDER_ROLES: frozenset[str] = frozenset({SubjectRole.suspect.value, SubjectRole.buyer.value})
ALWAYS_SHARED_REASON = "identifiers, category, times and area codes every recipient needs; no personal data"
Path = tuple[str, ...]
Problems = list[tuple[tuple[Any, ...], str]]
_CACHE_MAX = 4096  # compiled copies kept per rules object; a report shape repeats, so this is never reached


@dataclass
class GrantTable:
    """The compiled grants, and the copy of each (department, role, routes, shape) built once and kept."""

    always: GrantSpec
    summary: tuple[GrantSpec, ...]
    lead: Mapping[str, tuple[GrantSpec, ...]]
    routes: Mapping[Path, Mapping[str, tuple[GrantSpec, ...]]]
    offender_identity: frozenset[str]
    police: str
    anonymise: frozenset[str]
    _copies: dict[tuple[Any, ...], Copy] = field(default_factory=dict, repr=False)
    _records: dict[SharedGrant, SharedGrant] = field(default_factory=dict, repr=False)

    def applicable(self, department: str, role: Role, route_paths: tuple[Path, ...] = ()) -> tuple[GrantSpec, ...]:
        """The grants one recipient gets, in order: always shared, summary, its own when lead, its routes'."""
        out = [self.always, *self.summary]
        if role == Role.lead:
            out.extend(self.lead.get(department, ()))
        for path in route_paths:
            out.extend(self.routes.get(path, {}).get(department, ()))
        return tuple(out)

    def granting_routes(self, matched_paths: tuple[Path, ...]) -> tuple[Path, ...]:
        """The matched routes that grant anything (to anyone): usually none or one."""
        return tuple(p for p in matched_paths if p in self.routes)

    def copy_for(
        self,
        department: str,
        role: Role,
        granting: tuple[Path, ...],
        source: Source,
        roles: frozenset[str],
        anonymise: bool,
    ) -> Copy:
        """The compiled copy for one recipient of one report shape (``granting``: from :meth:`granting_routes`)."""
        mine = tuple(p for p in granting if department in self.routes[p]) if granting else ()
        key = (department, role, mine, source, roles, anonymise)
        copy = self._copies.get(key)
        if copy is None:
            if len(self._copies) >= _CACHE_MAX:
                self._copies.clear()
                self._records.clear()
            copy = compile_copy(
                source, roles, self.applicable(department, role, mine), self.anonymise if anonymise else frozenset()
            )
            # One instance per distinct record, so that a decision recording each grant once can tell
            # them apart by identity (hashing pydantic models per recipient was 11% of route_report).
            interned = tuple(self._records.setdefault(g, g) for g in copy.grants)
            copy = dataclasses.replace(copy, grants=interned)
            self._copies[key] = copy
        return copy


def _spec(grant: Grant, leaves: frozenset[str], basis: GrantBasis, route: Path | None = None) -> GrantSpec:
    parties = {p.value for p in grant.of}
    kept = frozenset(
        leaf
        for leaf in leaves
        if not leaf.startswith(REPORTER_PREFIX) or Party.reporter.value in parties
        if not leaf.startswith(SUBJECT_PREFIX) or parties & SUBJECT_ROLES
    )
    return GrantSpec(basis, route, grant.reason, frozenset(parties & SUBJECT_ROLES), kept)


def _check_grant(
    spec: RulesFile, grant: Grant, loc: tuple[Any, ...], to: tuple[str, ...], problems: Problems
) -> frozenset[str] | None:
    """The grant's leaves, or None (its faults appended to ``problems``). ``to=()``: every recipient
    (the summary, which may hold no identity at all: checked by the caller)."""
    try:
        paths = expand(grant.fields, spec.field_sets)
    except ValueError as exc:
        problems.append(((*loc, "fields"), str(exc)))
        return None
    leaves = leaves_of(paths)
    parties = {p.value for p in grant.of}
    subject_roles = parties & SUBJECT_ROLES
    for item in grant.fields:
        mine = leaves_of(expand([item], spec.field_sets))
        if mine and all(leaf.startswith(SUBJECT_PREFIX) for leaf in mine) and not subject_roles:
            problems.append(
                ((*loc, "fields"), f"'{item}' is a subject's: say whose in `of` ({', '.join(sorted(SUBJECT_ROLES))})")
            )
        if mine and all(leaf.startswith(REPORTER_PREFIX) for leaf in mine) and Party.reporter.value not in parties:
            problems.append(((*loc, "fields"), f"'{item}' is the reporter's: add 'reporter' to `of`"))
    if subject_roles and not any(leaf.startswith(SUBJECT_PREFIX) for leaf in leaves):
        problems.append(((*loc, "of"), f"`of` names {sorted(subject_roles)} but no field of a subject is granted"))
    if Party.reporter.value in parties and not any(leaf.startswith(REPORTER_PREFIX) for leaf in leaves):
        problems.append(((*loc, "of"), "`of` names 'reporter' but no field of the reporter is granted"))
    identity = sorted(identity_leaves() & leaves)
    offenders = sorted(subject_roles & OFFENDER_ROLES)
    if not to and (bad := forbidden_for_non_police(paths | leaves)):
        problems.append(((*loc, "fields"), f"DNA/biometric fields are for the police only, not every recipient: {bad}"))
    for department in to:
        if offenders and identity and department not in spec.offender_identity:
            problems.append(
                (
                    (*loc, "of"),
                    f"the identity of a {' or '.join(offenders)} is for {', '.join(spec.offender_identity)} only "
                    f"(offender_identity), not '{department}': {identity}",
                )
            )
        if department != spec.police and (bad := forbidden_for_non_police(paths | leaves)):
            problems.append(
                ((*loc, "fields"), f"DNA/biometric fields are for the police only, not '{department}': {bad}")
            )
    return leaves


def compile_grants(spec: RulesFile) -> tuple[GrantTable | None, Problems]:
    """Check every grant of the file and compile them; ``(None, problems)`` when any is faulty."""
    problems: Problems = []
    for i, dep in enumerate(spec.offender_identity):
        if dep not in spec.departments:
            problems.append((("offender_identity", i), f"unknown department '{dep}'"))
    if spec.police not in spec.offender_identity:
        problems.append((("offender_identity",), f"the police ('{spec.police}') investigate: list them"))

    try:
        always = leaves_of(expand(spec.always_shared, spec.field_sets))
    except ValueError as exc:
        problems.append((("always_shared",), str(exc)))
        always = frozenset()
    marks = sensitivity_of()
    if personal := sorted(leaf for leaf in always if leaf in marks):
        problems.append((("always_shared",), f"always_shared goes to every recipient: no personal data ({personal})"))
    try:
        anonymise = leaves_of(expand(spec.anonymise, spec.field_sets))
    except ValueError as exc:
        problems.append((("anonymise",), str(exc)))
        anonymise = frozenset()

    summary = []
    for i, grant in enumerate(spec.summary):
        loc = ("summary", i)
        leaves = _check_grant(spec, grant, loc, (), problems)
        if leaves is None:
            continue
        revealing = sorted(
            leaf for leaf in leaves if marks.get(leaf) == Sensitivity.identifying or leaf in free_text_leaves()
        )
        if revealing:
            problems.append(
                (
                    (*loc, "fields"),
                    f"the case summary goes to every recipient: no identity and no free text ({revealing})",
                )
            )
        summary.append(_spec(grant, leaves, GrantBasis.summary))

    lead: dict[str, tuple[GrantSpec, ...]] = {}
    for dep_id, dep in spec.departments.items():
        specs = []
        for i, grant in enumerate(dep.grants):
            leaves = _check_grant(spec, grant, ("departments", dep_id, "grants", i), (dep_id,), problems)
            if leaves is not None:
                specs.append(_spec(grant, leaves, GrantBasis.department))
        lead[dep_id] = tuple(specs)

    routes: dict[Path, dict[str, tuple[GrantSpec, ...]]] = {}

    def walk(route: Route, path: Path, loc: tuple[Any, ...], routed: frozenset[str]) -> None:
        path = (*path, route.name)
        routed = routed | {r.department for r in route.recipients}
        for i, grant in enumerate(route.grants):
            gloc = (*loc, "grants", i)
            for j, dep in enumerate(grant.to):
                if dep not in spec.departments:
                    problems.append(((*gloc, "to", j), f"unknown department '{dep}'"))
                elif dep not in routed:
                    problems.append(
                        (
                            (*gloc, "to", j),
                            f"route '{route.name}' grants to '{dep}', which neither it nor a route above it routes",
                        )
                    )
            leaves = _check_grant(spec, grant, gloc, grant.to, problems)
            if leaves is None:
                continue
            compiled = _spec(grant, leaves, GrantBasis.route, path)
            by_dep = routes.setdefault(path, {})
            for dep in grant.to:
                by_dep[dep] = (*by_dep.get(dep, ()), compiled)
        for i, child in enumerate(route.routes):
            walk(child, path, (*loc, "routes", i), routed)

    walk(spec.route, (), ("route",), frozenset())
    if problems:
        return None, problems
    all_roles = frozenset(SUBJECT_ROLES)
    return (
        GrantTable(
            always=GrantSpec(None, None, ALWAYS_SHARED_REASON, all_roles, always),
            summary=tuple(summary),
            lead=lead,
            routes=routes,
            offender_identity=frozenset(spec.offender_identity),
            police=spec.police,
            anonymise=anonymise,
        ),
        [],
    )
