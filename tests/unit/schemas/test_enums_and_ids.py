"""Enumerations' helpers and the derived ids."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from uuid import UUID, uuid5

import pytest

from schemas import (
    NAMESPACE_CLUEBUS,
    Ack,
    AgeBand,
    Category,
    DeadLetter,
    Indicator,
    Priority,
    ReportStatus,
    Stage,
    Urgency,
    ack_id_for,
    dead_letter_id_for,
    escalation_id_for,
    referral_id_for,
)
from schemas.examples import load_examples

REPORT_ID = "019aa0f2-0009-7000-8000-000000000009"


@pytest.mark.parametrize(
    "age, band",
    [
        (0, "0-5"),
        (5, "0-5"),
        (6, "6-13"),
        (13, "6-13"),
        (14, "14-17"),
        (17, "14-17"),
        (18, "18-29"),
        (29, "18-29"),
        (30, "30-59"),
        (59, "30-59"),
        (60, "60+"),
        (120, "60+"),
    ],
)
def test_age_bands_have_these_edges(age, band):
    assert AgeBand.for_age(age) == AgeBand(band)
    assert AgeBand(band).is_minor is (age < 18)
    assert AgeBand(band).is_under_14 is (age < 14)


def test_unknown_age_band_is_not_a_minor():
    assert not AgeBand.unknown.is_minor and not AgeBand.unknown.is_under_14


def test_priority_and_urgency_rank_critical_highest():
    assert [p.rank for p in (Priority.normal, Priority.high, Priority.critical)] == [0, 1, 2]
    assert sorted(Urgency, key=lambda u: u.rank) == [Urgency.normal, Urgency.high, Urgency.critical]
    assert Priority.highest(Urgency.high, Priority.normal, "critical") == Priority.critical
    assert Priority.highest(Urgency.normal, Urgency.high) == Priority.high
    assert Priority.highest() == Priority.normal
    assert Priority.of(Urgency.high) is Priority.high


ALLOWED = {
    ("routed", "received"),
    ("routed", "accepted"),
    ("routed", "declined"),
    ("received", "accepted"),
    ("received", "declined"),
    ("accepted", "completed"),
}


@pytest.mark.parametrize("before", list(Stage))
@pytest.mark.parametrize("after", list(Stage))
def test_stage_moves_only_forward_on_the_legal_paths(before, after):
    assert before.can_move_to(after) is ((before.value, after.value) in ALLOWED)
    if before.can_move_to(after):
        assert after.rank > before.rank


def test_terminal_stages():
    assert {s for s in Stage if s.terminal} == {Stage.declined, Stage.completed}
    assert Stage.declined.next_stages == frozenset()


def test_the_stage_enum_owns_open_stages_and_the_clock_each_waits_on():
    from schemas.enums import OPEN_STAGES, DueStage

    assert OPEN_STAGES == (Stage.routed, Stage.received, Stage.accepted)
    assert {s: s.waiting_on for s in Stage} == {
        Stage.routed: DueStage.received,
        Stage.received: DueStage.decided,
        Stage.accepted: DueStage.completed,
        Stage.declined: None,
        Stage.completed: None,
    }
    assert [s for s in Stage if s.undecided] == [Stage.routed, Stage.received]


def test_indicators_include_the_eleven_ilo_indicators_first():
    ilo = [
        "abuse_of_vulnerability",
        "deception",
        "restriction_of_movement",
        "isolation",
        "physical_sexual_violence",
        "intimidation_threats",
        "retention_of_identity_documents",
        "withholding_of_wages",
        "debt_bondage",
        "abusive_working_conditions",
        "excessive_overtime",
    ]
    assert [i.value for i in Indicator][:11] == ilo


@pytest.mark.parametrize("enum", [Category, Indicator], ids=lambda e: e.__name__)
def test_every_category_and_indicator_is_documented_in_the_source(enum):
    """Each member has a ``#:`` line above it (what it means; shown by documentation tools)."""
    import inspect

    lines = [ln.strip() for ln in inspect.getsource(enum).splitlines()]
    for member in enum:
        at = lines.index(f'{member.name} = "{member.value}"')
        assert lines[at - 1].startswith("#: ") and len(lines[at - 1]) > 8, member


