"""The router's outputs, written straight to bytes, are exactly the models it used to build and dump.

``reference`` below is how the router made its outputs before ``encode_report``: one validated
pydantic model per referral and per decision, dumped with ``dump_event``. The fast path must
give the same bytes for every report: the v1 examples, the corpus, generated submissions of
every sector (any script, optional blocks present or not, consent refused) and receipt times
in other zones than UTC.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import (
    SUBMISSION_MODELS,
    DueTimes,
    RecipientDecision,
    Referral,
    RoutingDecision,
    SharedGrant,
    dump_event,
    make_report,
    parse_report,
    referral_id_for,
)
from schemas.examples import load_examples
from services.common.ids import uuid7
from services.router.routing import encode_report, route_report
from services.rules import load_rules
from services.rules.inputs import as_report

from ..schemas.strategies import submissions

REPO = Path(__file__).resolve().parents[3]
RULES = load_rules(REPO / "routing_rules.toml")
ROUTED_AT = datetime(2026, 11, 30, 8, 15, 2, 250000, tzinfo=UTC)


def reference(rules, report, routed_at) -> tuple[list[bytes], bytes]:  # type: ignore[no-untyped-def]
    """The router's outputs as it built them before (models validated, then dumped)."""
    plan = rules.plan(report, report.received_at)
    referrals, recipients = [], []
    grants: list[SharedGrant] = []  # each grant once, in order of first use
    for p in plan.referrals:
        referral_id = referral_id_for(report.report_id, p.department)
        due = DueTimes(**p.due)
        common = dict(
            department=p.department,
            role=p.role,
            referral_id=referral_id,
            priority=p.priority,
            rule_path=p.rule_path,
            due=due,
            case_owner_required=p.case_owner_required,
            anonymised=p.anonymised,
            fields=p.fields,
            withheld=p.disclosure.withheld,
        )
        referrals.append(
            Referral(
                **common,
                report_id=report.report_id,
                source=report.source,
                category=report.category,
                routed_at=routed_at,
                rules_version=rules.version,
                grants=p.disclosure.grants,
                report=p.copy,
            )
        )
        applied = []
        for grant in p.disclosure.grants:
            if grant not in grants:
                grants.append(grant)
            applied.append(grants.index(grant))
        recipients.append(RecipientDecision(**common, grants_applied=tuple(applied)))
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
    return [dump_event(r) for r in referrals], dump_event(decision)


def assert_same_outputs(report, routed_at=ROUTED_AT) -> None:  # type: ignore[no-untyped-def]
    out = encode_report(RULES, report, routed_at)
    referrals, decision = reference(RULES, report, routed_at)
    assert list(out.referrals) == referrals
    assert out.decision == decision
    assert [json.loads(b)["department"] for b in out.referrals] == [p.department for p in out.plan.referrals]


def example_reports() -> list:
    return [parse_report(json.dumps(data)) for data in load_examples("v1", "reports").values()]


def corpus_reports() -> list:
    files = sorted((REPO / "tests" / "rules" / "corpus").rglob("*.json"))
    return [as_report(json.loads(f.read_text(encoding="utf-8"))) for f in files]


@pytest.mark.parametrize("report", example_reports(), ids=lambda r: f"{r.source.value}-{r.category.value}")
def test_the_examples_give_the_same_bytes(report):
    assert_same_outputs(report)


def test_the_corpus_gives_the_same_bytes():
    reports = corpus_reports()
    assert len(reports) >= 100
    for report in reports:
        assert_same_outputs(report)


@settings(max_examples=150, deadline=None)
@given(
    submissions(),
    st.sampled_from([UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5, minutes=-30))]),
    st.integers(0, 999_999),
    st.integers(0, 10**7),
)
def test_generated_reports_give_the_same_bytes(case, zone, micros, seconds):
    """Any script in the free text, every sector and consent, receipts in other zones, whole seconds."""
    source, data = case
    received = (datetime.now(UTC) + timedelta(seconds=seconds)).astimezone(zone)  # after reported_at
    report = make_report(
        SUBMISSION_MODELS[source].model_validate(data),
        source=source,
        report_id=uuid7(),
        source_system="sys-1",
        received_at=received.replace(microsecond=micros if micros % 3 else 0),
    )
    # As the router sees it: parsed back from the bytes the adapter wrote.
    assert_same_outputs(parse_report(report.model_dump_json()), ROUTED_AT + timedelta(microseconds=micros))


def test_route_report_validates_every_output_it_encodes():
    report = example_reports()[0]
    routed = route_report(RULES, report, ROUTED_AT)
    out = encode_report(RULES, report, ROUTED_AT)
    assert [dump_event(r) for r in routed.referrals] == list(out.referrals)
    assert dump_event(routed.decision) == out.decision
