"""Every bad input is rejected, and the error names the offending field.

Each row starts from a valid v1 example, changes one thing, and states where
the error must point (``loc``, dotted; "" for the whole object) and a fragment
of its message. A row passes only if one error has exactly that location and
that fragment, so a rule that fires for the wrong reason fails the row.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from schemas import (
    EVENT_MODELS,
    SUBMISSION_MODELS,
    AgeBand,
    Consent,
    HospitalSubmission,
    SchoolSubmission,
    Source,
    Subject,
    make_report,
    parse_report,
    parse_submission,
)
from schemas.examples import load_examples

REPORTS = load_examples("v1", "reports")
EVENTS = load_examples("v1", "events")
ENVELOPE = ("schema_version", "report_id", "source", "source_system", "received_at")
NOW = datetime.now(UTC)
DELETE = object()
DNA = "DNA and biometric data may only be collected by the police"


def submission(name: str) -> dict[str, Any]:
    data = copy.deepcopy(REPORTS[name])
    for key in ENVELOPE:
        data.pop(key)
    return data


def mutate(data: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    node = data
    for p in parents:
        node = node[p]
    if value is DELETE:
        del node[last]
    else:
        node[last] = copy.deepcopy(value)
    return data


def errors(exc: ValidationError, strip_tag: bool = False) -> list[tuple[str, str]]:
    out = []
    for e in exc.errors(include_url=False):
        loc = list(e["loc"])
        if strip_tag and loc and loc[0] in {s.value for s in Source}:
            loc = loc[1:]  # the discriminated union prefixes the member's tag
        out.append((".".join(map(str, loc)), e["msg"]))
    return out


def assert_rejected(exc: ValidationError, loc: str, fragment: str, strip_tag: bool = False) -> None:
    found = errors(exc, strip_tag)
    assert any(at == loc and fragment in m for at, m in found), f"want {loc!r} ~ {fragment!r}, got {found}"


ADULT = {"role": "victim", "sex": "female", "age": 30}
# (example, path to change, new value, expected error location, expected message fragment)
INVALID_SUBMISSIONS = [
    ("hospital-surrogacy", "category", DELETE, "category", "Field required"),
    ("hospital-surrogacy", "category", "kidnapping", "category", "Input should be"),
    ("hospital-surrogacy", "urgency", "asap", "urgency", "Input should be"),
    ("hospital-surrogacy", "narrative", DELETE, "narrative", "Field required"),
    ("hospital-surrogacy", "narrative", "x" * 20_001, "narrative", "at most 20000"),
    ("hospital-surrogacy", "narrative", "   ", "narrative", "at least 1"),
    ("hospital-surrogacy", "source_ref", "", "source_ref", "at least 1"),
    ("hospital-surrogacy", "source_ref", "has spaces in it", "source_ref", "should match pattern"),
    ("hospital-surrogacy", "source_ref", "A" * 129, "source_ref", "at most 128"),
    ("hospital-surrogacy", "reported_at", "2026-11-20T09:30:00", "reported_at", "timezone"),
    (
        "hospital-surrogacy",
        "reported_at",
        (NOW + timedelta(days=1)).isoformat(),
        "reported_at",
        "in the future",
    ),
    ("hospital-surrogacy", "reporter.name", DELETE, "reporter.name", "Field required"),
    ("hospital-surrogacy", "reporter.phone", "ring me", "reporter.phone", "should match pattern"),
    ("hospital-surrogacy", "subjects", [], "subjects", "at least 1"),
    ("hospital-surrogacy", "subjects", [ADULT] * 51, "subjects", "at most 50"),
    ("hospital-surrogacy", "subjects.0.role", "bystander", "subjects.0.role", "Input should be"),
    (
        "hospital-surrogacy",
        "subjects.0.age",
        40,
        "subjects.0.age_band",
        "age 40 does not agree with age_band",
    ),
    ("hospital-surrogacy", "subjects.0.age", 130, "subjects.0.age", "less than or equal to 120"),
    ("hospital-surrogacy", "subjects.0.age", -1, "subjects.0.age", "greater than or equal to 0"),
    ("hospital-surrogacy", "subjects.0.age_band", "teen", "subjects.0.age_band", "Input should be"),
    (
        "hospital-surrogacy",
        "subjects.0.nationality",
        "china",
        "subjects.0.nationality",
        "should match pattern",
    ),
    (
        "hospital-surrogacy",
        "subjects.0.nationality",
        "XX",
        "subjects.0.nationality",
        "not an ISO 3166-1",
    ),
    (
        "hospital-surrogacy",
        "subjects.0.phone",
        "call me",
        "subjects.0.phone",
        "should match pattern",
    ),
    (
        "hospital-surrogacy",
        "subjects.0.id_number",
        "EX12345",
        "subjects.0.id_number",
        "id_type is required",
    ),
    (
        "hospital-surrogacy",
        "subjects.0.disability",
        "blind",
        "subjects.0.disability",
        "Input should be",
    ),
    (
        "hospital-harm_to_minor",
        "consent",
        "refused",
        "consent",
        "a minor's report is shared without consent",
    ),
    ("hospital-harm_to_minor", "subjects", [ADULT], "subjects", "'harm_to_minor' concerns a child"),
    ("school-missing_child", "subjects", [ADULT], "subjects", "'missing_child' concerns a child"),
    ("labour-child_labour", "subjects", [ADULT], "subjects", "'child_labour' concerns a child"),
    (
        "hospital-suspected_trafficking_woman",
        "subjects.0.role",
        "witness",
        "subjects",
        "needs at least one subject with role 'victim'",
    ),
    (
        "hospital-surrogacy",
        "dna_profile",
        "AGCT",
        "",
        f"{DNA} (field 'dna_profile'); do not send it",
    ),
    (
        "hospital-surrogacy",
        "subjects.0.fingerprint_ref",
        "x",
        "",
        "(field 'subjects.0.fingerprint_ref')",
    ),
    (
        "hospital-surrogacy",
        "details.newborn",
        {"Genetic_test": "x"},
        "",
        "(field 'details.newborn.Genetic_test')",
    ),
    ("hospital-surrogacy", "attachments.0.iris_scan", "x", "", "(field 'attachments.0.iris_scan')"),
    ("hospital-surrogacy", "location.face_print", "x", "", "(field 'location.face_print')"),
    ("hospital-surrogacy", "reporter.voiceprint", "x", "", "(field 'reporter.voiceprint')"),
    (
        "hospital-surrogacy",
        "attachments.0.uri",
        "data:application/pdf;base64,AAAA",
        "attachments.0.uri",
        "a data: URI is not accepted",
    ),
    (
        "hospital-surrogacy",
        "attachments.0.uri",
        "ftp://x/y",
        "attachments.0.uri",
        "must be a reference",
    ),
    (
        "hospital-surrogacy",
        "attachments.0.uri",
        "https://user:pw@files.example.invalid/a",
        "attachments.0.uri",
        "must not carry credentials",
    ),
    (
        "hospital-surrogacy",
        "attachments.0.content",
        "JVBERi0xLjQ=",
        "attachments.0",
        "references, not content",
    ),
    (
        "hospital-surrogacy",
        "attachments.0.sha256",
        "ABC",
        "attachments.0.sha256",
        "should match pattern",
    ),
    (
        "hospital-surrogacy",
        "attachments",
        [{"uri": "urn:x:1", "media_type": "application/pdf"}] * 21,
        "attachments",
        "at most 20",
    ),
    (
        "hospital-surrogacy",
        "location.district_code",
        "12011",
        "location.district_code",
        "should match pattern",
    ),
    (
        "hospital-surrogacy",
        "location.township_code",
        "abc",
        "location.township_code",
        "should match pattern",
    ),
    (
        "hospital-surrogacy",
        "location.township_code",
        "110101001",
        "location",
        "does not lie within",
    ),
    ("hospital-surrogacy", "unexpected", 1, "unexpected", "Extra inputs are not permitted"),
    (
        "hospital-surrogacy",
        "source_system",
        "forged",
        "source_system",
        "Extra inputs are not permitted",
    ),
    (
        "hospital-surrogacy",
        "indicators",
        ["deception", "deception"],
        "indicators",
        "must not repeat: deception",
    ),
    ("hospital-surrogacy", "indicators", ["teleportation"], "indicators.0", "Input should be"),
    (
        "hospital-surrogacy",
        "details.encounter_type",
        "visit",
        "details.encounter_type",
        "Input should be",
    ),
    (
        "hospital-surrogacy",
        "details.newborn.born_at",
        "2026-11-20 09:00",
        "details.newborn.born_at",
        "timezone",
    ),
    (
        "labour-child_labour",
        "details.employer_credit_code",
        "123",
        "details.employer_credit_code",
        "should match pattern",
    ),
    (
        "labour-child_labour",
        "details.agency_credit_code",
        "91120118MA0SAMPLEI",
        "details.agency_credit_code",
        "should match pattern",
    ),
    (
        "labour-child_labour",
        "details.workers_affected",
        0,
        "details.workers_affected",
        "greater than or equal to 1",
    ),
    (
        "school-missing_child",
        "details.pupil_subject_index",
        3,
        "details",
        "details.pupil_subject_index 3 is not an entry of subjects",
    ),
    (
        "school-suspected_trafficking_child",
        "details.pupil_subject_index",
        1,
        "details",
        "must point at a minor or a subject of unknown age",
    ),
    (
        "school-missing_child",
        "details.days_absent",
        -1,
        "details.days_absent",
        "greater than or equal to 0",
    ),
    (
        "marriage-cross_border_marriage",
        "details.party_nationalities",
        ["CN", "VN", "US"],
        "details.party_nationalities",
        "at most 2",
    ),
    (
        "marriage-cross_border_marriage",
        "details.party_nationalities",
        ["CN", "ZZ"],
        "details.party_nationalities.1",
        "not an ISO 3166-1",
    ),
    (
        "marriage-cross_border_marriage",
        "details.document_anomalies",
        ["forged_document", "forged_document"],
        "details.document_anomalies",
        "must not repeat",
    ),
    (
        "venue-minor_in_venue",
        "details.venue_type",
        "casino",
        "details.venue_type",
        "Input should be",
    ),
    ("venue-minor_in_venue", "details", DELETE, "details", "Field required"),
]


@pytest.mark.parametrize(
    "name, path, value, loc, fragment",
    INVALID_SUBMISSIONS,
    ids=[f"{r[0]}:{r[1]}:{str(r[2])[:20]}" for r in INVALID_SUBMISSIONS],
)
def test_invalid_submission_is_rejected_naming_the_field(name, path, value, loc, fragment):
    data = mutate(submission(name), path, value)
    with pytest.raises(ValidationError) as err:
        SUBMISSION_MODELS[Source(REPORTS[name]["source"])].model_validate(data)
    assert_rejected(err.value, loc, fragment)


def test_each_example_is_valid_before_mutation():
    """The table above is meaningful only if the unchanged examples are accepted."""
    for name, data in REPORTS.items():
        SUBMISSION_MODELS[Source(data["source"])].model_validate(submission(name))


INVALID_REPORTS = [
    ("report_id", "not-a-uuid", "report_id", "should match pattern"),
    (
        "report_id",
        "6f1d2c1e-5b7a-4c35-9a43-6c7a3b0f2e91",
        "report_id",
        "should match pattern",
    ),  # UUIDv4
    ("source_system", "School System", "source_system", "should match pattern"),
    ("received_at", "2026-11-20T09:38:05", "received_at", "timezone"),
    ("schema_version", 2, "schema_version", "less than or equal to 1"),
    ("reported_at", "2026-11-20T12:00:00+08:00", "", "reported_at is later than received_at"),
    ("dna_sample_id", "x", "", DNA),
    ("subjects.0.biometric_template", "x", "", "(field 'subjects.0.biometric_template')"),
]


@pytest.mark.parametrize("path, value, loc, fragment", INVALID_REPORTS, ids=[r[0] for r in INVALID_REPORTS])
def test_invalid_report_is_rejected_naming_the_field(path, value, loc, fragment):
    data = mutate(copy.deepcopy(REPORTS["school-missing_child"]), path, value)
    with pytest.raises(ValidationError) as err:
        parse_report(json.dumps(data))
    assert_rejected(err.value, loc, fragment, strip_tag=True)


def test_report_with_an_unknown_source_names_the_discriminator():
    data = dict(REPORTS["school-missing_child"], source="police")
    with pytest.raises(ValidationError) as err:
        parse_report(json.dumps(data))
    assert "'source'" in str(err.value) and "police" in str(err.value)


def test_report_body_is_checked_against_its_own_source():
    data = dict(REPORTS["school-missing_child"], source="hospital")  # school details under the hospital tag
    with pytest.raises(ValidationError) as err:
        parse_report(json.dumps(data))
    assert_rejected(err.value, "details.encounter_type", "Field required", strip_tag=True)


# Event rows: (example, path, new value, expected location, message fragment).
OTHER_REFERRAL = "00000000-0000-5000-8000-000000000000"
INVALID_EVENTS = [
    (
        "ack-declined",
        "reason_code",
        DELETE,
        "reason_code",
        "reason_code is required when declining",
    ),
    ("ack-declined", "reason", DELETE, "reason", "reason is required when declining"),
    ("ack-declined", "reason", "  ", "reason", "reason is required when declining"),
    (
        "ack-completed",
        "outcome_code",
        DELETE,
        "outcome_code",
        "outcome_code is required when completing",
    ),
    ("ack-completed", "outcome", None, "outcome", "outcome is required when completing"),
    (
        "ack-accepted",
        "outcome_code",
        "case_opened",
        "outcome_code",
        "belongs to stage 'completed' only",
    ),
    ("ack-accepted", "reason", "because", "reason", "belongs to stage 'declined' only"),
    ("ack-accepted", "stage", "routed", "stage", "Input should be"),
    ("ack-accepted", "by", "张三 警官", "by", "should match pattern"),
    ("ack-accepted", "case_owner", "Officer Zhang", "case_owner", "should match pattern"),
    ("ack-accepted", "department", "Police", "department", "should match pattern"),
    ("ack-accepted", "department", "education", "", "referral_id is not the referral of report_id"),
    ("ack-accepted", "ack_id", OTHER_REFERRAL, "", "ack_id is not ack_id_for(referral_id, stage)"),
    ("ack-accepted", "at", "2026-11-20T10:00:00", "at", "timezone"),
    ("ack-declined", "reason_code", "too_busy", "reason_code", "Input should be"),
    ("referral", "referral_id", OTHER_REFERRAL, "", "referral_id is not the referral of report_id"),
    ("referral", "rule_path", [], "rule_path", "at least 1"),
    (
        "referral",
        "due.received",
        "2027-01-01T00:00:00+08:00",
        "due",
        "received <= decided <= completed",
    ),
    ("referral", "fields", ["category", "category"], "fields", "must not repeat"),
    ("escalation", "level", 0, "level", "greater than or equal to 1"),
    ("escalation", "repeat", 1, "", "escalation_id is not escalation_id_for"),
    ("escalation", "target", "Police Chief", "target", "should match pattern"),
    ("escalation", "stage_overdue", "routed", "stage_overdue", "Input should be"),
    ("dead-letter", "value_b64", "not base64!", "value_b64", "is not standard base64"),
    ("dead-letter", "offset", -1, "offset", "greater than or equal to 0"),
    ("dead-letter", "error", "x" * 2001, "error", "at most 2000"),
    (
        "routing-decision",
        "decision_id",
        "019aa0f2-0001-7000-8000-000000000001",
        "",
        "decision_id must equal report_id",
    ),
    ("routing-decision", "recipients", [], "recipients", "at least 1"),
    ("routing-decision", "priority", "high", "", "priority 'high' is below the urgency 'critical'"),
    ("routing-decision", "priority_route", ["root", "trafficking"], "", "priority_route is given but"),
    ("routing-decision", "priority_route", [], "priority_route", "at least 1"),
    ("routing-decision", "matched_by", [["category"]], "", "one entry per matched route"),
    (
        "routing-decision",
        "recipients.1.referral_id",
        OTHER_REFERRAL,
        "",
        "recipients.1.referral_id is not",
    ),
    (
        "report-status",
        "departments.0.outcome_code",
        "case_opened",
        "departments.0.outcome_code",
        "belongs to stage 'completed' only",
    ),
    (
        "report-status",
        "departments.0.decline_reason_code",
        "duplicate",
        "departments.0.decline_reason_code",
        "belongs to stage 'declined' only",
    ),
    ("report-status", "seq", -1, "seq", "greater than or equal to 0"),
    (
        "report-status",
        "departments.0.note",
        "free text",
        "departments.0.note",
        "Extra inputs are not permitted",
    ),
]
EVENT_MODEL_OF = {
    "referral": "Referral",
    "ack-accepted": "Ack",
    "ack-declined": "Ack",
    "ack-completed": "Ack",
    "escalation": "Escalation",
    "routing-decision": "RoutingDecision",
    "report-status": "ReportStatus",
    "dead-letter": "DeadLetter",
}


@pytest.mark.parametrize(
    "name, path, value, loc, fragment",
    INVALID_EVENTS,
    ids=[f"{r[0]}:{r[1]}:{str(r[2])[:12]}" for r in INVALID_EVENTS],
)
def test_invalid_event_is_rejected_naming_the_field(name, path, value, loc, fragment):
    data = mutate(copy.deepcopy(EVENTS[name]), path, value)
    with pytest.raises(ValidationError) as err:
        EVENT_MODELS[EVENT_MODEL_OF[name]].model_validate(data)
    assert_rejected(err.value, loc, fragment)


def test_recipients_of_a_decision_are_unique():
    data = copy.deepcopy(EVENTS["routing-decision"])
    data["recipients"].append(copy.deepcopy(data["recipients"][0]))
    with pytest.raises(ValidationError, match="appears twice"):
        EVENT_MODELS["RoutingDecision"].model_validate(data)


def test_age_band_is_derived_from_age_and_only_then():
    assert Subject(role="victim", age=15).age_band == AgeBand.adolescent
    assert Subject(role="victim", age=15, age_band="unknown").age_band == AgeBand.adolescent
    assert Subject(role="victim", age=15, age_band="14-17").age_band == AgeBand.adolescent
    assert Subject(role="victim", age_band="6-13").age is None
    assert Subject.model_validate_json('{"role": "victim", "age": 13}').age_band == AgeBand.child
    assert Subject(role="victim").age_band == AgeBand.unknown


@pytest.mark.parametrize(
    "subject, minor, under_14, foreign, disabled",
    [
        ({"age": 17}, True, False, False, False),
        ({"age": 18}, False, False, False, False),
        ({"age": 13, "nationality": "VN"}, True, True, True, False),
        ({"age_band": "0-5", "nationality": "CN"}, True, True, False, False),
        ({"age_band": "unknown", "disability": "intellectual"}, False, False, False, True),
        ({"age": 40, "disability": "unknown"}, False, False, False, False),
        ({"age": 40, "disability": "none", "nationality": "MM"}, False, False, True, False),
    ],
)
def test_subject_properties(subject, minor, under_14, foreign, disabled):
    s = Subject(role="victim", **subject)
    assert (s.is_minor, s.is_under_14, s.is_foreign, s.has_disability) == (
        minor,
        under_14,
        foreign,
        disabled,
    )


def test_consent_refused_is_fine_for_an_adult_victim_and_a_minor_suspect():
    data = submission("hospital-suspected_trafficking_woman")
    assert data["consent"] == Consent.refused.value
    data["subjects"].append({"role": "suspect", "age": 16})
    assert HospitalSubmission.model_validate(data).consent == Consent.refused


def test_unknown_age_satisfies_a_child_category():
    data = submission("school-missing_child")
    data["subjects"] = [{"role": "victim", "age_band": "unknown"}]
    SUBMISSION_MODELS[Source.school].model_validate(data)


def test_make_report_takes_only_the_submission_of_its_own_sector():
    venue = SUBMISSION_MODELS[Source.venue].model_validate(submission("venue-minor_in_venue"))
    kwargs = dict(report_id="019aa0f2-0001-7000-8000-000000000001", source_system="x-sys", received_at=NOW)
    with pytest.raises(TypeError, match="hospital report needs a HospitalSubmission"):
        make_report(venue, source=Source.hospital, **kwargs)
    report = make_report(venue, source="venue", **kwargs)
    with pytest.raises(TypeError, match="not VenueReport"):
        make_report(report, source=Source.venue, **kwargs)  # a report is not re-stamped
    with pytest.raises(ValidationError, match="report_id"):
        make_report(venue, source=Source.venue, **{**kwargs, "report_id": "1"})


def test_parse_submission_accepts_bytes_and_objects_and_picks_the_model_by_sector():
    data = submission("labour-forced_labour")
    assert parse_submission("labour", json.dumps(data).encode()) == parse_submission(Source.labour, data)
    with pytest.raises(ValidationError, match="employer_name"):
        parse_submission("venue", data)  # the sector decides the model, not the body


@pytest.mark.parametrize(
    "summary, path",
    [
        ("A pupil was taken by 示例嫌疑人戊 at the gate.", "subjects.1.name"),
        ("示例儿童甲 was absent", "subjects.0.name"),
        ("id EX000000000000001 was shown", "subjects.0.id_number"),
        ("the teacher 示例教师乙 saw it", "reporter.name"),
        ("call 022 0000 0002 for details", "reporter.phone"),
        ("seen at 示例镇示例村1号（虚构）", "location.address"),
        ("SEEN AT 示例镇示例村1号（虚构）", "location.address"),
    ],
)
def test_a_shareable_summary_that_names_someone_is_refused_naming_the_field_not_the_value(summary, path):
    data = submission("school-suspected_trafficking_child")
    data["shareable_summary"] = summary
    with pytest.raises(ValidationError) as err:
        SchoolSubmission.model_validate(data)
    (error,) = err.value.errors()
    assert path in error["msg"] and "shareable_summary must not identify anyone" in error["msg"]
    assert summary not in error["msg"]


@pytest.mark.parametrize(
    "summary",
    [
        "A girl of 9 was collected by a man who is not her guardian; the school called the police.",
        "一名9岁女孩被非监护人接走，学校已报警。",
        "room 0002 on floor 2",  # four digits of a phone are no phone
    ],
)
def test_a_shareable_summary_that_names_nobody_is_accepted(summary):
    data = submission("school-suspected_trafficking_child")
    data["shareable_summary"] = summary
    assert SchoolSubmission.model_validate(data).shareable_summary == summary
