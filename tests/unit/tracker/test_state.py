"""The tracker's state machine: lifecycle, clocks, escalation, recovery semantics."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from schemas import Ack, RoutingDecision, parse_report
from schemas.examples import load_examples
from services.router.routing import route_report
from services.rules import parse_rules
from services.tracker import codec
from services.tracker.index import DueIndex, Outstanding
from services.tracker.state import Tracker, TrackerPolicy

REPO = Path(__file__).resolve().parents[3]
# The shipped rules with short clocks for every priority and a quick two-level chain.
RULES_TEXT = (REPO / "routing_rules.toml").read_text()
for prio in ("critical", "high", "normal"):
    RULES_TEXT = RULES_TEXT.replace(f"[defaults.clocks.{prio}]\n", f"[defaults.clocks.{prio}]\n# test\n")
RULES = parse_rules(
    RULES_TEXT.replace('received = "15m"', 'received = "60s"')
    .replace('decided = "1h"', 'decided = "120s"')
    .replace('received = "1h"', 'received = "60s"')
    .replace('decided = "4h"', 'decided = "120s"')
    .replace('received = "4h"', 'received = "60s"')
    .replace('decided = "1d"', 'decided = "120s"')
    .replace('received = "5m"', 'received = "60s"')
    .replace('decided = "15m"', 'decided = "120s"'),
    "test-rules.toml",
)
T0 = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)


def report(name: str):
    return parse_report(json.dumps(load_examples("v1", "reports")[name]))


def decision_for(name: str, routed_at: datetime = T0) -> RoutingDecision:
    rep = report(name).model_copy(update={"received_at": routed_at})
    return route_report(RULES, rep, routed_at).decision


def ack(decision: RoutingDecision, department: str, stage: str, at: datetime, **extra) -> Ack:
    recipient = next(r for r in decision.recipients if r.department == department)
    fields = {
        "referral_id": recipient.referral_id,
        "report_id": decision.report_id,
        "department": department,
        "stage": stage,
        "by": "staff.1",
        "at": at.isoformat(),
        **extra,
    }
    return Ack.model_validate(fields)


@pytest.fixture
def tracker() -> Tracker:
    return Tracker(lambda: RULES, TrackerPolicy(unknown_ack_grace_s=30, closed_retention_s=3600))


def epoch(moment: datetime) -> float:
    return moment.timestamp()


def test_decision_opens_one_referral_per_recipient(tracker):
    decision = decision_for("hospital-suspected_trafficking_woman")
    out = tracker.on_decision(None, decision, 2, epoch(T0))
    assert set(out.track.refs) == {r.department for r in decision.recipients}
    assert all(r.stage == "routed" for r in out.track.refs.values())
    # The tracker writes the report's first status: it now holds the report's clocks.
    assert out.changed and out.status.seq == 0 and not out.escalations
    assert {d.stage.value for d in out.status.departments} == {"routed"}
    # The first escalation level fires at the received clock (60 s, 24/7 for police).
    assert out.next_check == pytest.approx(epoch(T0) + 60)
    again = tracker.on_decision(out.track, decision, 2, epoch(T0) + 5)
    assert not again.changed  # a repeated decision (at-least-once router) changes nothing


def test_lifecycle_records_each_stage_once(tracker):
    decision = decision_for("hospital-suspected_trafficking_woman")
    track = tracker.on_decision(None, decision, 0, epoch(T0)).track
    out = tracker.on_ack(track, ack(decision, "police", "received", T0 + timedelta(seconds=10)), epoch(T0) + 10)
    assert out.changed and out.status.seq == 1
    assert [(o.kind, o.stage, o.seconds) for o in out.observations] == [("ack", "received", 10.0)]
    police = {d.department: d for d in out.status.departments}["police"]
    assert police.stage.value == "received"

    dup = tracker.on_ack(track, ack(decision, "police", "received", T0 + timedelta(seconds=11)), epoch(T0) + 11)
    assert not dup.changed and dup.status is None and not dup.rejections

    out = tracker.on_ack(track, ack(decision, "police", "accepted", T0 + timedelta(seconds=30)), epoch(T0) + 30)
    assert out.status.seq == 2
    out = tracker.on_ack(
        track,
        ack(decision, "police", "completed", T0 + timedelta(days=2), outcome_code="case_opened", outcome="x"),
        epoch(T0 + timedelta(days=2)),
    )
    police = {d.department: d for d in out.status.departments}["police"]
    assert police.stage.value == "completed" and police.outcome_code.value == "case_opened"
    assert track.closed_at is None  # the other departments are still open


@pytest.mark.parametrize(
    "steps, last, reason",
    [
        ([("accepted", {})], ("received", {}), "stage_backwards"),
        ([("accepted", {})], ("declined", {"reason_code": "other", "reason": "x"}), "stage_backwards"),
        ([], ("completed", {"outcome_code": "case_opened", "outcome": "x"}), "not_accepted"),
        ([("received", {})], ("completed", {"outcome_code": "case_opened", "outcome": "x"}), "not_accepted"),
        ([("declined", {"reason_code": "not_in_remit", "reason": "x"})], ("accepted", {}), "referral_closed"),
    ],
)
def test_invalid_transitions_are_rejected_with_the_reason(tracker, steps, last, reason):
    decision = decision_for("hospital-suspected_trafficking_woman")
    track = tracker.on_decision(None, decision, 0, epoch(T0)).track
    for stage, extra in steps:
        assert not tracker.on_ack(track, ack(decision, "civil_affairs", stage, T0, **extra), epoch(T0)).rejections
    stage, extra = last
    out = tracker.on_ack(track, ack(decision, "civil_affairs", stage, T0, **extra), epoch(T0))
    assert [r.reason for r in out.rejections] == [reason]
    assert out.status is None


def test_child_trafficking_acceptance_needs_a_case_owner(tracker):
    decision = decision_for("school-suspected_trafficking_child")
    track = tracker.on_decision(None, decision, 0, epoch(T0)).track
    out = tracker.on_ack(track, ack(decision, "police", "accepted", T0), epoch(T0))
    assert [r.reason for r in out.rejections] == ["case_owner_required"]
    out = tracker.on_ack(track, ack(decision, "police", "accepted", T0, case_owner="inspector.7"), epoch(T0))
    assert not out.rejections and track.refs["police"].stage == "accepted"
    # A department whose acceptance needs no owner may accept without one.
    out = tracker.on_ack(track, ack(decision, "education", "accepted", T0), epoch(T0))
    assert not out.rejections


def test_unknown_and_misdirected_acknowledgements(tracker):
    decision = decision_for("hospital-suspected_trafficking_woman")
    track = tracker.on_decision(None, decision, 0, epoch(T0)).track
    police = ack(decision, "police", "received", T0)
    wrong_dept = police.model_copy(update={"department": "education"})
    assert [r.reason for r in tracker.on_ack(track, wrong_dept, epoch(T0)).rejections] == ["wrong_department"]
    no_such = police.model_copy(update={"department": "court", "referral_id": "x"})
    assert [r.reason for r in tracker.on_ack(track, no_such, epoch(T0)).rejections] == ["unknown_referral"]


def test_lead_decline_escalates_at_once_cooperating_decline_does_not(tracker):
    decision = decision_for("labour-child_labour")  # police lead, womens_federation cooperating
    track = tracker.on_decision(None, decision, 0, epoch(T0)).track
    out = tracker.on_ack(
        track, ack(decision, "womens_federation", "declined", T0, reason_code="not_in_remit", reason="x"), epoch(T0)
    )
    assert not out.escalations  # cooperating
    out = tracker.on_ack(
        track, ack(decision, "police", "declined", T0, reason_code="handled_elsewhere", reason="x"), epoch(T0)
    )
    assert [(e.reason.value, e.target, e.level) for e in out.escalations] == [("declined_by_lead", "joint_meeting", 1)]
    assert {o.kind for o in out.observations} == {"decline", "escalation", "ack"}


def test_overdue_referral_escalates_level_by_level_then_repeats_then_stops(tracker):
    decision = decision_for("hospital-suspected_trafficking_woman")  # police chain: 0s, 30m, 2h; repeat 1h
    track = tracker.on_decision(None, decision, 0, epoch(T0)).track
    due = epoch(T0) + 60

    def tick(at: float):
        return tracker.on_tick(track, at)

    assert not tick(due - 1).escalations
    first = tick(due + 1)
    police = [e for e in first.escalations if e.department == "police"]
    assert [(e.level, e.repeat, e.target, e.stage_overdue.value) for e in police] == [
        (1, 0, "police.duty_supervisor", "received")
    ]
    assert ("overdue", "police", "received") in {(o.kind, o.department, o.stage) for o in first.observations}
    assert not [e for e in tick(due + 29 * 60).escalations if e.department == "police"]
    second = [e for e in tick(due + 30 * 60 + 1).escalations if e.department == "police"]
    assert [(e.level, e.target) for e in second] == [(2, "police.command_centre")]
    third = [e for e in tick(due + 2 * 3600 + 1).escalations if e.department == "police"]
    assert [(e.level, e.target) for e in third] == [(3, "joint_meeting")]
    repeat = [e for e in tick(due + 3 * 3600 + 1).escalations if e.department == "police"]
    assert [(e.level, e.repeat) for e in repeat] == [(3, 1)]
    ids = {e.escalation_id for e in police + second + third + repeat}
    assert len(ids) == 4
    # Acknowledged: the received clock stops escalating; the decided clock is next.
    tracker.on_ack(track, ack(decision, "police", "received", T0 + timedelta(hours=3, minutes=2)), due + 3 * 3600 + 60)
    assert not [
        e for e in tick(due + 5 * 3600).escalations if e.department == "police" and e.stage_overdue.value == "received"
    ]


def test_a_restart_never_repeats_a_level(tracker):
    decision = decision_for("hospital-suspected_trafficking_woman")
    track = tracker.on_decision(None, decision, 0, epoch(T0)).track
    first = tracker.on_tick(track, epoch(T0) + 61)
    assert first.escalations
    restored = codec.decode(codec.encode(track))  # what the changelog gives back
    assert restored == track
    assert not tracker.on_tick(restored, epoch(T0) + 62).escalations


def test_after_an_outage_every_level_fires_but_only_the_latest_repeat(tracker):
    decision = decision_for("hospital-suspected_trafficking_woman")
    track = tracker.on_decision(None, decision, 0, epoch(T0)).track
    out = tracker.on_tick(track, epoch(T0) + 60 + 10 * 3600)
    police = [(e.level, e.repeat) for e in out.escalations if e.department == "police"]
    assert police == [(1, 0), (2, 0), (3, 0), (3, 8)]


def test_an_ack_before_its_decision_waits_then_applies(tracker):
    decision = decision_for("hospital-suspected_trafficking_woman")
    early = ack(decision, "police", "received", T0)
    out = tracker.on_ack(None, early, epoch(T0), origin=("acks", 1, 42, early.model_dump_json().encode()))
    assert out.changed and not out.rejections and out.next_check == pytest.approx(epoch(T0) + 30)
    applied = tracker.on_decision(out.track, decision, 1, epoch(T0) + 1)
    assert applied.track.refs["police"].stage == "received" and applied.status.seq == 0  # the first status


def test_an_ack_whose_decision_never_comes_is_dead_lettered_after_the_grace(tracker):
    decision = decision_for("hospital-suspected_trafficking_woman")
    early = ack(decision, "police", "received", T0)
    track = tracker.on_ack(None, early, epoch(T0), origin=("acks", 1, 42, b"{}")).track
    assert not tracker.on_tick(track, epoch(T0) + 29).rejections
    out = tracker.on_tick(track, epoch(T0) + 31)
    assert out.delete and [(r.reason, r.topic, r.offset) for r in out.rejections] == [("unknown_referral", "acks", 42)]


def test_a_closed_report_is_kept_for_the_retention_then_dropped(tracker):
    decision = decision_for("venue-other")
    track = tracker.on_decision(None, decision, 0, epoch(T0)).track
    for department in list(track.refs):
        out = tracker.on_ack(
            track, ack(decision, department, "declined", T0, reason_code="other", reason="x"), epoch(T0)
        )
    assert track.closed_at == epoch(T0) and out.next_check == epoch(T0) + 3600
    assert not tracker.on_tick(track, epoch(T0) + 3599).delete
    assert tracker.on_tick(track, epoch(T0) + 3600).delete


def test_indexes_count_outstanding_and_find_the_oldest():
    index = Outstanding()
    decision = decision_for("hospital-suspected_trafficking_woman")
    tracker = Tracker(lambda: RULES)
    a = tracker.on_decision(None, decision, 0, epoch(T0)).track
    index.update(b"a", a, [])
    assert index.counts[("police", "routed")] == 1 and index.oldest("police", "routed") == epoch(T0)
    tracker.on_ack(a, ack(decision, "police", "received", T0 + timedelta(seconds=5)), epoch(T0) + 5)
    index.update(b"a", a, list(a.refs))
    assert index.counts[("police", "routed")] == 0 and index.counts[("police", "received")] == 1
    assert index.oldest("police", "routed") is None and index.oldest("police", "received") == epoch(T0) + 5
    index.update(b"a", None, list(a.refs))
    assert len(index) == 0 and not index.groups()

    due = DueIndex()
    due.schedule(b"x", 10.0)
    due.schedule(b"y", 5.0)
    due.schedule(b"x", 3.0)  # moved earlier; the old entry is stale
    assert due.pop_due(4.0) == [b"x"] and due.pop_due(20.0) == [b"y"] and due.pop_due(30.0) == []
