"""The routing tree compiled for evaluation (pure: no I/O, no logging).

Each node keeps, for every (source, category) pair, the ordered indices of the
children whose matchers admit that pair (a child whose ``source``/``category``
sit inside ``any``/``not`` is admitted for every pair those cannot rule out). A
report therefore only tests the children that can match it, and only the tests
its pair leaves open, so a tree with a thousand rules spread over sources and
categories costs about what one with ten does (``bench/rules_scale.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from itertools import product
from types import MappingProxyType
from typing import Any, NamedTuple

from schemas.enums import Category, Priority, Role, Source
from services.rules.facts import Facts
from services.rules.model import Route
from services.rules.predicates import ALWAYS, NEVER, Matcher, Problems, compile_matcher, conjunction, disjunction

Path = tuple[str, ...]
NO_CASE_OWNER_CATEGORIES: Mapping[str, frozenset[Category]] = MappingProxyType({})


class CompileError(ValueError):
    """Matchers that cannot be compiled; ``problems`` holds ``(loc, reason)`` pairs."""

    def __init__(self, problems: Problems) -> None:
        self.problems = problems
        super().__init__("; ".join(reason for _, reason in problems))


@dataclass(frozen=True)
class Node:
    name: str
    path: Path
    match: Matcher
    match_not: Matcher
    rest: Callable[[Facts], bool] | None  # what the (source, category) index leaves to test; None: nothing
    recipients: tuple[tuple[str, Role], ...]
    priority: Priority | None  # effective (inherited) priority floor
    priority_origin: Path | None  # the route whose own ``priority`` gives ``priority``
    case_owner_required: bool  # effective (inherited)
    continue_: bool
    children: tuple[Node, ...]
    index: dict[tuple[Source, Category], tuple[int, ...]] = field(repr=False)
    kinds: tuple[str, ...] = ()  # of the ``match`` tests: recorded as ``matched_by``

    def on_pair(self, source: Source, category: Category) -> int:
        """NEVER / MAYBE / ALWAYS: whether this node matches, knowing only source and category."""
        return min(self.match.all_on_pair(source, category), ALWAYS - self.match_not.any_on_pair(source, category))

    @property
    def fact_driven(self) -> bool:
        """Matches on more than the report's source and category."""
        return any(t.kind not in ("source", "category") for t in (*self.match.tests, *self.match_not.tests))


def compile_tree(route: Route) -> Node:
    """The validated tree, compiled; raises :class:`CompileError` for ``details`` paths that do not exist."""
    problems: Problems = []
    root = _compile(route, (), None, None, False, frozenset(Source), ("route",), problems)
    if problems:
        raise CompileError(problems)
    return root


def _compile(
    route: Route,
    parent_path: Path,
    inherited_priority: Priority | None,
    inherited_origin: Path | None,
    inherited_case_owner: bool,
    scope: frozenset[Source],
    loc: tuple[Any, ...],
    problems: Problems,
) -> Node:
    path = (*parent_path, route.name)
    priority, origin = inherited_priority, inherited_origin
    if route.priority is not None and (priority is None or route.priority.rank > priority.rank):
        priority, origin = route.priority, path
    case_owner = inherited_case_owner if route.case_owner_required is None else route.case_owner_required
    if route.match.source is not None:
        scope = frozenset(route.match.source)
    match = compile_matcher(route.match, scope, (*loc, "match"), problems)
    match_not = compile_matcher(route.match_not, scope, (*loc, "match_not"), problems)
    children = tuple(
        _compile(child, path, priority, origin, case_owner, scope, (*loc, "routes", i), problems)
        for i, child in enumerate(route.routes)
    )
    # Top-level source and category tests are settled by the parent's index.
    positive = conjunction(tuple(t for t in match.tests if t.kind not in ("source", "category")))
    negative = disjunction(tuple(t for t in match_not.tests if t.kind not in ("source", "category")))
    return Node(
        name=route.name,
        path=path,
        match=match,
        match_not=match_not,
        rest=_rest(positive, negative),
        recipients=tuple((r.department, r.role) for r in route.recipients),
        priority=priority,
        priority_origin=origin,
        case_owner_required=case_owner,
        continue_=route.continue_,
        children=children,
        index={
            (source, category): tuple(i for i, c in enumerate(children) if c.on_pair(source, category) != NEVER)
            for source, category in product(Source, Category)
        },
        kinds=match.kinds(),
    )


def _rest(
    positive: Callable[[Facts], bool] | None, negative: Callable[[Facts], bool] | None
) -> Callable[[Facts], bool] | None:
    if negative is None:
        return positive
    if positive is None:
        return lambda facts: not negative(facts)
    return lambda facts: positive(facts) and not negative(facts)


