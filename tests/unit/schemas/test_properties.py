"""Property tests over generated valid submissions of every source."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from functools import cache

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from schemas import (
    ENVELOPE_FIELDS,
    REPORT_MODELS,
    SUBMISSION_MODELS,
    ReportAdapter,
    Source,
    dump_event,
    field_paths,
    make_report,
    parse_report,
)
from schemas.export import HERE, JSON_DIR
from services.common.ids import uuid7

from .strategies import submissions

FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@cache
def validator(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads((HERE / JSON_DIR / f"{name}.json").read_text(encoding="utf-8")))


def _paths(data, prefix: str = "") -> set[str]:
    out: set[str] = set()
    if isinstance(data, dict):
        for key, value in data.items():
            path = f"{prefix}.{key}" if prefix else key
            out |= {path} | _paths(value, path)
    elif isinstance(data, list):
        for item in data:
            out |= _paths(item, prefix)
    return out


@FAST
@given(submissions())
def test_generated_submissions_validate_round_trip_and_become_reports(case):
    source, data = case
    model = SUBMISSION_MODELS[source]
    submission = model.model_validate(data)
    assert model.model_validate_json(submission.model_dump_json()) == submission
    assert model.model_validate(submission.model_dump(mode="json")) == submission
    validator(f"{source.value}-submission").validate(json.loads(submission.model_dump_json()))

    report = make_report(
        submission,
        source=source,
        report_id=uuid7(),
        source_system="sys-1",
        received_at=datetime.now(UTC),
    )
    assert type(report) is REPORT_MODELS[source]
    assert report.source == source
    assert parse_report(dump_event(report)) == report
    as_json = report.model_dump(mode="json")
    assert ReportAdapter.validate_python(as_json) == report
    validator("report").validate(as_json)
    # The registry knows every key a real report carries (redaction relies on it).
    assert _paths(as_json) <= field_paths(REPORT_MODELS[source])
    # Nothing from the submission is lost or altered by stamping the envelope.
    assert {k: v for k, v in as_json.items() if k not in ENVELOPE_FIELDS} == json.loads(submission.model_dump_json())


DNA_KEYS = st.sampled_from(
    [
        "dna",
        "DNA_profile",
        "genetic_marker",
        "fingerprints",
        "iris_scan",
        "faceprint",
        "face_print",
        "voiceprint",
        "biometric_id",
        "sampleDNA",
    ]
)


@FAST
@given(submissions(), DNA_KEYS, st.sampled_from(["", "subjects.0", "details", "reporter", "location"]))
def test_a_dna_like_key_anywhere_is_rejected_with_the_legal_reason(case, key, where):
    source, data = case
    data = copy.deepcopy(data)
    node = data
    for part in filter(None, where.split(".")):
        node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
    node[key] = "ACGT"
    path = f"{where}.{key}" if where else key
    with pytest.raises(ValidationError) as err:
        SUBMISSION_MODELS[source].model_validate(data)
    assert [e["msg"] for e in err.value.errors()] == [
        f"Value error, DNA and biometric data may only be collected by the police (field '{path}'); do not send it"
    ]


@FAST
@given(submissions(source=Source.school))
def test_school_pupil_is_always_a_minor_or_of_unknown_age(case):
    _, data = case
    submission = SUBMISSION_MODELS[Source.school].model_validate(data)
    assert submission.pupil.is_minor or submission.pupil.age_unknown
