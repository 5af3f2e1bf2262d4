"""The tracker against the real broker, with the router in front (issue 6's criteria)."""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from datetime import UTC, datetime

import pytest

from schemas import Ack, Escalation, RoutingDecision, parse_report
from schemas.examples import load_examples
from services.rules import load_rules

from ..support import collect, free_port, many_reports, metric_value, produce, wait_until

EXAMPLES = {name: parse_report(json.dumps(d)) for name, d in load_examples("v1", "reports").items()}


@pytest.fixture
def short_clocks(rules_file):
    """The shipped rules with clocks of seconds: received 3 s, decided 6 s; levels 0 s, 2 s, 4 s."""
    text = rules_file.read_text()
    text = re.sub(r'^received = "[^"]+"', 'received = "3s"', text, flags=re.M)
    text = re.sub(r'^decided = "[^"]+"', 'decided = "6s"', text, flags=re.M)
    text = re.sub(r'^completed = "[^"]+"', 'completed = "1h"', text, flags=re.M)
    text = text.replace('after = "2h"', 'after = "4s"').replace('after = "30m"', 'after = "2s"')
    text = text.replace('{ after = "2h", to = "joint_meeting" }', '{ after = "4s", to = "joint_meeting" }')
    text = text.replace(
        '{ after = "30m", to = "police.command_centre" }', '{ after = "2s", to = "police.command_centre" }'
    )
    # Office hours would stop the clocks at night: run the test clocks around the clock.
    text = text.replace('[defaults]\ncalendar = "office"', '[defaults]\ncalendar = "always"')
    rules_file.write_text(text)
    return load_rules(rules_file)


def start(services, service_env, name, *args):
    port = free_port()
    env = {**service_env, "CLUEBUS_TRACKER_TICK_INTERVAL_S": "0.5"}
    proc = services(name, [*args, "--metrics-port", str(port)], env)
    proc.port = port
    return proc


def send_reports(bootstrap, bus, reports):
    produce(
        bootstrap, [(bus.report(r.source.value), r.report_id.encode(), r.model_dump_json().encode()) for r in reports]
    )


def decisions(bootstrap, bus, count):
    messages = collect(bootstrap, [bus.decisions], done=lambda ms: len(ms) >= count, timeout=90)
    return [RoutingDecision.model_validate_json(m.value) for m in messages]


def ack_for(decision, department, stage, **extra):
    recipient = next(r for r in decision.recipients if r.department == department)
    return Ack(
        referral_id=recipient.referral_id,
        report_id=decision.report_id,
        department=department,
        stage=stage,
        by="staff.1",
        at=datetime.now(UTC),
        **extra,
    )


def send_acks(bootstrap, bus, acks):
    produce(bootstrap, [(bus.acks, a.report_id.encode(), a.model_dump_json().encode()) for a in acks])


def hist_count(port, department, stage):
    return metric_value(port, "cluebus_ack_delay_seconds_count", {"department": department, "stage": stage}) or 0.0


def outstanding(port, department, stage):
    return metric_value(port, "cluebus_referrals_outstanding", {"department": department, "stage": stage}) or 0.0


def test_each_stage_moves_the_histogram_and_gauges_by_exactly_one(kafka_bootstrap, bus, services, service_env):
    start(services, service_env, "router", "router")
    tracker = start(services, service_env, "tracker", "tracker")
    (report,) = many_reports(1, ("school-suspected_trafficking_child",))  # police lead, case owner required
    send_reports(kafka_bootstrap, bus, [report])
    (decision,) = decisions(kafka_bootstrap, bus, 1)
    assert wait_until(lambda: outstanding(tracker.port, "police", "routed") == 1, 60)

    steps = [
        ("received", {}),
        ("accepted", {"case_owner": "inspector.7"}),
        ("completed", {"outcome_code": "case_opened", "outcome": "opened"}),
    ]
    waiting = {"received": "received", "accepted": "accepted", "completed": None}
    previous = "routed"
    for stage, extra in steps:
        before = hist_count(tracker.port, "police", stage)
        send_acks(kafka_bootstrap, bus, [ack_for(decision, "police", stage, **extra)])
        wait_until(lambda s=stage, b=before: hist_count(tracker.port, "police", s) == b + 1, 30)
        assert outstanding(tracker.port, "police", previous) == 0
        if waiting[stage]:
            assert outstanding(tracker.port, "police", waiting[stage]) == 1
            previous = waiting[stage]
    time.sleep(1.5)  # nothing else moves: exactly one observation per stage
    assert [hist_count(tracker.port, "police", s) for s, _ in steps] == [1, 1, 1]
    # The other departments are untouched and still waiting.
    assert outstanding(tracker.port, "education", "routed") == 1


