"""The reconciler's ledger: which published reports have no outcome (pure)."""

from __future__ import annotations

import pytest

from services.reconciler.ledger import Ledger, Published

T0 = 1_000_000.0  # seconds


def rec(report_id: str, at_s: float, offset: int = 0, partition: int = 0) -> Published:
    return Published(report_id, "school", "p.reports.school", partition, offset, int(at_s * 1000))


@pytest.fixture
def ledger() -> Ledger:
    return Ledger(grace_s=60, horizon_s=3600, redrive_every_s=300)


def ids(findings) -> list[str]:  # type: ignore[no-untyped-def]
    return [f.record.report_id for f in findings]


def test_a_report_without_decision_is_unrouted_only_after_the_grace_period(ledger):
    ledger.published(rec("a", T0))
    assert ids(ledger.unrouted(T0 + 59)) == []
    assert ids(ledger.unrouted(T0 + 61)) == ["a"]
    assert ledger.unrouted(T0 + 61)[0].age_s == pytest.approx(61)


@pytest.mark.parametrize("decision_first", [False, True], ids=["report-first", "decision-first"])
def test_a_decision_settles_its_report_in_either_order(ledger, decision_first):
    if decision_first:
        ledger.decided("a", int(T0 * 1000))
        ledger.published(rec("a", T0))
    else:
        ledger.published(rec("a", T0))
        ledger.decided("a", int(T0 * 1000))
    assert ledger.unrouted(T0 + 3000) == [] and ledger.settled == 1 and ledger.waiting == 0


@pytest.mark.parametrize("letter_first", [False, True], ids=["report-first", "letter-first"])
def test_a_dead_letter_naming_the_record_settles_it(ledger, letter_first):
    if letter_first:
        ledger.dead_lettered("p.reports.school", 0, 7, int(T0 * 1000))
        ledger.published(rec("a", T0, offset=7))
    else:
        ledger.published(rec("a", T0, offset=7))
        ledger.dead_lettered("p.reports.school", 0, 7, int(T0 * 1000))
    assert ledger.unrouted(T0 + 3000) == [] and ledger.settled == 1


def test_a_dead_letter_for_another_record_settles_nothing(ledger):
    ledger.published(rec("a", T0, offset=7))
    ledger.dead_lettered("p.reports.school", 0, 8, int(T0 * 1000))
    assert ids(ledger.unrouted(T0 + 61)) == ["a"]


def test_one_decision_settles_every_record_of_a_report_and_a_redriven_copy_can_be_dead_lettered(ledger):
    ledger.published(rec("a", T0, offset=1))
    ledger.published(rec("a", T0 + 100, offset=9))  # a relay retry or a re-drive: same id, later record
    assert ids(ledger.unrouted(T0 + 200)) == ["a"]  # the first record's age counts
    ledger.dead_lettered("p.reports.school", 0, 9, int(T0 * 1000))
    assert ledger.unrouted(T0 + 200) == [] and ledger.waiting == 0


def test_findings_come_oldest_first(ledger):
    for i, at in enumerate((T0 + 5, T0, T0 + 3)):
        ledger.published(rec(f"r{i}", at, offset=i))
    assert ids(ledger.unrouted(T0 + 100)) == ["r1", "r2", "r0"]


def test_a_redrive_is_due_once_then_again_only_after_the_interval(ledger):
    ledger.published(rec("a", T0))
    findings = ledger.unrouted(T0 + 61)
    assert ids(ledger.due_for_redrive(findings, T0 + 61)) == ["a"]
    ledger.redriven("a", T0 + 61)
    assert ledger.due_for_redrive(ledger.unrouted(T0 + 100), T0 + 100) == []
    again = ledger.unrouted(T0 + 400)
    assert again[0].redrives == 1
    assert ids(ledger.due_for_redrive(again, T0 + 400)) == ["a"]


def test_outcomes_whose_report_never_came_are_forgotten_after_the_horizon(ledger):
    ledger.decided("old", int(T0 * 1000))
    ledger.dead_lettered("p.reports.school", 0, 3, int(T0 * 1000))
    ledger.forget_before(T0 + 3601)
    ledger.published(rec("old", T0 + 3601))
    ledger.published(rec("x", T0 + 3601, offset=3))
    assert ids(ledger.unrouted(T0 + 3601 + 61)) == ["old", "x"]


def test_an_internal_failure_reopens_a_report_even_after_an_outcome(ledger):
    ledger.published(rec("a", T0, offset=4))
    ledger.decided("a", int(T0 * 1000))  # e.g. a status sent before the tracker's state write failed
    assert ledger.unrouted(T0 + 3000) == []
    ledger.failed(rec("a", T0 + 10, offset=4))
    assert ids(ledger.unrouted(T0 + 69)) == [] and ids(ledger.unrouted(T0 + 71)) == ["a"]
    assert ids(ledger.due_for_redrive(ledger.unrouted(T0 + 71), T0 + 71)) == ["a"]
    ledger.decided("a", int((T0 + 80) * 1000))  # the re-driven record went through
    assert ledger.unrouted(T0 + 3000) == []
