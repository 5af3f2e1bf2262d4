"""Matcher tables compiled into tests: the one place that says what each matcher means.

Each key of a matcher table becomes a :class:`Test` (each ``details`` path, and each
key of an ``indicators`` or ``location`` table, is its own test) with

* ``holds(facts)``: whether it holds for a report;
* ``on_pair(source, category)``: what it is when only the report's source and
  category are known (``NEVER`` / ``MAYBE`` / ``ALWAYS``), from which the engine
  builds its (source, category) index and the loader proves that every pair
  reaches a lead department;
* ``kind``: the name recorded in decisions and shown by ``rules explain`` (a
  matcher's kind and, for ``details``, the path: never a value).

In ``match`` every test must hold; in ``match_not`` any test that holds excludes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from schemas.enums import AgeBand, Category, Source
from services.rules import detail_fields
from services.rules.facts import Facts, SubjectFacts
from services.rules.matchers import IndicatorSet, LocationMatch, Matchers, NumberCompare, Prefix, SubjectMatch

NEVER, MAYBE, ALWAYS = 0, 1, 2
Loc = tuple[Any, ...]
Problems = list[tuple[Loc, str]]


def _maybe(source: Source, category: Category) -> int:
    return MAYBE


@dataclass(frozen=True)
class Test:
    kind: str
    holds: Callable[[Facts], bool]
    on_pair: Callable[[Source, Category], int] = _maybe
    parts: tuple[Matcher, ...] = ()  # the elements of any / all / not

    def why(self, facts: Facts) -> str:
        """The kind, and for a combinator which of its elements hold."""
        if not self.parts:
            return self.kind
        held = [(i, p) for i, p in enumerate(self.parts) if p.holds(facts)]
        if self.kind == "not":
            return f"not({', '.join(self.parts[0].kinds())})"
        return f"{self.kind}(" + "; ".join(f"[{i}] {', '.join(p.why(facts))}" for i, p in held) + ")"


@dataclass(frozen=True)
class Matcher:
    """A compiled matcher table."""

    tests: tuple[Test, ...] = ()

    def holds(self, facts: Facts) -> bool:
        """Every test holds (``match``)."""
        return all(t.holds(facts) for t in self.tests)

    def hits(self, facts: Facts) -> bool:
        """Some test holds (``match_not``)."""
        return any(t.holds(facts) for t in self.tests)

    def all_on_pair(self, source: Source, category: Category) -> int:
        return min((t.on_pair(source, category) for t in self.tests), default=ALWAYS)

    def any_on_pair(self, source: Source, category: Category) -> int:
        return max((t.on_pair(source, category) for t in self.tests), default=NEVER)

    def kinds(self) -> tuple[str, ...]:
        return tuple(t.kind for t in self.tests)

    def why(self, facts: Facts) -> tuple[str, ...]:
        """The tests that hold, with the elements of combinators that hold."""
        return tuple(t.why(facts) for t in self.tests if t.holds(facts))


def conjunction(tests: tuple[Test, ...]) -> Callable[[Facts], bool] | None:
    """One callable for ``all(tests)`` (None when there is nothing to test)."""
    return _all(tuple(t.holds for t in tests)) if tests else None


def disjunction(tests: tuple[Test, ...]) -> Callable[[Facts], bool] | None:
    """One callable for ``any(tests)`` (None when there is nothing to test)."""
    return _any(tuple(t.holds for t in tests)) if tests else None


# Evaluation runs for every candidate route of every report: one or two tests are the common
# case, and calling them directly instead of through all()/any() over a generator took 1,000
# rules from 24.2 to 22.0 us per report (bench/rules_scale.py, x1.99 -> x1.75 of 10 rules).
def _joined(checks: tuple[Callable[[Any], bool], ...], every: bool) -> Callable[[Any], bool]:
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        a, b = checks
        return (lambda x: a(x) and b(x)) if every else (lambda x: a(x) or b(x))
    return (lambda x: all(c(x) for c in checks)) if every else (lambda x: any(c(x) for c in checks))


def _all(checks: tuple[Callable[[Any], bool], ...]) -> Callable[[Any], bool]:
    return _joined(checks, every=True)


def _any(checks: tuple[Callable[[Any], bool], ...]) -> Callable[[Any], bool]:
    return _joined(checks, every=False)


# --- compiling --------------------------------------------------------------------------


def compile_matcher(m: Matchers, scope: frozenset[Source], loc: Loc, problems: Problems) -> Matcher:
    """``m`` as tests. ``scope``: the sources whose details a ``details`` path may name."""
    if m.source is not None:
        scope = frozenset(m.source)
    tests: list[Test] = []
    for key, value in m.given().items():
        where = (*loc, key)
        if key in ("source", "category"):
            tests.append(_member_of_pair(key, frozenset(value)))
        elif key == "urgency":
            urgencies = frozenset(value)
            tests.append(Test(key, lambda f, s=urgencies: f.urgency in s))
        elif key in ("any_minor", "any_foreign", "any_disability"):
            tests.append(Test(key, lambda f, k=key, v=value: getattr(f, k) == v))
        elif key == "indicators":
            tests.extend(_indicators(value))
        elif key == "township":
            towns = frozenset(value)
            tests.append(Test(key, lambda f, s=towns: f.township in s))
        elif key == "subject":
            tests.append(_subject(value))
        elif key == "location":
            tests.extend(_location(value))
        elif key == "details":
            for path, test in value.items():
                try:
                    ops = detail_fields.resolve(path, test, scope)
                except ValueError as exc:
                    problems.append(((*where, path), str(exc)))
                    continue
                tests.append(_detail(path, ops))
        elif key in ("any", "all"):
            parts = tuple(compile_matcher(e, scope, (*where, i), problems) for i, e in enumerate(value))
            tests.append(_combine(key, parts))
        elif key == "not":
            part = compile_matcher(value, scope, where, problems)
            tests.append(
                Test(
                    "not", lambda f, p=part: not p.holds(f), lambda s, c, p=part: ALWAYS - p.all_on_pair(s, c), (part,)
                )
            )
        else:  # pragma: no cover - every key of Matchers is handled above
            raise AssertionError(f"matcher '{key}' has no meaning")
    return Matcher(tuple(tests))


def _member_of_pair(key: str, values: frozenset[Any]) -> Test:
    if key == "source":
        return Test(key, lambda f: f.source in values, lambda s, c: ALWAYS if s in values else NEVER)
    return Test(key, lambda f: f.category in values, lambda s, c: ALWAYS if c in values else NEVER)


def _indicators(value: frozenset[Any] | IndicatorSet) -> list[Test]:
    if not isinstance(value, IndicatorSet):
        value = IndicatorSet(any=value)
    tests = []
    if value.any is not None:
        anyof = frozenset(i.value for i in value.any)
        tests.append(Test("indicators.any", lambda f: not anyof.isdisjoint(f.indicators)))
    if value.all is not None:
        allof = frozenset(i.value for i in value.all)
        tests.append(Test("indicators.all", lambda f: allof <= f.indicators))
    if value.none is not None:
        noneof = frozenset(i.value for i in value.none)
        tests.append(Test("indicators.none", lambda f: noneof.isdisjoint(f.indicators)))
    return tests


def _combine(key: str, parts: tuple[Matcher, ...]) -> Test:
    each = tuple(_all(tuple(t.holds for t in p.tests)) for p in parts)
    if key == "any":
        return Test(key, _any(each), lambda s, c: max(p.all_on_pair(s, c) for p in parts), parts)
    return Test(key, _all(each), lambda s, c: min(p.all_on_pair(s, c) for p in parts), parts)


def _subject(m: SubjectMatch) -> Test:
    preds: list[Callable[[SubjectFacts], bool]] = []
    if m.role is not None:
        roles = frozenset(r.value for r in m.role)
        preds.append(lambda s: s.role in roles)
    if m.minor is not None:
        preds.append(lambda s: s.minor == m.minor)
    if m.age is not None:
        preds.append(_age(m.age))
    if m.age_band is not None:
        bands = frozenset(b.value for b in m.age_band)
        preds.append(lambda s: s.age_band in bands)
    if m.sex is not None:
        sexes = frozenset(x.value for x in m.sex)
        preds.append(lambda s: s.sex in sexes)
    if m.foreign is not None:
        preds.append(lambda s: s.foreign == m.foreign)
    if m.nationality is not None:
        countries = frozenset(m.nationality)
        preds.append(lambda s: s.nationality in countries)
    if m.disability is not None:
        kinds = frozenset(str(getattr(d, "value", d)) for d in m.disability)
        any_kind = "any" in kinds
        preds.append(lambda s: s.disability in kinds or (any_kind and s.has_disability))
    if m.has_id is not None:
        preds.append(lambda s: s.has_id == m.has_id)
    one = _all(tuple(preds))
    return Test("subject", lambda f: any(one(s) for s in f.subjects))


def _age(cmp: NumberCompare) -> Callable[[SubjectFacts], bool]:
    """The exact age satisfies every comparison; without one, every age of the band does."""
    ops = [(op, n) for op, n in cmp if n is not None]

    def certain(lo: int, hi: int) -> bool:
        for op, n in ops:
            if not {"eq": lo == hi == n, "lt": hi < n, "le": hi <= n, "gt": lo > n, "ge": lo >= n}[op]:
                return False
        return True

    def pred(s: SubjectFacts) -> bool:
        if s.age is not None:
            return certain(s.age, s.age)
        bounds = AgeBand(s.age_band).bounds
        return bounds is not None and certain(*bounds)

    return pred


_LOCATION_ATTR = {"district_code": "district", "township_code": "township", "village_code": "village"}


def _location(m: LocationMatch) -> list[Test]:
    tests = []
    for key, attr in _LOCATION_ATTR.items():
        value = getattr(m, key)
        if value is None:
            continue
        if isinstance(value, Prefix):
            prefixes = tuple(sorted(value.prefix))
            tests.append(
                Test(
                    f"location.{key}",
                    lambda f, a=attr, p=prefixes: (code := getattr(f, a)) is not None and code.startswith(p),
                )
            )
        else:
            codes = frozenset(value)
            tests.append(Test(f"location.{key}", lambda f, a=attr, c=codes: getattr(f, a) in c))
    return tests


def detail_value(details: Any, parts: tuple[str, ...]) -> Any:
    """The value at a path of a details model or mapping, as JSON would hold it (None when absent)."""
    value = details
    for part in parts:
        if value is None:
            return None
        value = value.get(part) if isinstance(value, dict) else getattr(value, part, None)
    if isinstance(value, list | tuple):
        return [getattr(v, "value", v) for v in value]
    return getattr(value, "value", value)


def _detail(path: str, ops: dict[str, Any]) -> Test:
    parts = tuple(path.split("."))
    checks: list[Callable[[Any], bool]] = []
    for op, x in ops.items():
        checks.append(_OPS[op](x))
    check = _all(tuple(checks))

    def holds(facts: Facts) -> bool:
        return check(detail_value(facts.details, parts))

    return Test(f"details.{path}", holds)


def _present(x: bool) -> Callable[[Any], bool]:
    return lambda v: (v is not None and v != []) == x


def _ordered(compare: Callable[[Any, Any], bool]) -> Callable[[Any], Callable[[Any], bool]]:
    return lambda x: lambda v: v is not None and not isinstance(v, list) and compare(v, x)


_OPS: dict[str, Callable[[Any], Callable[[Any], bool]]] = {
    "eq": lambda x: lambda v: v == x,
    "ne": lambda x: lambda v: v != x,
    "in": lambda x: lambda v: not isinstance(v, list) and v in x,
    "not_in": lambda x: lambda v: isinstance(v, list) or v not in x,
    "lt": _ordered(lambda v, x: v < x),
    "le": _ordered(lambda v, x: v <= x),
    "gt": _ordered(lambda v, x: v > x),
    "ge": _ordered(lambda v, x: v >= x),
    "present": _present,
    "contains": lambda x: lambda v: isinstance(v, list) and x in v,
    "contains_any": lambda x: lambda v: isinstance(v, list) and not x.isdisjoint(v),
    "contains_other_than": lambda x: lambda v: isinstance(v, list) and any(e != x for e in v),
}
