"""The inbox's local rules and store, without a broker (the producer is a recording fake)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from kafka.errors import KafkaTimeoutError

from schemas import parse_report
from schemas.examples import load_examples
from schemas.lifecycle import ack_refusal
from services.common.settings import KafkaSettings, TopicSettings
from services.inbox.client import DepartmentInbox, InboxError
from services.router.routing import route_report
from services.rules import load_rules
from tests.conftest import REPO


class FakeFuture:
    def __init__(self, ok: bool) -> None:
        self.ok = ok

    def succeeded(self) -> bool:
        return self.ok


class RecordingProducer:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[dict] = []  # acks
        self.access: list[dict] = []  # access records
        self.keys: list[bytes] = []
        self.fail = fail

    def send(self, topic, key, value):  # type: ignore[no-untyped-def]
        (self.access if topic.endswith(".audit.access") else self.sent).append(json.loads(value))
        self.keys.append(key)
        return FakeFuture(not self.fail)

    def flush(self, timeout=None):  # type: ignore[no-untyped-def]
        if self.fail:
            raise KafkaTimeoutError("broker away")

    def close(self) -> None:
        pass


RULES = load_rules(REPO / "routing_rules.toml")


@pytest.fixture
def police_referral():
    rules = RULES
    data = load_examples("v1", "reports")["school-suspected_trafficking_child"]
    report = parse_report(json.dumps(data))
    (referral,) = [r for r in route_report(rules, report, datetime.now(UTC)).referrals if r.department == "police"]
    return referral


def police_inbox(store, user: str) -> DepartmentInbox:  # type: ignore[no-untyped-def]
    return DepartmentInbox(
        KafkaSettings(bootstrap="127.0.0.1:1"), TopicSettings(prefix="u"), RULES, "police", store=store, user=user
    )


@pytest.fixture
def inbox(tmp_path, police_referral):
    box = police_inbox(tmp_path / "inbox.sqlite3", "officer.1")
    with box.store.transaction() as db:
        box.store.add(db, police_referral)
    box._producer = RecordingProducer()
    yield box
    box.close()


@pytest.mark.parametrize(
    ("current", "new", "owner", "reason"),
    [
        ("routed", "received", None, None),
        ("received", "received", None, None),  # repeated: idempotent
        ("routed", "accepted", "a.1", None),  # accepting implies receipt
        ("received", "accepted", None, "case_owner_required"),
        ("accepted", "received", None, "stage_backwards"),
        ("accepted", "declined", None, "stage_backwards"),
        ("received", "completed", None, "not_accepted"),
        ("declined", "accepted", "a.1", "referral_closed"),
        ("completed", "declined", None, "referral_closed"),
        ("accepted", "completed", None, None),
    ],
)
def test_ack_refusal_table(current, new, owner, reason):
    refusal = ack_refusal(current, new, case_owner_required=True, case_owner=owner)
    assert (refusal.reason if refusal else None) == reason


def test_accept_needs_the_case_owner_and_sends_receipt_with_it(inbox, police_referral):
    rid = police_referral.referral_id
    with pytest.raises(InboxError, match="must name a case owner"):
        inbox.accept(rid)
    assert inbox._producer.sent == []
    inbox.accept(inbox.resolve(rid[:8]), case_owner="inspector.7")
    stages = [(a["stage"], a.get("case_owner")) for a in inbox._producer.sent]
    assert stages == [("received", None), ("accepted", "inspector.7")]
    assert {a["by"] for a in inbox._producer.sent} == {"officer.1"}
    assert inbox.store.item(rid).stage == "accepted"


def test_decline_and_complete_validate_codes_and_text(inbox, police_referral):
    rid = police_referral.referral_id
    with pytest.raises(InboxError, match="unknown reason code 'bored'"):
        inbox.decline(rid, "bored", "no")
    with pytest.raises(InboxError, match="reason: .*required"):
        inbox.decline(rid, "other", "")
    with pytest.raises(InboxError, match="completed only after it was accepted"):
        inbox.complete(rid, "case_opened", "done")
    inbox.decline(rid, "handled_elsewhere", "Already open in the county unit.")
    with pytest.raises(InboxError, match="already declined"):
        inbox.accept(rid, case_owner="a.1")
    assert [a["stage"] for a in inbox._producer.sent] == ["received", "declined"]


def test_acks_stay_queued_while_kafka_is_away_and_go_out_later(inbox, police_referral):
    rid = police_referral.referral_id
    inbox._producer = RecordingProducer(fail=True)
    inbox.accept(rid, case_owner="inspector.7")
    assert inbox.unsent_acks() == 2  # stored, not lost
    assert inbox.store.item(rid).stage == "accepted"
    inbox._producer = RecordingProducer()
    assert inbox._send_acks() == 2
    assert inbox.unsent_acks() == 0
    assert [a["stage"] for a in inbox._producer.sent] == ["received", "accepted"]


def test_ids_are_resolved_by_prefix_and_unknown_ids_are_clear(inbox, police_referral):
    assert inbox.resolve(police_referral.referral_id[:6]) == police_referral.referral_id
    with pytest.raises(InboxError, match="no referral 'ffffffff'"):
        inbox.resolve("ffffffff")


def test_a_redelivered_referral_is_stored_once(inbox, police_referral):
    with inbox.store.transaction() as db:
        assert inbox.store.add(db, police_referral) is False
    assert len(inbox.pending()) == 1


def test_user_must_be_a_staff_id(tmp_path):
    with pytest.raises(InboxError, match="not a staff id"):
        police_inbox(tmp_path / "x.sqlite3", "Zhang San")


def test_show_records_who_opened_which_field_groups_and_never_the_values(inbox, police_referral):
    referral = inbox.show(police_referral.referral_id[:8], by="officer.2")
    assert referral == police_referral
    (record,) = inbox._producer.access
    assert record["by"] == "officer.2" and record["channel"] == "inbox"
    assert record["referral_id"] == police_referral.referral_id and record["department"] == "police"
    assert record["field_groups"] == sorted({f.split(".")[0] for f in police_referral.fields} & set(referral.report))
    assert "subjects" in record["field_groups"]
    values = json.dumps(police_referral.report["subjects"], ensure_ascii=False)
    assert not any(str(v) in json.dumps(record) for v in json.loads(values)[0].values() if isinstance(v, str) and v)
    assert inbox._producer.keys == [police_referral.report_id.encode()]  # keyed like the decision
    assert inbox._producer.sent == []  # opening is not acknowledging


def test_access_records_stay_queued_while_kafka_is_away(inbox, police_referral):
    inbox._producer = RecordingProducer(fail=True)
    inbox.show(police_referral.referral_id)
    inbox.show(police_referral.referral_id)
    assert inbox.unsent_access() == 2  # two openings, two records, none lost
    inbox._producer = RecordingProducer()
    inbox._send_acks()
    assert inbox.unsent_access() == 0
    assert [r["by"] for r in inbox._producer.access] == ["officer.1", "officer.1"]
    assert len({r["access_id"] for r in inbox._producer.access}) == 2


def test_each_action_carries_the_person_who_did_it(inbox, police_referral):
    rid = police_referral.referral_id
    inbox.accept(rid, case_owner="inspector.7", by="clerk.3")
    inbox.complete(rid, "case_opened", "Opened.", by="clerk.4")
    assert [(a["stage"], a["by"]) for a in inbox._producer.sent] == [
        ("received", "clerk.3"),
        ("accepted", "clerk.3"),
        ("completed", "clerk.4"),
    ]
    assert [(a.stage.value, sent) for a, sent in inbox.history(rid)] == [
        ("received", True),
        ("accepted", True),
        ("completed", True),
    ]
    with pytest.raises(InboxError, match="not a staff id"):
        inbox.show(rid, by="Zhang San")
