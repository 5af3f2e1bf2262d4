"""Every bad input is rejected with the offending field named."""

import copy
import json
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from schemas import (
    SUBMISSION_MODELS,
    Ack,
    AgeBand,
    Source,
    Subject,
    make_report,
    sensitive_fields,
    REPORT_MODELS,
    Sensitivity,
    field_paths,
)
from schemas.base import DNA_KEY
from schemas.examples import load_examples

REPORTS = load_examples("v1", "reports")
ENVELOPE = ("schema_version", "report_id", "source", "source_system", "received_at")


def submission(name: str) -> dict:
    data = copy.deepcopy(REPORTS[name])
    for key in ENVELOPE:
        data.pop(key)
    return data


def _set(data, path, value):
    *parents, last = path
    node = data
    for p in parents:
        node = node[p]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return data


_DELETE = object()
NOW = datetime.now(UTC)

INVALID = [
    # (example, path, new value, source, text expected in the error: field path or reason)
    ("hospital-surrogacy", ("category",), _DELETE, "hospital", "category"),
    ("hospital-surrogacy", ("category",), "kidnapping", "hospital", "category"),
    ("hospital-surrogacy", ("urgency",), "asap", "hospital", "urgency"),
    ("hospital-surrogacy", ("source_ref",), "", "hospital", "source_ref"),
    ("hospital-surrogacy", ("source_ref",), "has spaces in it", "hospital", "source_ref"),
    ("hospital-surrogacy", ("reported_at",), "2026-11-20T09:30:00", "hospital", "reported_at"),
    ("hospital-surrogacy", ("reported_at",), (NOW + timedelta(days=1)).isoformat(), "hospital", "in the future"),
    ("hospital-surrogacy", ("subjects",), [], "hospital", "subjects"),
    ("hospital-surrogacy", ("subjects",), [{"role": "victim", "sex": "female"}] * 51, "hospital", "subjects"),
    ("hospital-surrogacy", ("subjects", 0, "age"), 40, "hospital", "does not agree with age_band"),
    ("hospital-surrogacy", ("subjects", 0, "age"), 130, "hospital", "subjects.0.age"),
    ("hospital-surrogacy", ("subjects", 0, "nationality"), "china", "hospital", "subjects.0.nationality"),
    ("hospital-surrogacy", ("subjects", 0, "phone"), "call me", "hospital", "subjects.0.phone"),
    ("hospital-surrogacy", ("subjects", 0, "id_number"), "EX12345", "hospital", "id_type is required"),
    ("hospital-harm_to_minor", ("consent",), "refused", "hospital", "minor's report is shared without consent"),
    ("hospital-harm_to_minor", ("subjects",), [{"role": "victim", "age": 30}], "hospital", "concerns a child"),
    ("hospital-suspected_trafficking_woman", ("subjects", 0, "role"), "witness", "hospital",
     "needs at least one subject with role 'victim'"),
    ("hospital-surrogacy", ("dna_profile",), "AGCT", "hospital", "only be collected by the police (field 'dna_profile')"),
    ("hospital-surrogacy", ("subjects", 0, "fingerprint_ref"), "x", "hospital", "field 'subjects.0.fingerprint_ref'"),
    ("hospital-surrogacy", ("details", "newborn"), {"Genetic_test": "x"}, "hospital", "details.newborn.Genetic_test"),
    ("hospital-surrogacy", ("attachments", 0, "uri"), "data:application/pdf;base64,AAAA", "hospital", "data: URI"),
    ("hospital-surrogacy", ("attachments", 0, "uri"), "ftp://x/y", "hospital", "reference"),
    ("hospital-surrogacy", ("location", "district_code"), "12011", "hospital", "location.district_code"),
    ("hospital-surrogacy", ("location", "township_code"), "abc", "hospital", "location.township_code"),
    ("hospital-surrogacy", ("unexpected",), 1, "hospital", "unexpected"),
    ("hospital-surrogacy", ("indicators",), ["deception", "deception"], "hospital", "must not repeat"),
    ("hospital-surrogacy", ("details", "encounter_type"), "visit", "hospital", "details.encounter_type"),
    ("labour-child_labour", ("details", "employer_credit_code"), "123", "labour", "details.employer_credit_code"),
    ("school-missing_child", ("details", "pupil_subject_index"), 3, "school", "pupil_subject_index 3"),
    ("marriage-cross_border_marriage", ("details", "party_nationalities"), ["CN", "VN", "US"], "marriage",
     "details.party_nationalities"),
]


