"""The router against the real broker (issue 5's acceptance criteria)."""

from __future__ import annotations

import json
import signal
from collections import Counter

from schemas import DeadLetter, Referral, ReportStatus, RoutingDecision, parse_report, referral_id_for
from schemas.examples import load_examples
from services.rules import load_rules

from ..support import collect, free_port, metric_value, produce, wait_until

EXAMPLES = [parse_report(json.dumps(d)) for d in load_examples("v1", "reports").values()]


def report_records(names, reports):
    return [(names.report(r.source.value), r.report_id.encode(), r.model_dump_json().encode()) for r in reports]


def start_router(services, service_env, name="router"):
    port = free_port()
    router = services(name, ["router", "--metrics-port", str(port)], service_env)
    router.port = port
    return router


def referral_topics(names, rules):
    return [names.referral(d) for d in rules.departments]


def test_each_report_reaches_exactly_the_named_departments_with_only_their_fields(
    kafka_bootstrap, bus, services, service_env, rules_file
):
    rules = load_rules(rules_file)
    start_router(services, service_env)
    produce(kafka_bootstrap, report_records(bus, EXAMPLES))

    total = sum(len(rules.plan(r, r.received_at).referrals) for r in EXAMPLES)
    messages = collect(
        kafka_bootstrap,
        [*referral_topics(bus, rules), bus.decisions, bus.status],
        done=lambda ms: (
            sum(m.topic == bus.decisions for m in ms) >= len(EXAMPLES)
            and sum("referrals" in m.topic for m in ms) >= total
        ),
        timeout=90,
    )
    referrals = [Referral.model_validate_json(m.value) for m in messages if "referrals" in m.topic]
    decisions = {
        d.report_id: d
        for d in (RoutingDecision.model_validate_json(m.value) for m in messages if m.topic == bus.decisions)
    }
    statuses = [ReportStatus.model_validate_json(m.value) for m in messages if m.topic == bus.status]
    assert set(decisions) == {r.report_id for r in EXAMPLES}

    for report in EXAMPLES:
        plan = rules.plan(report, report.received_at)
        expected = {p.department: p for p in plan.referrals}
        got = {r.department: r for r in referrals if r.report_id == report.report_id}
        assert set(got) == set(expected), report.category
        for department, referral in got.items():
            want = expected[department]
            assert referral.role == want.role
            assert referral.report == want.copy  # only the allowed fields, nothing else
            assert set(referral.fields) == set(want.fields)
            assert referral.referral_id == referral_id_for(report.report_id, department)
            assert referral.rules_version == rules.version
        # The audit names fields, never values.
        decision = decisions[report.report_id]
        assert {r.department for r in decision.recipients} == set(expected)
        assert report.narrative not in json.dumps(decision.model_dump(mode="json"), ensure_ascii=False)
    for m in messages:
        if "referrals" in m.topic:
            referral = Referral.model_validate_json(m.value)
            assert m.topic == bus.referral(referral.department)
            assert m.key == referral.report_id.encode()
    assert statuses == []  # the reporter's status sequence is the tracker's alone (no tracker runs here)


def test_poison_messages_go_to_the_dead_letter_topic_and_later_reports_still_route(
    kafka_bootstrap, bus, services, service_env
):
    router = start_router(services, service_env)
    good = EXAMPLES[0]
    wrong_topic = EXAMPLES[1]
    poison = [
        (bus.report("school"), b"k1", b"{not json"),
        (bus.report("school"), b"k2", json.dumps({"hello": "world"}).encode()),
        (bus.report("labour"), b"not-the-report-id", EXAMPLES[2].model_dump_json().encode()),
        (
            bus.report("venue") if wrong_topic.source.value != "venue" else bus.report("school"),
            wrong_topic.report_id.encode(),
            wrong_topic.model_dump_json().encode(),
        ),
    ]
    produce(kafka_bootstrap, [*poison, *report_records(bus, [good])])
    messages = collect(
        kafka_bootstrap,
        [bus.deadletter, bus.decisions],
        done=lambda ms: sum(m.topic == bus.deadletter for m in ms) >= 4 and any(m.topic == bus.decisions for m in ms),
        timeout=60,
    )
    letters = [DeadLetter.model_validate_json(m.value) for m in messages if m.topic == bus.deadletter]
    assert len(letters) == 4
    originals = {json.loads(json.dumps(p[2].decode(errors="replace"))) for p in poison}
    import base64

    assert {base64.b64decode(x.value_b64).decode(errors="replace") for x in letters} == originals
    assert {x.error_type for x in letters} == {"ValidationError", "Rejected"}
    assert any("report_id" in x.error for x in letters)
    decisions = [RoutingDecision.model_validate_json(m.value) for m in messages if m.topic == bus.decisions]
    assert [d.report_id for d in decisions] == [good.report_id]
    wait_until(
        lambda: metric_value(router.port, "cluebus_router_dead_letters_total", {"reason": "invalid_report"}) == 2
    )


def test_a_duplicate_report_is_routed_once(kafka_bootstrap, bus, services, service_env, rules_file):
    rules = load_rules(rules_file)
    router = start_router(services, service_env)
    report = EXAMPLES[5]
    produce(kafka_bootstrap, report_records(bus, [report, report]))
    wait_until(
        lambda: (
            metric_value(
                router.port, "cluebus_router_reports_total", {"source": report.source.value, "outcome": "duplicate"}
            )
            == 1
        ),
        60,
    )
    messages = collect(kafka_bootstrap, referral_topics(bus, rules), done=lambda ms: False, timeout=3)
    per_department = Counter(Referral.model_validate_json(m.value).department for m in messages)
    assert per_department and set(per_department.values()) == {1}


def test_a_broken_rules_file_is_rejected_and_the_old_rules_keep_routing(
    kafka_bootstrap, bus, services, service_env, rules_file
):
    old = load_rules(rules_file)
    router = start_router(services, service_env)
    wait_until(lambda: metric_value(router.port, "cluebus_rules_last_reload_successful") == 1, 60)
    good_text = rules_file.read_text()
    rules_file.write_text(good_text.replace('name = "root"', 'name = "root"\nbogus = 1', 1))
    router.signal(signal.SIGHUP)
    wait_until(lambda: metric_value(router.port, "cluebus_rules_last_reload_successful") == 0, 30)
    assert router.wait_for("rules reload failed")["version"] == old.version

    produce(kafka_bootstrap, report_records(bus, [EXAMPLES[3]]))
    first = collect(kafka_bootstrap, [bus.decisions], done=lambda ms: len(ms) >= 1, timeout=60)
    assert RoutingDecision.model_validate_json(first[0].value).rules_version == old.version

    # A valid change is picked up from the file by itself (no signal needed).
    rules_file.write_text(good_text.replace('version = "2026.11-1"', 'version = "2026.11-2"'))
    wait_until(lambda: metric_value(router.port, "cluebus_rules_last_reload_successful") == 1, 30)
    produce(kafka_bootstrap, report_records(bus, [EXAMPLES[4]]))
    both = collect(kafka_bootstrap, [bus.decisions], done=lambda ms: len(ms) >= 2, timeout=60)
    decisions = sorted((RoutingDecision.model_validate_json(m.value) for m in both), key=lambda d: d.decided_at)
    versions = [d.rules_version for d in decisions]
    assert versions[0] == old.version and versions[1].startswith("2026.11-2+")
