"""Routing rules (``routing_rules.toml``): departments, clocks, escalation, the routing tree.

``model`` / ``matchers``: the file's shape; ``detail_fields``: details paths per source;
``facts``: what a route sees of a report; ``predicates``: what each matcher means;
``engine``: the compiled tree; ``grants``: who sees what of whom and why, checked and
compiled; ``redaction``: the per-role copies; ``loader``: load, validate, plan; ``cases`` /
``explain`` / ``coverage`` / ``diff`` / ``history`` / ``privacy`` / ``cli``: the ``cluebus rules``
tools. Reference: ``docs/RULES.md``, ``docs/PRIVACY.md``.
"""

from services.rules.engine import RoutedRecipient, RouteResult
from services.rules.facts import Facts
from services.rules.loader import (
    CompiledRules,
    PlannedReferral,
    RoutingPlan,
    RulesError,
    load_rules,
    parse_rules,
)

__all__ = [
    "CompiledRules",
    "Facts",
    "PlannedReferral",
    "RouteResult",
    "RoutedRecipient",
    "RoutingPlan",
    "RulesError",
    "load_rules",
    "parse_rules",
]
