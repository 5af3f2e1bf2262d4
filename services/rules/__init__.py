"""Routing rules (``routing_rules.toml``): departments, clocks, escalation, the routing tree."""

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