def test_a_referral_left_alone_escalates_level_by_level_and_stops_when_acknowledged(
    kafka_bootstrap, bus, services, service_env, short_clocks
):
    start(services, service_env, "router", "router")
    start(services, service_env, "tracker", "tracker")
    # police lead (police chain: 0 s, 2 s, 4 s), received now so that the clocks start now
    (report,) = many_reports(1, ("hospital-suspected_trafficking_woman",))
    send_reports(kafka_bootstrap, bus, [report])
    (decision,) = decisions(kafka_bootstrap, bus, 1)

    def police_levels(messages):
        return [
            (e.level, e.stage_overdue.value)
            for e in (Escalation.model_validate_json(m.value) for m in messages)
            if e.department == "police"
        ]

    first_two = collect(
        kafka_bootstrap, [bus.escalations], done=lambda ms: {(2, "received")} <= set(police_levels(ms)), timeout=60
    )
    levels = police_levels(first_two)
    assert levels[:2] == [(1, "received"), (2, "received")]
    targets = [
        Escalation.model_validate_json(m.value).target
        for m in first_two
        if Escalation.model_validate_json(m.value).department == "police"
    ]
    assert targets[:2] == ["police.duty_supervisor", "police.command_centre"]

    send_acks(kafka_bootstrap, bus, [ack_for(decision, "police", "received"), ack_for(decision, "police", "accepted")])
    time.sleep(7)  # past the received clock's last level and the decided clock
    after = collect(kafka_bootstrap, [bus.escalations], done=lambda ms: False, timeout=3)
    received_levels = [lvl for lvl, clock in police_levels(after) if clock == "received"]
    # Stopped: at most the third level, which may have been due before the acknowledgement.
    assert set(received_levels) <= {1, 2, 3} and len(received_levels) == len(set(received_levels))
    assert not [1 for lvl, clock in police_levels(after) if clock == "decided"]
    ids = [Escalation.model_validate_json(m.value).escalation_id for m in after]
    assert len(ids) == len(set(ids))


def test_after_a_kill_the_outstanding_gauge_matches_what_the_topics_say(
    kafka_bootstrap, bus, services, service_env, rules_file
):
    rules = load_rules(rules_file)
    start(services, service_env, "router", "router")
    tracker = start(services, service_env, "tracker", "tracker")
    reports = many_reports(60)
    send_reports(kafka_bootstrap, bus, reports[:30])
    first = decisions(kafka_bootstrap, bus, 30)
    # Acknowledge some referrals of half the reports, mid-stream.
    acks = [ack_for(d, r.department, "received") for d in first[:15] for r in d.recipients[:2]]
    send_acks(kafka_bootstrap, bus, acks)
    send_reports(kafka_bootstrap, bus, reports[30:])
    time.sleep(1.0)
    tracker.kill()
    # More acknowledgements while it is down, then restart from the changelog.
    later = [
        ack_for(
            d,
            d.recipients[0].department,
            "accepted",
            **({"case_owner": "inspector.7"} if d.recipients[0].case_owner_required else {}),
        )
        for d in first[15:20]
    ]
    send_acks(kafka_bootstrap, bus, later)
    restarted = start(services, service_env, "tracker-2", "tracker")

    all_decisions = decisions(kafka_bootstrap, bus, 60)
    ack_messages = collect(kafka_bootstrap, [bus.acks], done=lambda ms: len(ms) >= len(acks) + len(later), timeout=30)
    stage_of = {}
    for m in ack_messages:
        a = Ack.model_validate_json(m.value)
        stage_of[(a.report_id, a.department)] = a.stage.value
    expected = Counter()
    for d in all_decisions:
        for r in d.recipients:
            expected[
                (
                    r.department,
                    {"received": "received", "accepted": "accepted"}.get(
                        stage_of.get((d.report_id, r.department), ""), "routed"
                    ),
                )
            ] += 1

    def matches():
        return all(outstanding(restarted.port, dept, stage) == n for (dept, stage), n in expected.items())

    wait_until(matches, 90)
    total = sum(expected.values())
    print(f"open referrals recomputed from the topics: {total}; gauges agree after the restart")
    assert total == sum(len(d.recipients) for d in all_decisions)
    assert len(rules.departments) >= 1
