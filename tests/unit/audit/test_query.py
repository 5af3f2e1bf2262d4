"""`cluebus audit`'s question and its join of access records with routing decisions (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from schemas import AccessEvent, RoutingDecision
from schemas.examples import load_examples
from services.audit.query import AuditQuery, AuditQueryError, join, parse_since, select

DECISION = RoutingDecision.model_validate(load_examples("v1", "events")["routing-decision"])
T0 = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)


def opened(department: str, by: str, minutes: int, groups=("subjects",)) -> AccessEvent:
    recipient = next(r for r in DECISION.recipients if r.department == department)
    return AccessEvent(
        referral_id=recipient.referral_id,
        report_id=DECISION.report_id,
        department=department,
        by=by,
        channel="console",
        field_groups=groups,
        at=T0 + timedelta(minutes=minutes),
    )


def test_since_takes_dates_times_and_spans():
    now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    assert parse_since("24h", now) == now - timedelta(hours=24)
    assert parse_since("7d", now) == now - timedelta(days=7)
    assert parse_since("2026-11-20", now) == datetime(2026, 11, 20, tzinfo=UTC)
    assert parse_since("2026-11-20T08:00:00+08:00", now) == datetime(2026, 11, 20, tzinfo=UTC)
    with pytest.raises(AuditQueryError, match="span such as 24h"):
        parse_since("yesterday", now)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "say what to list"),
        ({"referral": "abc"}, "not a referral id"),
        ({"report": "123"}, "not a report id"),
        ({"user": "Zhang San"}, "not a staff id"),
    ],
)
def test_a_malformed_question_is_refused(kwargs, message):
    with pytest.raises(AuditQueryError, match=message):
        AuditQuery(**kwargs)


def test_select_filters_deduplicates_and_orders():
    departments = [r.department for r in DECISION.recipients]
    a, b = departments[0], departments[1]
    events = [opened(a, "u.1", 5), opened(b, "u.2", 1), opened(a, "u.1", 5), opened(a, "u.2", 9)]
    assert [e.by for e in select(events, AuditQuery(report=DECISION.report_id))] == ["u.2", "u.1", "u.2"]
    assert [e.department for e in select(events, AuditQuery(user="u.2"))] == [b, a]
    referral = events[0].referral_id
    assert len(select(events, AuditQuery(referral=referral[:8]))) == 2
    later = AuditQuery(user="u.2", since=T0 + timedelta(minutes=2))
    assert [e.department for e in select(events, later)] == [a]


def test_join_puts_the_decision_s_field_names_beside_each_record():
    department = DECISION.recipients[0].department
    granted = sorted({f.split(".")[0] for f in DECISION.recipients[0].fields})
    fine = opened(department, "u.1", 1, groups=tuple(granted[:1]))
    beyond = opened(department, "u.1", 2, groups=(granted[0], "zzz_not_sent"))
    rows = join([fine, beyond], [DECISION])
    assert rows[0].sent == DECISION.recipients[0] and rows[0].decision == DECISION
    assert rows[0].groups_beyond_grant == ()
    assert rows[1].groups_beyond_grant == ("zzz_not_sent",)
    assert join([fine], [])[0].sent is None  # the decision not found is said, not guessed


def test_the_listing_shows_each_grant_s_reason_and_what_was_withheld_beside_the_access(capsys):
    from services.audit.cli import _print_table

    education = next(r for r in DECISION.recipients if r.department == "education")
    grants = DECISION.grants_of(education)
    assert grants and education.withheld  # the example decision records them
    (row,) = join([opened("education", "clerk.0007", 1)], [DECISION])
    assert row.grants == grants
    _print_table([row])
    out = capsys.readouterr().out
    access, sent = out.split("what the routing decisions sent")
    assert "clerk.0007" in access and "education" in access
    for grant in grants:
        assert f"      {grant.describe()}" in sent
    assert "withheld: the identity of suspect" in sent
    assert "withheld: free text (details.pick_up_description, location.description, narrative" in sent


def test_a_decision_made_before_grants_were_recorded_is_said_so(capsys):
    from services.audit.cli import _print_table

    old = DECISION.model_copy(
        update={
            "grants": (),
            "recipients": tuple(r.model_copy(update={"grants_applied": ()}) for r in DECISION.recipients),
        }
    )
    _print_table(join([opened("education", "clerk.0007", 1)], [old]))
    assert "decided before grants were recorded" in capsys.readouterr().out
