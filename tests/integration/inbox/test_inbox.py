"""`cluebus inbox police` used as a person would, against the real broker, router and tracker."""

from __future__ import annotations

import subprocess

from schemas import Ack, referral_id_for
from services.inbox.client import DepartmentInbox, InboxError

from ..support import CLUEBUS, collect, free_port, many_reports, metric_value, produce, wait_until


def send_reports(bootstrap, bus, reports):
    produce(
        bootstrap, [(bus.report(r.source.value), r.report_id.encode(), r.model_dump_json().encode()) for r in reports]
    )


def acks_on_topic(bootstrap, bus, count, timeout=30.0):
    messages = collect(bootstrap, [bus.acks], done=lambda ms: len(ms) >= count, timeout=timeout)
    return [Ack.model_validate_json(m.value) for m in messages]


def test_police_officer_lists_accepts_with_case_owner_and_completes(kafka_bootstrap, bus, services, service_env):
    services("router", ["router", "--metrics-port", "0"], service_env)
    tracker_port = free_port()
    services("tracker", ["tracker", "--metrics-port", str(tracker_port)], service_env)
    # A suspected trafficked child: police lead, and the acceptance must name a case owner.
    (report,) = many_reports(1, ("school-suspected_trafficking_child",))
    send_reports(kafka_bootstrap, bus, [report])
    referral_id = referral_id_for(report.report_id, "police")
    env = {**service_env, "CLUEBUS_INBOX_USER": "officer.0042"}

    def inbox(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [CLUEBUS, "inbox", "police", *args], env=env, capture_output=True, text=True, timeout=120
        )
        if ok:
            assert result.returncode == 0, result.stdout + result.stderr
        return result

    listing = wait_until(lambda: referral_id in (out := inbox("list").stdout) and out, 90)
    line = next(x for x in listing.splitlines() if referral_id in x)
    assert "critical" in line or "high" in line
    assert "(case owner required)" in line

    # Receipt was acknowledged automatically by the sync behind `list`.
    assert wait_until(
        lambda: metric_value(tracker_port, "cluebus_acks_total", {"department": "police", "stage": "received"}) == 1, 30
    )

    refused = inbox("accept", referral_id[:8], ok=False)  # the first characters are enough to name it
    assert refused.returncode == 1 and "must name a case owner" in refused.stderr

    accepted = inbox("accept", referral_id[:8], "--case-owner", "inspector.0007")
    assert f"accepted {referral_id}" in accepted.stdout
    assert inbox("complete", referral_id, "--outcome-code", "no_such_code", "--outcome", "x", ok=False).returncode == 1
    completed = inbox("complete", referral_id, "--outcome-code", "case_opened", "--outcome", "Case opened.")
    assert f"completed {referral_id}" in completed.stdout
    assert referral_id not in inbox("list").stdout  # closed referrals leave the open list
    assert referral_id in inbox("list", "--all").stdout

    assert wait_until(
        lambda: metric_value(tracker_port, "cluebus_acks_total", {"department": "police", "stage": "completed"}) == 1,
        30,
    )
    acks = [a for a in acks_on_topic(kafka_bootstrap, bus, 3) if a.referral_id == referral_id]
    assert [a.stage.value for a in acks] == ["received", "accepted", "completed"]
    assert {a.by for a in acks} == {"officer.0042"}
    assert acks[1].case_owner == "inspector.0007"


def test_sync_commits_only_what_it_stored_and_each_referral_is_received_once(
    kafka_settings, topic_settings, bus, tmp_path, rules_file
):
    from datetime import UTC, datetime

    from services.router.routing import route_report
    from services.rules import load_rules

    rules = load_rules(rules_file)
    reports = many_reports(12)
    referrals = [r for rep in reports for r in route_report(rules, rep, datetime.now(UTC)).referrals]
    police = [r for r in referrals if r.department == "police"]
    assert police, "the examples route to the police"
    produce(
        kafka_settings.bootstrap,
        [(bus.referral("police"), r.report_id.encode(), r.model_dump_json().encode()) for r in police],
    )
    produce(kafka_settings.bootstrap, [(bus.referral("police"), b"junk", b"{not a referral")])

    store = tmp_path / "police.sqlite3"
    first = DepartmentInbox(kafka_settings, topic_settings, rules, "police", store=store, user="officer.1")
    result = first.sync(timeout_s=20)
    assert (result.new, result.unreadable, result.caught_up) == (len(police), 1, True)
    assert result.acks_sent == len(police)
    first.close()

    # A new inbox on the same store and group starts after the committed offsets: nothing is new.
    again = DepartmentInbox(kafka_settings, topic_settings, rules, "police", store=store, user="officer.1")
    assert again.sync(timeout_s=10).seen == 0
    assert {i.referral_id for i in again.pending()} == {r.referral_id for r in police}
    # Receipt was acknowledged with the storing: the department now owes the decision, not the receipt.
    assert {(i.stage, i.next_due[0]) for i in again.pending()} == {("received", "decided")}
    again.close()

    # A fresh store under the same group would miss the referrals: the offsets are the group's.
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=kafka_settings.bootstrap,
        group_id=topic_settings.names.inbox_group("police"),
        enable_auto_commit=False,
    )
    parts = [TopicPartition(bus.referral("police"), p) for p in range(3)]
    committed = sum(consumer.committed(tp) or 0 for tp in parts)
    consumer.close()
    assert committed == len(police) + 1

    acks = acks_on_topic(kafka_settings.bootstrap, bus, len(police))
    assert sorted(a.referral_id for a in acks) == sorted(r.referral_id for r in police)
    assert {a.stage.value for a in acks} == {"received"}


def test_an_unknown_department_or_missing_topic_is_a_clear_error(
    kafka_settings, topic_settings, bus, tmp_path, rules_file
):
    import pytest

    from services.rules import load_rules

    rules = load_rules(rules_file)
    with pytest.raises(InboxError, match="unknown department 'polize'"):
        DepartmentInbox(kafka_settings, topic_settings, rules, "polize", store=tmp_path / "x.sqlite3", user="a.b")
    # A department of the rules whose referral topic (here: its override) does not exist.
    nowhere = f"{topic_settings.prefix}.nowhere.police"
    rules_file.write_text(
        rules_file.read_text().replace("[departments.police]\n", f'[departments.police]\ntopic = "{nowhere}"\n', 1)
    )
    inbox = DepartmentInbox(
        kafka_settings, topic_settings, load_rules(rules_file), "police", store=tmp_path / "y.sqlite3", user="a.b"
    )
    with pytest.raises(InboxError, match=f"no partitions of {nowhere}"):
        inbox.sync(timeout_s=5)
    inbox.close()
