"""From one report to its referrals and its routing decision (pure, no I/O).

``encode_report`` gives the bytes the router sends: one JSON ``Referral`` per recipient and
the ``RoutingDecision``, written straight from the rules' plan with orjson, in the models'
field order, so they are byte for byte what ``dump_event`` gives for the same models
(``tests/unit/router/test_encoding.py`` holds them equal to the models built and dumped one by
one, as the router did before). Building and validating the models only to dump them cost
more than the routing itself (~320 us of ~1,000 us per report, 7.5 referrals on average with
the shipped rules); their invariants are the plan's, and the rules were validated at load.
``route_report`` gives the same outputs as validated models, for tools and tests.

The reporter's status sequence belongs to the tracker alone (its first status, seq 0, is
written when it takes the decision in): one writer, so the sequence is gap-free and ordered,
and a status is the proof that the tracker keeps the report's clocks (the reconciler checks it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from schemas import SCHEMA_VERSION, Referral, RoutingDecision, referral_id_for
from services.rules import CompiledRules
from services.rules.loader import RoutingPlan

# Times as pydantic writes them: UTC as "Z", microseconds only when there are some.
_OPTIONS = orjson.OPT_UTC_Z


@dataclass(frozen=True)
class EncodedReport:
    """What the router sends for one report: ``referrals[i]`` is the referral of ``plan.referrals[i]``."""

    plan: RoutingPlan
    referrals: tuple[bytes, ...]
    decision: bytes


@dataclass(frozen=True)
class RoutedReport:
    referrals: tuple[Referral, ...]
    decision: RoutingDecision


def encode_report(rules: CompiledRules, report: Any, routed_at: datetime) -> EncodedReport:
    """Everything the router emits for one report, as the JSON bytes of its events.

    Clocks start when the state took the report in (``received_at`` at the
    adapter), so a report that waited in an adapter's outbox is not given
    extra time, and processing the same report twice yields the same due times.
    """
    plan = rules.plan(report, report.received_at)
    result = plan.result
    report_id = report.report_id
    version = rules.version
    source, category = report.source.value, report.category.value
    dumps = orjson.dumps
    referrals = []
    recipients = []
    # Each grant recorded once in the decision. The copies' records are interned by the rules
    # (services/rules/grants.py), so identity finds the repeats without hashing models.
    positions: dict[int, int] = {}
    grants: list[orjson.Fragment] = []
    # Recipients that share a projected copy or due times (services/rules/loader.py) share their
    # JSON text too: each is written once per report.
    texts: dict[int, orjson.Fragment] = {}
    priority = result.priority.value
    for p in plan.referrals:
        copy = p.disclosure
        referral_id = referral_id_for(report_id, p.department)
        due_times = texts.get(id(p.due))  # received, decided, completed: the order of DueTimes
        if due_times is None:
            due_times = texts[id(p.due)] = orjson.Fragment(dumps(p.due, option=_OPTIONS))
        report_copy = texts.get(id(p.copy))
        if report_copy is None:
            report_copy = texts[id(p.copy)] = orjson.Fragment(dumps(p.copy, option=_OPTIONS))
        role = p.role.value
        applied = []
        for grant, grant_json in zip(copy.grants, copy.grant_fragments, strict=True):
            at = positions.get(id(grant))
            if at is None:
                at = positions[id(grant)] = len(grants)
                grants.append(grant_json)
            applied.append(at)
        referrals.append(
            dumps(
                {
                    "schema_version": SCHEMA_VERSION,
                    "referral_id": referral_id,
                    "report_id": report_id,
                    "department": p.department,
                    "role": role,
                    "priority": priority,
                    "source": source,
                    "category": category,
                    "routed_at": routed_at,
                    "rule_path": p.rule_path,
                    "rules_version": version,
                    "due": due_times,
                    "case_owner_required": p.case_owner_required,
                    "anonymised": p.anonymised,
                    "fields": copy.fields_fragment,
                    "grants": copy.grants_fragment,
                    "withheld": copy.withheld_fragment,
                    "report": report_copy,
                },
                option=_OPTIONS,
            )
        )
        recipients.append(
            {
                "department": p.department,
                "role": role,
                "referral_id": referral_id,
                "priority": priority,
                "rule_path": p.rule_path,
                "due": due_times,
                "case_owner_required": p.case_owner_required,
                "anonymised": p.anonymised,
                "fields": copy.fields_fragment,
                "grants_applied": applied,
                "withheld": copy.withheld_fragment,
            }
        )
    decision = dumps(
        {
            "schema_version": SCHEMA_VERSION,
            "decision_id": report_id,
            "report_id": report_id,
            "source": source,
            "source_system": report.source_system,
            "category": category,
            "urgency": report.urgency.value,
            "priority": result.priority.value,
            "rules_version": version,
            "decided_at": routed_at,
            "fallback": result.fallback,
            "matched_routes": result.matched_paths,
            "matched_by": result.matched_by,
            "priority_route": result.priority_route,
            "recipients": recipients,
            "grants": grants,
        },
        option=_OPTIONS,
    )
    return EncodedReport(plan=plan, referrals=tuple(referrals), decision=decision)


def route_report(rules: CompiledRules, report: Any, routed_at: datetime) -> RoutedReport:
    """The outputs of :func:`encode_report` as validated models (for tools and tests)."""
    out = encode_report(rules, report, routed_at)
    return RoutedReport(
        referrals=tuple(Referral.model_validate_json(b) for b in out.referrals),
        decision=RoutingDecision.model_validate_json(out.decision),
    )
