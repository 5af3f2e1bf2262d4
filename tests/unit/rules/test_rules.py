"""Routing rules: loading, invariants, the tree's semantics, need-to-know copies."""

from datetime import UTC, datetime, timedelta
from pathlib import Path
from textwrap import dedent

import pytest
from hypothesis import given, settings

from schemas import SUBMISSION_MODELS, Priority, Role, Source, make_report
from schemas.examples import load_examples
from services.common.ids import uuid7
from services.rules import Facts, RulesError, load_rules, parse_rules
from services.rules.clocks import Calendar, parse_duration

from ..schemas.strategies import submissions
from .support import HEAD, rules_with

REPO = Path(__file__).resolve().parents[3]
RULES = load_rules(REPO / "routing_rules.toml")
REPORTS = load_examples("v1", "reports")
HEAD_LINES = HEAD.count("\n")  # a tree's first line (after its leading newline) is HEAD_LINES + 2


def facts(source="school", category="other", urgency="normal", **kw):
    return Facts(Source(source), category, urgency, **kw)


TREE = """
    [route]
    name = "root"
    recipients = [{ department = "police", role = "lead" }]

    [[route.routes]]
    name = "school"
    match.source = ["school"]
    recipients = [{ department = "education", role = "lead" }]

      [[route.routes.routes]]
      name = "dropout"
      match.category = ["school_dropout_risk"]
      priority = "high"
      recipients = [{ department = "hrss", role = "cooperating" }]

    [[route.routes]]
    name = "labour"
    match.category = ["child_labour"]
    continue = true
    recipients = [{ department = "hrss", role = "lead" }]

    [[route.routes]]
    name = "minors"
    match.any_minor = true
    recipients = [{ department = "education", role = "lead" }]

    [[route.routes]]
    name = "never"
    match.any_minor = true
    recipients = [{ department = "joint_meeting", role = "lead" }]
"""


@pytest.mark.parametrize(
    "case, expected, paths, priority",
    [
        # no child matches: the root's fallback (police) only
        (facts("hospital", "other"), {"police": "lead"}, [("root",)], "normal"),
        # first matching child stops the siblings (no continue)
        (facts("school", "other", any_minor=True), {"education": "lead"}, [("root", "school")], "normal"),
        # a matching grandchild adds to its parent and raises the priority
        (
            facts("school", "school_dropout_risk"),
            {"education": "lead", "hrss": "cooperating"},
            [("root", "school"), ("root", "school", "dropout")],
            "high",
        ),
        # continue = true lets the next sibling match too
        (
            facts("labour", "child_labour", any_minor=True),
            {"hrss": "lead", "education": "lead"},
            [("root", "labour"), ("root", "minors")],
            "normal",
        ),
        (facts("labour", "child_labour"), {"hrss": "lead"}, [("root", "labour")], "normal"),
        # the reporter's urgency is kept when higher than the rules'
        (facts("hospital", "other", "critical"), {"police": "lead"}, [("root",)], "critical"),
    ],
)
def test_routing_tree_semantics(case, expected, paths, priority):
    from services.rules.engine import evaluate

    result = evaluate(rules_with(TREE).root, case)
    assert {r.department: r.role.value for r in result.recipients} == expected
    assert list(result.matched_paths) == paths
    assert result.priority == Priority(priority)


def test_lead_wins_over_cooperating_for_the_same_department():
    rules = rules_with("""
        [route]
        name = "root"
        recipients = [{ department = "police", role = "lead" }]
        [[route.routes]]
        name = "a"
        continue = true
        recipients = [{ department = "police", role = "cooperating" }, { department = "hrss", role = "lead" }]
        [[route.routes]]
        name = "b"
        recipients = [{ department = "police", role = "lead" }]
    """)
    from services.rules.engine import evaluate

    result = evaluate(rules.root, facts())
    assert result.departments() == {"police": Role.lead, "hrss": Role.lead}
    assert next(r for r in result.recipients if r.department == "police").rule_path == ("root", "a")


@pytest.mark.parametrize(
    "tree, line, message",
    [
        (
            """
        [route]
        name = "root"
        recipients = [{ department = "police", role = "lead" }]
        [[route.routes]]
        name = "x"
        recipients = [{ department = "polise", role = "lead" }]
        """,
            HEAD_LINES + 7,
            "unknown department 'polise'",
        ),
        (
            """
        [route]
        name = "root"
        recipients = [{ department = "police", role = "cooperating" }]
        """,
            HEAD_LINES + 4,
            "lead recipient",
        ),
        (
            """
        [route]
        name = "root"
        recipients = [{ department = "police", role = "lead" }]
        [[route.routes]]
        name = "x"
        match.category = ["kidnapping"]
        recipients = [{ department = "police", role = "lead" }]
        """,
            HEAD_LINES + 7,
            "category",
        ),
        (
            """
        [route]
        name = "root"
        recipients = [{ department = "police", role = "lead" }]
        [[route.routes]]
        name = "edu-only"
        match.category = ["other"]
        recipients = [{ department = "education", role = "cooperating" }]
        """,
            None,
            "can reach no lead department",
        ),
        (
            """
        [route]
        name = "root"
        match.source = ["school"]
        recipients = [{ department = "police", role = "lead" }]
        """,
            None,
            "give it no matchers",
        ),
        (
            """
        [route]
        name = "root"
        recipients = [{ department = "police", role = "lead" }]
        [[route.routes]]
        name = "dup"
        [[route.routes]]
        name = "dup"
        """,
            None,
            "same name",
        ),
    ],
)
def test_bad_rules_are_rejected_with_line_and_reason(tree, line, message):
    with pytest.raises(RulesError) as err:
        rules_with(tree)
    text = str(err.value)
    assert message in text, text
    if line is not None:
        assert any(p[0] == line for p in err.value.problems), err.value.problems


