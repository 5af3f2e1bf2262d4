"""From one report to its referrals and its routing decision (pure, no I/O).

The reporter's status sequence belongs to the tracker alone (its first status, seq 0, is
written when it takes the decision in): one writer, so the sequence is gap-free and ordered,
and a status is the proof that the tracker keeps the report's clocks (the reconciler checks it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from schemas import (
    DueTimes,
    RecipientDecision,
    Referral,
    RoutingDecision,
    SharedGrant,
    referral_id_for,
)
from services.rules import CompiledRules


def _position(grant: SharedGrant, positions: dict[int, int], grants: list[SharedGrant]) -> int:
    at = positions.get(id(grant))
    if at is None:
        at = positions[id(grant)] = len(grants)
        grants.append(grant)
    return at


@dataclass(frozen=True)
class RoutedReport:
    referrals: tuple[Referral, ...]
    decision: RoutingDecision


def route_report(rules: CompiledRules, report, routed_at: datetime) -> RoutedReport:  # type: ignore[no-untyped-def]
    """Everything the router emits for one report: its referrals and its decision.

    Clocks start when the state took the report in (``received_at`` at the
    adapter), so a report that waited in an adapter's outbox is not given
    extra time, and processing the same report twice yields the same due times.
    """
    plan = rules.plan(report, report.received_at)
    referrals = []
    recipients = []
    # Each grant recorded once in the decision. The copies' records are interned by the rules
    # (services/rules/grants.py), so identity finds the repeats without hashing models.
    positions: dict[int, int] = {}
    grants: list[SharedGrant] = []
    for p in plan.referrals:
        referral_id = referral_id_for(report.report_id, p.department)
        due = DueTimes(**p.due)
        referrals.append(
            Referral(
                referral_id=referral_id,
                report_id=report.report_id,
                department=p.department,
                role=p.role,
                priority=p.priority,
                source=report.source,
                category=report.category,
                routed_at=routed_at,
                rule_path=p.rule_path,
                rules_version=rules.version,
                due=due,
                case_owner_required=p.case_owner_required,
                anonymised=p.anonymised,
                fields=p.fields,
                grants=p.disclosure.grants,
                withheld=p.disclosure.withheld,
                report=p.copy,
            )
        )
        recipients.append(
            RecipientDecision(
                department=p.department,
                role=p.role,
                referral_id=referral_id,
                priority=p.priority,
                rule_path=p.rule_path,
                due=due,
                case_owner_required=p.case_owner_required,
                anonymised=p.anonymised,
                fields=p.fields,
                grants_applied=tuple(_position(g, positions, grants) for g in p.disclosure.grants),
                withheld=p.disclosure.withheld,
            )
        )
    decision = RoutingDecision(
        decision_id=report.report_id,
        report_id=report.report_id,
        source=report.source,
        source_system=report.source_system,
        category=report.category,
        urgency=report.urgency,
        priority=plan.result.priority,
        rules_version=rules.version,
        decided_at=routed_at,
        fallback=plan.result.fallback,
        matched_routes=plan.result.matched_paths,
        matched_by=plan.result.matched_by,
        priority_route=plan.result.priority_route,
        recipients=tuple(recipients),
        grants=tuple(grants),
    )
    return RoutedReport(referrals=tuple(referrals), decision=decision)
