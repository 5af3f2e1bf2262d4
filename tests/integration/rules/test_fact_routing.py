"""Through the real bus: routing that depends on a subject fact, an indicator and a detail field.

The router runs as a process on the shared broker with an inline rules file; each report
must reach exactly the expected departments at the expected priority, and the decision
must name the route that raised it.
"""

from __future__ import annotations

import json
from textwrap import dedent

import pytest

from schemas import Priority, Referral, RoutingDecision, parse_report
from schemas.examples import load_examples
from tests.unit.rules.support import HEAD

from ..support import collect, free_port, produce

EXAMPLES = load_examples("v1", "reports")

TREE = """
    [route]
    name = "root"
    recipients = [{ department = "police", role = "lead" }]

    [[route.routes]]
    name = "foreign-worker"
    match.source = ["labour"]
    match.subject = { role = ["victim"], foreign = true }
    priority = "high"
    continue = true
    recipients = [{ department = "hrss", role = "lead" }, { department = "police", role = "cooperating" }]

    [[route.routes]]
    name = "violence"
    match.indicators = { any = ["physical_sexual_violence"] }
    priority = "critical"
    continue = true
    recipients = [{ department = "police", role = "lead" }, { department = "joint_meeting", role = "cooperating" }]

    [[route.routes]]
    name = "out-of-school"
    match.source = ["school"]
    match.details = { enrolled = false, days_absent = { ge = 20 } }
    continue = true
    recipients = [{ department = "education", role = "lead" }]
"""


@pytest.fixture
def rules_file(tmp_path):
    path = tmp_path / "routing_rules.toml"
    path.write_text(HEAD + dedent(TREE))
    return path


def _report(name, **changes):
    data = json.loads(json.dumps(EXAMPLES[name]))
    for dotted, value in changes.items():
        node = data
        *parents, last = dotted.split(".")
        for part in parents:
            node = node[part]
        node[last] = value
    return parse_report(json.dumps(data))


CASES = [
    # (report, departments and roles, priority, route credited with the priority)
    (
        _report("labour-illegal_employment_foreigner", urgency="normal"),  # a victim from MM
        {"hrss": "lead", "police": "cooperating"},
        "high",
        ("root", "foreign-worker"),
    ),
    (
        _report("hospital-harm_to_minor", urgency="normal", indicators=["physical_sexual_violence"]),
        {"police": "lead", "joint_meeting": "cooperating"},
        "critical",
        ("root", "violence"),
    ),
    (
        _report(
            "school-school_dropout_risk",
            urgency="normal",
            indicators=[],
            **{"details.enrolled": False, "details.days_absent": 30},
        ),
        {"education": "lead"},
        "normal",
        None,
    ),
    (_report("venue-other", urgency="normal", indicators=[]), {"police": "lead"}, "normal", None),
]


def test_subject_indicator_and_detail_facts_route_through_the_bus(kafka_bootstrap, bus, services, service_env):
    services("router", ["router", "--metrics-port", str(free_port())], service_env)
    reports = [case[0] for case in CASES]
    produce(
        kafka_bootstrap,
        [(bus.report(r.source.value), r.report_id.encode(), r.model_dump_json().encode()) for r in reports],
    )
    expected_referrals = sum(len(case[1]) for case in CASES)
    departments = ["police", "joint_meeting", "education", "hrss"]
    messages = collect(
        kafka_bootstrap,
        [*(bus.referral(d) for d in departments), bus.decisions],
        done=lambda ms: (
            sum(m.topic == bus.decisions for m in ms) >= len(CASES)
            and sum("referrals" in m.topic for m in ms) >= expected_referrals
        ),
        timeout=90,
    )
    referrals = [Referral.model_validate_json(m.value) for m in messages if "referrals" in m.topic]
    decisions = {
        d.report_id: d
        for d in (RoutingDecision.model_validate_json(m.value) for m in messages if m.topic == bus.decisions)
    }
    for report, recipients, priority, route in CASES:
        got = {r.department: r for r in referrals if r.report_id == report.report_id}
        assert {d: r.role.value for d, r in got.items()} == recipients, report.category
        assert {r.priority for r in got.values()} == {Priority(priority)}, report.category
        decision = decisions[report.report_id]
        assert decision.priority == Priority(priority) and decision.priority_route == route
    assert decisions[CASES[0][0].report_id].matched_by == (("source", "subject"),)
    assert decisions[CASES[2][0].report_id].matched_by == (("source", "details.enrolled", "details.days_absent"),)
    assert decisions[CASES[3][0].report_id].fallback