@pytest.mark.parametrize(
    "patch, message",
    [
        (('fields = ["details.*"]', 'fields = ["details.shoe_size"]'), "unknown field 'details.shoe_size'"),
        (('fields = ["details.*"]', 'fields = ["@nope"]'), "unknown field set '@nope'"),
        (('calendar = "office"', 'calendar = "weekends"'), "unknown calendar 'weekends'"),
        (('to = "joint_meeting" }', 'to = "mayor" }'), "unknown department in target 'mayor'"),
        (('received = "5m"', 'received = "soon"'), "not a duration"),
        (('received = "5m"', 'received = "2d"'), "0 < received <= decided <= completed"),
        (('version = "t1"', 'version = "t1"\nsurprise = 1'), "Extra inputs are not permitted"),
    ],
)
def test_bad_department_and_clock_config(patch, message):
    old, new = patch
    text = (HEAD + dedent(TREE)).replace(old, new, 1)
    with pytest.raises(RulesError) as err:
        parse_rules(text, "inline.toml")
    assert message in str(err.value)
    assert str(err.value).startswith("inline.toml:")


def test_not_toml_names_the_line():
    with pytest.raises(RulesError, match=r"inline.toml:3: .*not valid TOML"):
        parse_rules('version = "x"\n\n[route\n', "inline.toml")


def test_non_police_department_may_not_see_dna_named_fields(monkeypatch):
    # No schema has such a field; simulate a future schema that does.
    from services.rules import redaction

    known = redaction.all_paths() | {"subjects.dna_sample_ref"}
    monkeypatch.setattr(redaction, "all_paths", lambda: known)
    monkeypatch.setattr(redaction, "all_leaves", lambda: known)
    text = (HEAD + dedent(TREE)).replace(
        'fields = ["subjects.name"]', 'fields = ["subjects.name", "subjects.dna_sample_ref"]'
    )
    with pytest.raises(RulesError, match="DNA/biometric fields are for the police only, not 'hrss'"):
        parse_rules(text, "inline.toml")


def test_the_shipped_rules_load_and_cover_every_source_and_category():
    summary = RULES.summary()
    assert summary["departments"] == 23 and summary["routes"] > 20
    assert RULES.version.startswith("2026.11-1+")


def test_consent_refused_anonymises_non_police_copies_only():
    report = _report("hospital-suspected_trafficking_woman")
    assert report.consent.value == "refused"
    plan = RULES.plan(report, datetime.now(UTC))
    by_dept = {p.department: p for p in plan.referrals}
    assert by_dept["police"].copy["subjects"][0]["name"] == report.subjects[0].name
    assert not by_dept["police"].anonymised
    for dep in ("health", "civil_affairs"):
        assert by_dept[dep].anonymised
        assert "name" not in by_dept[dep].copy["subjects"][0]
        assert "narrative" not in by_dept[dep].copy


def test_child_trafficking_requires_a_police_case_owner_and_is_critical():
    plan = RULES.plan(_report("school-suspected_trafficking_child"), datetime.now(UTC))
    police = next(p for p in plan.referrals if p.department == "police")
    assert police.case_owner_required and police.priority == Priority.critical
    education = next(p for p in plan.referrals if p.department == "education")
    assert not education.case_owner_required


def _report(name):
    import json

    from schemas import parse_report

    return parse_report(json.dumps(REPORTS[name]))


def test_durations_and_calendars():
    assert parse_duration("1d2h30m") == timedelta(days=1, hours=2, minutes=30)
    with pytest.raises(ValueError):
        parse_duration("2 hours")
    office = Calendar(timezone="Asia/Shanghai")
    cst = timedelta(hours=8)
    from datetime import timezone

    tz = timezone(cst)
    friday_late = datetime(2026, 11, 27, 17, 0, tzinfo=tz)
    # 1 h of working time from Friday 17:00 -> 30 min Friday, 30 min Monday from 08:30.
    assert office.add(friday_late, timedelta(hours=1)) == datetime(2026, 11, 30, 9, 0, tzinfo=tz)
    holiday = Calendar(timezone="Asia/Shanghai", holidays=frozenset({datetime(2026, 11, 30).date()}))
    assert holiday.add(friday_late, timedelta(hours=1)) == datetime(2026, 12, 1, 9, 0, tzinfo=tz)
    # A day of duration is one working day: Friday 17:00 + 1d = Monday 17:00.
    assert office.add(friday_late, timedelta(days=1)) == datetime(2026, 11, 30, 17, 0, tzinfo=tz)
    night = datetime(2026, 11, 25, 22, 0, tzinfo=tz)
    assert office.add(night, timedelta(minutes=30)) == datetime(2026, 11, 26, 9, 0, tzinfo=tz)


