"""The console's wiring: each department's inbox on its referral topic (override included), the oversight feed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from schemas import DepartmentStatus, Escalation, ReportStatus, escalation_id_for, referral_id_for
from services.console.runtime import OversightFeed
from tests.conftest import REPO

REPORT = "019aa0f2-0009-7000-8000-000000000009"
T0 = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)


def test_each_department_s_inbox_reads_the_topic_the_rules_name(tmp_path, monkeypatch):
    from services.console.cli import build_console

    rules = (REPO / "routing_rules.toml").read_text()
    rules = rules.replace("[departments.education]\n", '[departments.education]\ntopic = "elsewhere.education-in"\n', 1)
    (tmp_path / "rules.toml").write_text(rules)
    monkeypatch.setenv("CLUEBUS_RULES_FILE", str(tmp_path / "rules.toml"))
    monkeypatch.setenv("CLUEBUS_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("CLUEBUS_TOPICS_PREFIX", "p")
    monkeypatch.setenv("CLUEBUS_CONSOLE_DEPARTMENTS", "police,education")
    console = build_console()
    inboxes = {d: w._make_inbox() for d, w in console.workers.items()}
    try:
        assert inboxes["police"].topic == "p.referrals.police"
        assert inboxes["education"].topic == "elsewhere.education-in"  # the override, as the router writes it
        assert inboxes["police"].store.path == tmp_path / "inbox-police.sqlite3"  # the CLI's store
    finally:
        for inbox in inboxes.values():
            inbox.close()


def escalation(department: str, target: str, minutes: int, reason: str = "overdue") -> Escalation:
    rid = referral_id_for(REPORT, department)
    return Escalation(
        escalation_id=escalation_id_for(rid, "decided", 1, 0, reason),
        referral_id=rid,
        report_id=REPORT,
        department=department,
        stage_overdue="decided",
        level=1,
        target=target,
        reason=reason,
        priority="high",
        due_at=T0,
        escalated_at=T0 + timedelta(minutes=minutes),
    )


def status(seq: int, **stages: tuple[str, bool]) -> ReportStatus:
    return ReportStatus(
        report_id=REPORT,
        source="school",
        source_system="school-sys-1",
        seq=seq,
        updated_at=T0,
        departments=[
            DepartmentStatus(
                department=d, role="lead", referral_id=referral_id_for(REPORT, d), stage=s, stage_at=T0, overdue=late
            )
            for d, (s, late) in stages.items()
        ],
    )


def test_the_feed_keeps_escalations_by_target_and_the_latest_status_per_report():
    feed = OversightFeed(lambda: None, "p.escalations", "p.status")
    feed.add("p.escalations", escalation("police", "police.duty_supervisor", 1).model_dump_json().encode())
    feed.add("p.escalations", escalation("police", "joint_meeting", 2, "declined_by_lead").model_dump_json().encode())
    feed.add("p.escalations", b"not json")  # skipped
    feed.add("p.status", status(2, police=("declined", False), education=("received", True)).model_dump_json().encode())
    feed.add("p.status", status(1, police=("routed", True), education=("routed", True)).model_dump_json().encode())
    assert [e.target for e in feed.escalations_to("police")] == ["police.duty_supervisor"]
    assert [e.reason.value for e in feed.escalations_to("joint_meeting")] == ["declined_by_lead"]
    assert feed.escalations_to("education") == []
    counts = {c.department: (c.open, c.overdue) for c in feed.counts()}
    assert counts == {"education": (1, 1), "police": (0, 0)}  # seq 2 wins over the late seq 1


def test_a_department_whose_kafka_is_away_backs_off_and_still_serves_its_store(tmp_path):
    from services.common.kafka import KafkaUnavailable
    from services.console.runtime import DepartmentWorker

    attempts = []

    class AwayInbox:
        def sync(self, timeout_s):  # type: ignore[no-untyped-def]
            attempts.append(timeout_s)
            raise KafkaUnavailable("cannot reach Kafka at 127.0.0.1:1")

        def pending(self):  # type: ignore[no-untyped-def]
            return ["from the store"]

        def close(self) -> None:
            pass

    worker = DepartmentWorker("police", AwayInbox, sync_interval_s=1)
    try:
        worker.request_sync(now=0)
        worker._pending_sync.result(5)
        assert worker.last_error == "cannot reach Kafka at 127.0.0.1:1"
        for t in (0.1, 0.5, 0.9):  # within the backoff: no new attempt
            worker.request_sync(now=worker._failed_at + t)
        assert len(attempts) == 1
        assert worker.call(lambda inbox: inbox.pending()) == ["from the store"]
        worker.request_sync(now=worker._failed_at + 1.5)
        worker._pending_sync.result(5)
        assert len(attempts) == 2 and worker._backoff_s == 2.0  # doubled, up to a minute
    finally:
        worker.close()