class RoutedRecipient(NamedTuple):  # a tuple: made for every recipient (see PlannedReferral)
    department: str
    role: Role
    rule_path: Path  # the first matched route that named this department
    case_owner_required: bool
    via: tuple[Path, ...] = ()  # every matched route that named it


@dataclass(frozen=True)
class RouteResult:
    recipients: tuple[RoutedRecipient, ...]
    priority: Priority
    matched_paths: tuple[Path, ...]
    fallback: bool  # True when no route matched and the root's recipients were used
    priority_route: Path | None = None  # the route that raised the priority; None: the reporter's urgency
    matched_by: tuple[tuple[str, ...], ...] = ()  # per matched route, the kinds of its ``match`` tests

    def departments(self) -> dict[str, Role]:
        return {r.department: r.role for r in self.recipients}


# Enum members read once: attribute access on an enum class costs a descriptor call, and the
# merge below runs for every recipient of every report.
_LEAD, _COOPERATING = Role.lead, Role.cooperating
Trace = list[tuple[Node, bool]]  # every child tested, and whether it was admitted


def evaluate(
    root: Node,
    facts: Facts,
    case_owner_categories: Mapping[str, frozenset[Category]] = NO_CASE_OWNER_CATEGORIES,
    trace: Trace | None = None,
) -> RouteResult:
    """Route one report's facts. A lead needs a case owner when its route says so (inherited) or when
    the report's category is one of its department's ``case_owner_categories``."""
    pair = (facts.source, facts.category)
    matched: list[Node] = []

    def walk(node: Node) -> None:
        for i in node.index[pair]:
            child = node.children[i]
            admitted = child.rest is None or child.rest(facts)
            if trace is not None:
                trace.append((child, admitted))
            if admitted:
                matched.append(child)
                walk(child)
                if not child.continue_:
                    break

    walk(root)
    fallback = not matched
    contributing = [root] if fallback else matched
    # Per department: role, first route, case owner, every route (one RoutedRecipient made each).
    merged: dict[str, list[Any]] = {}
    for node in contributing:
        for department, role in node.recipients:
            lead = role is _LEAD
            owner = lead and (node.case_owner_required or facts.category in case_owner_categories.get(department, ()))
            known = merged.get(department)
            if known is None:
                merged[department] = [role, node.path, owner, [node.path]]
                continue
            if lead:
                known[0] = _LEAD
            known[2] = known[2] or owner
            if node.path not in known[3]:
                known[3].append(node.path)
    priority = Priority.highest(facts.urgency, *(n.priority for n in contributing if n.priority is not None))
    priority_route = None
    if priority.rank > Priority.of(facts.urgency).rank:
        priority_route = next(n.priority_origin for n in contributing if n.priority == priority)
    return RouteResult(
        recipients=tuple(
            RoutedRecipient(department, role, path, owner, tuple(via))
            for department, (role, path, owner, via) in merged.items()
        ),
        priority=priority,
        matched_paths=tuple(n.path for n in contributing),
        fallback=fallback,
        priority_route=priority_route,
        matched_by=tuple(n.kinds for n in contributing),
    )


def leadless_pairs(root: Node) -> dict[Category, set[Source]]:
    """The (source, category) pairs for which some facts would reach no lead department.

    Each test the pair leaves open is taken as free to hold or not, independently of
    the others, so this errs on the side of reporting a gap: it never misses one.
    """
    gaps: dict[Category, set[Source]] = {}
    for source, category in product(Source, Category):
        if (True, False) in _outcomes(root, source, category):
            gaps.setdefault(category, set()).add(source)
    return gaps


def _outcomes(node: Node, source: Source, category: Category) -> set[tuple[bool, bool]]:
    """Possible (some child matched, a lead among what matched below) of walking ``node``'s children."""
    open_: set[tuple[bool, bool]] = {(False, False)}
    stopped: set[tuple[bool, bool]] = set()
    for i in node.index[(source, category)]:
        child = node.children[i]
        lead = any(role == Role.lead for _, role in child.recipients)
        results = {lead or below for _, below in _outcomes(child, source, category)}
        may_miss = child.on_pair(source, category) != ALWAYS
        after: set[tuple[bool, bool]] = set()
        for matched_before, had_lead in open_:
            if may_miss:
                after.add((matched_before, had_lead))
            for got in results:
                (after if child.continue_ else stopped).add((True, had_lead or got))
        open_ = after
    return open_ | stopped


def count_routes(node: Node) -> int:
    return 1 + sum(count_routes(c) for c in node.children)


def depth(node: Node) -> int:
    return 1 + max((depth(c) for c in node.children), default=0)


def walk_nodes(node: Node) -> list[Node]:
    """Every node below ``node``, depth first, parents before children."""
    out = []
    for child in node.children:
        out.append(child)
        out.extend(walk_nodes(child))
    return out