def test_critical_clocks_ignore_working_hours():
    saturday = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
    due = RULES.due("education", Priority.critical, saturday)
    assert due["received"] - saturday == timedelta(minutes=15)
    assert RULES.due("education", Priority.normal, saturday)["received"] - saturday > timedelta(days=1)


PRIORITY_TREE = """
    [route]
    name = "root"
    recipients = [{ department = "police", role = "lead" }]

    [[route.routes]]
    name = "missing"
    match.category = ["missing_child"]
    priority = "critical"
    continue = true
    recipients = [{ department = "police", role = "lead" }]

    [[route.routes]]
    name = "minor-victim"
    match.subject = { role = ["victim"], minor = true }
    match.indicators = { any = ["physical_sexual_violence"] }
    priority = "high"
    continue = true
    recipients = [{ department = "education", role = "lead" }]

      [[route.routes.routes]]
      name = "young"
      match.subject = { role = ["victim"], age = { lt = 14 } }
      priority = "critical"
      continue = true
      recipients = []

      [[route.routes.routes]]
      name = "inherits"
      match.source = ["labour"]
      recipients = [{ department = "hrss", role = "cooperating" }]

    [[route.routes]]
    name = "no-op"
    match.source = ["venue"]
    priority = "normal"
    recipients = [{ department = "police", role = "lead" }]
"""


def _priority_facts(urgency, age=None, violence=True, category="harm_to_minor", source="school"):
    return Facts.from_mapping(
        {
            "source": source,
            "category": category,
            "urgency": urgency,
            "subjects": [{"role": "victim", "age": age}] if age is not None else [{"role": "victim"}],
            "indicators": ["physical_sexual_violence"] if violence else [],
        }
    )


@pytest.mark.parametrize(
    "facts_, priority, route",
    [
        # the reporter's urgency is never lowered, and is not credited to a route
        (_priority_facts("critical", age=15), "critical", None),
        (_priority_facts("high", age=15), "high", None),
        (_priority_facts("high", age=30, source="venue", category="other"), "high", None),
        # a fact-driven route raises it and is recorded
        (_priority_facts("normal", age=15), "high", ("root", "minor-victim")),
        (_priority_facts("normal", age=12), "critical", ("root", "minor-victim", "young")),
        (_priority_facts("high", age=12), "critical", ("root", "minor-victim", "young")),
        # a child without a priority of its own: the route that set it is credited
        (_priority_facts("normal", age=15, source="labour"), "high", ("root", "minor-victim")),
        # a category route, before the fact-driven one in the tree
        (_priority_facts("normal", age=12, category="missing_child"), "critical", ("root", "missing")),
        # no raising facts: the urgency
        (_priority_facts("normal", age=15, violence=False), "normal", None),
    ],
)
def test_priority_from_facts_never_below_urgency_and_credited_to_its_route(facts_, priority, route):
    result = rules_with(PRIORITY_TREE).route(facts_)
    assert result.priority == Priority(priority)
    assert result.priority_route == route


@settings(max_examples=80, deadline=None)
@given(submissions())
def test_the_shipped_rules_never_lower_the_urgency(case):
    source, data = case
    report = make_report(
        SUBMISSION_MODELS[source].model_validate(data),
        source=source,
        report_id=uuid7(),
        source_system="sys-1",
        received_at=datetime.now(UTC),
    )
    result = RULES.route(report)
    assert result.priority.rank >= Priority.of(report.urgency).rank
    assert (result.priority_route is None) == (result.priority.rank == Priority.of(report.urgency).rank)
    assert len(result.matched_by) == len(result.matched_paths)


def test_the_decision_records_the_priority_route_and_matcher_kinds_never_values():
    import json

    from schemas import parse_report
    from services.router.routing import route_report

    rules = rules_with("""
        [route]
        name = "root"
        recipients = [{ department = "police", role = "lead" }]
        [[route.routes]]
        name = "labour"
        match.category = ["child_labour"]
        continue = true
        recipients = [{ department = "hrss", role = "lead" }]
          [[route.routes.routes]]
          name = "young-worker"
          match.subject = { minor = true }
          match.details = { youngest_worker_age = { lt = 16 } }
          priority = "high"
          recipients = [{ department = "education", role = "cooperating" }]
    """)
    report = parse_report(json.dumps({**REPORTS["labour-child_labour"], "urgency": "normal"}))
    decision = route_report(rules, report, datetime.now(UTC)).decision
    assert decision.priority == Priority.high
    assert decision.priority_route == ("root", "labour", "young-worker")
    assert decision.matched_routes == (("root", "labour"), ("root", "labour", "young-worker"))
    assert decision.matched_by == (("category",), ("subject", "details.youngest_worker_age"))
    text = decision.model_dump_json()
    assert report.subjects[0].name not in text
