"""The access record: who opened which referral's personal data, with a derived id and no values."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from schemas import AccessEvent, access_id_for, field_groups, referral_id_for, sensitive_fields
from schemas.examples import load_examples

REFERRAL = load_examples("v1", "events")["referral"]
AT = datetime(2026, 11, 20, 2, 3, tzinfo=UTC)


def event(**changes):
    data = {
        "referral_id": REFERRAL["referral_id"],
        "report_id": REFERRAL["report_id"],
        "department": REFERRAL["department"],
        "by": "officer.0042",
        "channel": "inbox",
        "field_groups": ["details", "subjects"],
        "at": AT.isoformat(),
        **changes,
    }
    return AccessEvent.model_validate(data)


def test_id_is_derived_from_referral_person_instant_and_channel():
    a = event()
    assert a.access_id == access_id_for(a.referral_id, "officer.0042", AT, "inbox")
    assert event().access_id == a.access_id  # a resent record is the same record
    assert event(channel="console").access_id != a.access_id
    assert event(by="officer.0043").access_id != a.access_id
    assert event(at=(AT + timedelta(seconds=1)).isoformat()).access_id != a.access_id
    assert AccessEvent.model_validate_json(a.model_dump_json()) == a


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"access_id": "00000000-0000-5000-8000-000000000000"}, "access_id is not access_id_for"),
        ({"department": "education"}, "not the referral of report_id"),
        ({"by": "Officer Wang"}, "by"),
        ({"channel": "email"}, "channel"),
        ({"field_groups": ["subjects", "subjects"]}, "must not repeat"),
        ({"field_groups": ["Subjects Name"]}, "lower_snake_case"),
        ({"at": "2026-11-20T10:03:00"}, "timezone"),
    ],
)
def test_bad_records_are_refused_with_the_field_named(changes, message):
    with pytest.raises(ValidationError, match=message):
        event(**changes)


def test_an_access_record_holds_no_personal_field():
    assert sensitive_fields(AccessEvent) == {}
    dumped = json.loads(event().model_dump_json())
    assert set(dumped) == {
        "schema_version",
        "access_id",
        "referral_id",
        "report_id",
        "department",
        "by",
        "channel",
        "field_groups",
        "at",
    }


def test_field_groups_are_the_first_segments_of_the_copy_s_field_paths():
    assert field_groups(("subjects.name", "subjects.id_number", "narrative", "details.grade")) == (
        "details",
        "narrative",
        "subjects",
    )
    assert field_groups(()) == ()
    assert field_groups(REFERRAL["fields"]) == tuple(sorted({f.split(".")[0] for f in REFERRAL["fields"]}))
    assert referral_id_for(REFERRAL["report_id"], REFERRAL["department"]) == REFERRAL["referral_id"]
