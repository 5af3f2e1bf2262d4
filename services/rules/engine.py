"""The routing tree compiled for evaluation.

Each node keeps, for every (source, category) pair, the ordered indices of the
children whose matchers admit that pair. A report therefore only tests the
children that can match it, so a tree with a thousand rules spread over
sources and categories costs about what one with ten does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import product
from typing import Any

from schemas.enums import Category, Priority, Role, Source, Urgency
from services.rules.model import Matchers, Route

_RANK = {"normal": 0, "high": 1, "critical": 2}


def rank(priority: str) -> int:
    return _RANK[str(getattr(priority, "value", priority))]


def max_priority(*priorities: Any) -> Priority:
    return max((Priority(str(getattr(p, "value", p))) for p in priorities if p is not None), key=rank)


@dataclass(frozen=True)
class Facts:
    """What the routing tree can see of a report: no personal values, only facts."""

    source: Source
    category: Category
    urgency: Urgency
    any_minor: bool = False
    any_foreign: bool = False
    any_disability: bool = False
    indicators: frozenset[str] = frozenset()
    township: str | None = None

    @classmethod
    def of(cls, report: Any) -> Facts:
        subjects = getattr(report, "subjects", ()) or ()
        location = getattr(report, "location", None)
        return cls(
            source=Source(report.source),
            category=Category(report.category),
            urgency=Urgency(report.urgency),
            any_minor=any(s.is_minor for s in subjects),
            any_foreign=any(s.is_foreign for s in subjects),
            any_disability=any(s.has_disability for s in subjects),
            indicators=frozenset(str(getattr(i, "value", i)) for i in report.indicators or ()),
            township=getattr(location, "township_code", None) if location else None,
        )


def _admits(m: Matchers, facts: Facts, *, skip_indexed: bool) -> bool:
    """True when every matcher given holds. ``skip_indexed`` leaves out source and category."""
    if not skip_indexed:
        if m.source is not None and facts.source not in m.source:
            return False
        if m.category is not None and facts.category not in m.category:
            return False
    if m.urgency is not None and facts.urgency not in m.urgency:
        return False
    if m.any_minor is not None and facts.any_minor != m.any_minor:
        return False
    if m.any_foreign is not None and facts.any_foreign != m.any_foreign:
        return False
    if m.any_disability is not None and facts.any_disability != m.any_disability:
        return False
    if m.indicators is not None and not (facts.indicators & {str(i.value) for i in m.indicators}):
        return False
    return not (m.township is not None and facts.township not in m.township)


def _excludes(m: Matchers, facts: Facts, *, skip_indexed: bool) -> bool:
    """True when any negative matcher hits (match_not: exclude on any listed value)."""
    if m.is_empty():
        return False
    if not skip_indexed:
        if m.source is not None and facts.source in m.source:
            return True
        if m.category is not None and facts.category in m.category:
            return True
    checks = [
        m.urgency is not None and facts.urgency in m.urgency,
        m.any_minor is not None and facts.any_minor == m.any_minor,
        m.any_foreign is not None and facts.any_foreign == m.any_foreign,
        m.any_disability is not None and facts.any_disability == m.any_disability,
        m.indicators is not None and bool(facts.indicators & {str(i.value) for i in m.indicators}),
        m.township is not None and facts.township in m.township,
    ]
    return any(checks)


@dataclass(frozen=True)
class Node:
    name: str
    path: tuple[str, ...]
    match: Matchers
    match_not: Matchers
    recipients: tuple[tuple[str, Role], ...]
    priority: Priority | None  # effective (inherited) priority floor
    case_owner_required: bool  # effective (inherited)
    continue_: bool
    children: tuple[Node, ...]
    index: dict[tuple[Source, Category], tuple[int, ...]] = field(repr=False)

    def admits_rest(self, facts: Facts) -> bool:
        return _admits(self.match, facts, skip_indexed=True) and not _excludes(self.match_not, facts, skip_indexed=True)


def _admits_pair(route: Route, source: Source, category: Category) -> bool:
    m, n = route.match, route.match_not
    if m.source is not None and source not in m.source:
        return False
    if m.category is not None and category not in m.category:
        return False
    if n.source is not None and source in n.source:
        return False
    return not (n.category is not None and category in n.category)


def compile_tree(
    route: Route,
    parent_path: tuple[str, ...] = (),
    inherited_priority: Priority | None = None,
    inherited_case_owner: bool = False,
) -> Node:
    path = (*parent_path, route.name)
    priority = max_priority(inherited_priority, route.priority) if (inherited_priority or route.priority) else None
    case_owner = inherited_case_owner if route.case_owner_required is None else route.case_owner_required
    children = tuple(compile_tree(child, path, priority, case_owner) for child in route.routes)
    index = {
        (source, category): tuple(i for i, child in enumerate(route.routes) if _admits_pair(child, source, category))
        for source, category in product(Source, Category)
    }
    return Node(
        name=route.name,
        path=path,
        match=route.match,
        match_not=route.match_not,
        recipients=tuple((r.department, r.role) for r in route.recipients),
        priority=priority,
        case_owner_required=case_owner,
        continue_=route.continue_,
        children=children,
        index=index,
    )


@dataclass(frozen=True)
class RoutedRecipient:
    department: str
    role: Role
    rule_path: tuple[str, ...]  # the first matched route that named this department
    case_owner_required: bool


@dataclass(frozen=True)
class RouteResult:
    recipients: tuple[RoutedRecipient, ...]
    priority: Priority
    matched_paths: tuple[tuple[str, ...], ...]
    fallback: bool  # True when no route matched and the root's recipients were used

    def departments(self) -> dict[str, Role]:
        return {r.department: r.role for r in self.recipients}


def evaluate(root: Node, facts: Facts) -> RouteResult:
    matched: list[Node] = []

    def walk(node: Node) -> None:
        for i in node.index[(facts.source, facts.category)]:
            child = node.children[i]
            if child.admits_rest(facts):
                matched.append(child)
                walk(child)
                if not child.continue_:
                    break

    walk(root)
    fallback = not matched
    contributing = [root] if fallback else matched
    merged: dict[str, RoutedRecipient] = {}
    for node in contributing:
        for department, role in node.recipients:
            lead = role == Role.lead
            owner = node.case_owner_required and lead
            if department not in merged:
                merged[department] = RoutedRecipient(department, Role(role), node.path, owner)
                continue
            known = merged[department]
            merged[department] = RoutedRecipient(
                department,
                Role.lead if (lead or known.role == Role.lead) else Role.cooperating,
                known.rule_path,
                known.case_owner_required or owner,
            )
    priority = max_priority(facts.urgency, *(n.priority for n in contributing))
    return RouteResult(
        recipients=tuple(merged.values()),
        priority=priority,
        matched_paths=tuple(n.path for n in contributing),
        fallback=fallback,
    )


def count_routes(node: Node) -> int:
    return 1 + sum(count_routes(c) for c in node.children)


def depth(node: Node) -> int:
    return 1 + max((depth(c) for c in node.children), default=0)