@pytest.mark.parametrize("name, path, value, source, expected", INVALID,
                         ids=[f"{r[0]}:{'.'.join(map(str, r[1]))}" for r in INVALID])
def test_invalid_submission_is_rejected_naming_the_field(name, path, value, source, expected):
    data = _set(submission(name), path, copy.deepcopy(value))
    model = SUBMISSION_MODELS[Source(source)]
    with pytest.raises(ValidationError) as err:
        model.model_validate(data)
    text = "; ".join(
        f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.value.errors()
    )
    assert expected in text, text


def test_valid_submissions_from_every_example_are_accepted():
    for name, data in REPORTS.items():
        SUBMISSION_MODELS[Source(data["source"])].model_validate(submission(name))


def test_envelope_is_stamped_not_taken_from_the_body():
    data = submission("venue-minor_in_venue")
    data["source_system"] = "forged"
    with pytest.raises(ValidationError, match="source_system"):
        SUBMISSION_MODELS[Source.venue].model_validate(data)


def test_make_report_rejects_a_submission_of_another_sector():
    sub = SUBMISSION_MODELS[Source.venue].model_validate(submission("venue-minor_in_venue"))
    with pytest.raises(TypeError, match="hospital report needs a HospitalSubmission"):
        make_report(sub, source=Source.hospital, report_id="019aa0f2-0001-7000-8000-000000000001",
                    source_system="x-sys", received_at=NOW)


@pytest.mark.parametrize(
    "fields, expected",
    [
        ({"stage": "declined"}, "reason_code and reason are required"),
        ({"stage": "declined", "reason_code": "other"}, "reason_code and reason are required"),
        ({"stage": "completed"}, "outcome_code and outcome are required"),
        ({"stage": "accepted", "outcome_code": "case_opened", "outcome": "x"}, "belong to completion only"),
        ({"stage": "received", "reason_code": "other", "reason": "x"}, "belong to a decline only"),
        ({"stage": "routed"}, "stage"),
        ({"stage": "accepted", "by": "张三 警官"}, "by"),
        ({"stage": "accepted", "department": "Police"}, "department"),
    ],
)
def test_invalid_acks(fields, expected):
    base = {"referral_id": "r", "report_id": "x", "department": "police", "by": "officer.1",
            "at": NOW.isoformat()}
    with pytest.raises(ValidationError) as err:
        Ack.model_validate({**base, **fields})
    assert expected in str(err.value)


def test_ack_id_is_derived_and_stable():
    base = {"referral_id": "r-1", "report_id": "x", "department": "police", "by": "o.1",
            "at": NOW.isoformat(), "stage": "received"}
    assert Ack.model_validate(base).ack_id == Ack.model_validate(base).ack_id
    assert Ack.model_validate(base).ack_id != Ack.model_validate({**base, "stage": "accepted"}).ack_id


def test_age_band_is_derived_from_age():
    assert Subject(role="victim", age=15).age_band == AgeBand.adolescent
    assert Subject(role="victim", age=15).is_minor
    assert not Subject(role="victim", age_band="18-29").is_minor


def test_sensitive_fields_are_marked_and_none_is_biometric():
    for source, model in REPORT_MODELS.items():
        marks = sensitive_fields(model)
        assert marks["subjects.name"] == Sensitivity.identifying
        assert marks["subjects.id_number"] == Sensitivity.identifying
        assert marks["reporter.phone"] == Sensitivity.identifying
        assert marks["subjects.disability"] == Sensitivity.special
        assert marks["narrative"] == Sensitivity.personal
        assert Sensitivity.biometric not in marks.values(), source
        assert not [p for p in field_paths(model) if DNA_KEY.search(p)], source
    assert sensitive_fields(REPORT_MODELS[Source.hospital])["details.record_number"] == Sensitivity.identifying


def test_json_schema_carries_sensitivity_marks():
    schema = json.dumps(REPORT_MODELS[Source.school].model_json_schema())
    assert '"x-cluebus-sensitivity": "identifying"' in schema