def test_referral_id_is_the_documented_uuid5():
    expected = str(uuid5(UUID("6f1d2c1e-5b7a-4c35-9a43-6c7a3b0f2e91"), f"{REPORT_ID}/police"))
    assert NAMESPACE_CLUEBUS == UUID("6f1d2c1e-5b7a-4c35-9a43-6c7a3b0f2e91")
    assert referral_id_for(REPORT_ID, "police") == expected == referral_id_for(REPORT_ID, "police")
    assert referral_id_for(REPORT_ID, "education") != expected
    assert referral_id_for("019aa0f2-0009-7000-8000-00000000000a", "police") != expected


def test_every_derived_id_equals_the_stdlib_uuid5_of_its_name():
    ns = UUID("6f1d2c1e-5b7a-4c35-9a43-6c7a3b0f2e91")
    referral = referral_id_for(REPORT_ID, "police")
    names = {
        referral: f"{REPORT_ID}/police",
        ack_id_for(referral, "accepted"): f"ack/{referral}/accepted",
        escalation_id_for(referral, "decided", 2, 1): f"escalation/{referral}/decided/2/1",
        escalation_id_for(referral, "decided", 1, 0, "lead_declined"): (
            f"escalation/{referral}/decided/1/0/lead_declined"
        ),
        dead_letter_id_for("router", "t", 2, 9): "dead/router/t/2/9",
    }
    for department in ("police", "education", "civil_affairs", "部门", "x" * 40):
        for report_id in (REPORT_ID, "019aa0f2-0009-7000-8000-00000000000a"):
            names[referral_id_for(report_id, department)] = f"{report_id}/{department}"
    for derived, name in names.items():
        assert derived == str(uuid5(ns, name)), name


def test_derived_ids_differ_by_every_input():
    referral = referral_id_for(REPORT_ID, "police")
    acks = {ack_id_for(referral, s) for s in ("received", "accepted", "declined", "completed")}
    escalations = {
        escalation_id_for(referral, s, level, repeat)
        for s in ("received", "decided")
        for level in (1, 2)
        for repeat in (0, 1)
    }
    assert len(acks) == 4 and len(escalations) == 8 and not acks & escalations


def test_ack_id_is_derived_when_absent_and_stable():
    data = {k: v for k, v in load_examples("v1", "events")["ack-accepted"].items() if k != "ack_id"}
    ack = Ack.model_validate(data)
    assert ack.ack_id == ack_id_for(data["referral_id"], "accepted") == Ack.model_validate(data).ack_id
    assert Ack.model_validate({**data, "ack_id": None}).ack_id == ack.ack_id


def test_dead_letter_keeps_the_bytes_and_its_summary_shows_none_of_them():
    secret = "示例女子丙 13800000000".encode()
    letter = DeadLetter.of(
        service="router",
        topic="cluebus.reports.hospital",
        partition=1,
        offset=9,
        key=b"report-key",
        value=secret,
        error_type="ValidationError",
        error="subjects.0.age: Input should be a valid integer",
        at=datetime.now(UTC),
    )
    assert letter.value() == secret
    summary = json.dumps(letter.summary(), ensure_ascii=False)
    assert "示例" not in summary and "138" not in summary and letter.value_b64 not in summary
    assert "report-key" not in summary and base64.b64encode(b"report-key").decode() not in summary
    assert json.loads(summary)["value_bytes"] == len(secret)
    again = DeadLetter.of(
        service="router",
        topic="cluebus.reports.hospital",
        partition=1,
        offset=9,
        key=None,
        value=b"",
        error_type="X",
        error="y",
        at=datetime.now(UTC),
    )
    assert again.dead_letter_id == letter.dead_letter_id and again.summary()["key_bytes"] is None


def test_report_status_newer_than_compares_seq_of_the_same_report():
    status = ReportStatus.model_validate(load_examples("v1", "events")["report-status"])
    later = status.model_copy(update={"seq": status.seq + 1})
    assert later.newer_than(status) and not status.newer_than(later) and not status.newer_than(status)
    assert status.newer_than(None)
