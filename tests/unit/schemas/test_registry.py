"""The field registry that drives redaction and log scrubbing: exact, marked, free of DNA."""

from __future__ import annotations

import pytest

from schemas import (
    DNA_KEY,
    EVENT_MODELS,
    REPORT_MODELS,
    SENSITIVITY_KEY,
    SUBMISSION_MODELS,
    Sensitivity,
    Source,
    dna,
    field_paths,
    free_text_fields,
    sensitive_fields,
)
from schemas.dna import find_dna_keys, has_dna_keys
from schemas.events import Ack

I, P, S = Sensitivity.identifying, Sensitivity.personal, Sensitivity.special  # noqa: E741
ALL_MODELS = [*REPORT_MODELS.values(), *SUBMISSION_MODELS.values(), *EVENT_MODELS.values()]

COMMON = {
    "subjects.name": I,
    "subjects.id_number": I,
    "subjects.phone": I,
    "subjects.id_type": I,
    "reporter.name": I,
    "reporter.phone": I,
    "location.address": I,
    "subjects.age": P,
    "subjects.age_band": P,
    "subjects.sex": P,
    "subjects.nationality": P,
    "subjects.description": P,
    "narrative": P,
    "shareable_summary": P,
    "location.description": P,
    "attachments.description": P,
    "subjects.disability": S,
}
PER_SOURCE = {
    Source.hospital: {
        "details.record_number": I,
        "details.newborn.birth_certificate_number": I,
        "details.identity_check.anomaly": P,
    },
    Source.school: {"details.pick_up_description": P},
    Source.labour: {"details.workplace_address": I},
    Source.marriage: {"details.application_ref": I},
    Source.venue: {},
}


@pytest.mark.parametrize("source", list(Source))
def test_sensitive_fields_of_each_report_are_exactly_these(source):
    expected = COMMON | PER_SOURCE[source]
    assert sensitive_fields(REPORT_MODELS[source]) == expected
    assert sensitive_fields(SUBMISSION_MODELS[source]) == expected  # the envelope holds nothing personal


def test_event_marks():
    assert sensitive_fields(Ack) == {"reason": P, "outcome": P}
    for name in ("Escalation", "RoutingDecision", "ReportStatus", "DeadLetter", "AccessEvent", "Tick"):
        assert sensitive_fields(EVENT_MODELS[name]) == {}, name


FREE_TEXT = {"narrative", "subjects.description", "location.description", "attachments.description"}
FREE_TEXT_PER_SOURCE = {
    Source.hospital: {"details.identity_check.anomaly"},
    Source.school: {"details.pick_up_description"},
}


@pytest.mark.parametrize("source", list(Source))
def test_free_text_fields_are_exactly_these(source):
    """Free text may name anyone, so redaction withholds it where a subject's identity may not go:
    a new free-text field must be listed here (and its sharing decided) or this fails."""
    model = REPORT_MODELS[source]
    assert free_text_fields(model) == FREE_TEXT | FREE_TEXT_PER_SOURCE.get(source, set())
    assert free_text_fields(model, shareable=True) == {"shareable_summary"}


def test_field_paths_hold_containers_and_leaves_without_indexes():
    paths = field_paths(REPORT_MODELS[Source.hospital])
    assert {
        "subjects",
        "subjects.name",
        "details",
        "details.newborn",
        "details.newborn.born_at",
        "details.identity_check.document_matches_patient",
        "attachments.uri",
        "report_id",
    } <= paths
    assert not [p for p in paths if any(part.isdigit() for part in p.split("."))]
    assert "details.employer_name" not in paths
    assert "details.employer_name" in field_paths(REPORT_MODELS[Source.labour])
    assert field_paths(SUBMISSION_MODELS[Source.school]) == field_paths(REPORT_MODELS[Source.school]) - {
        "schema_version",
        "report_id",
        "source",
        "source_system",
        "received_at",
    }


def test_registry_is_cached_and_callers_cannot_corrupt_it():
    model = REPORT_MODELS[Source.school]
    assert field_paths(model) is field_paths(model)
    marks = sensitive_fields(model)
    marks["subjects.name"] = Sensitivity.personal
    marks["new"] = Sensitivity.biometric
    assert sensitive_fields(model)["subjects.name"] == I and "new" not in sensitive_fields(model)


def _schema_paths(schema: dict, defs: dict, prefix: str = "") -> dict[str, str | None]:
    """Independent walk of an exported JSON Schema: path -> sensitivity mark."""
    out: dict[str, str | None] = {}

    def resolve(node: dict) -> list[dict]:
        if "$ref" in node:
            return resolve(defs[node["$ref"].split("/")[-1]])
        if "anyOf" in node:
            return [n for sub in node["anyOf"] for n in resolve(sub)]
        if node.get("type") == "array":
            items = node.get("items") or {}
            return resolve(items) if isinstance(items, dict) else []
        return [node]

    for name, prop in schema.get("properties", {}).items():
        path = f"{prefix}{name}"
        out[path] = prop.get(SENSITIVITY_KEY)
        for target in resolve(prop):
            if "properties" in target:
                out |= _schema_paths(target, defs, path + ".")
    return out


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m.__name__)
def test_registry_agrees_with_the_published_json_schema(model):
    schema = model.model_json_schema()
    walked = _schema_paths(schema, schema.get("$defs", {}))
    assert set(walked) == set(field_paths(model))
    assert {p: Sensitivity(m) for p, m in walked.items() if m} == sensitive_fields(model)


PERSONAL_LEAF_NAMES = {
    "name",
    "phone",
    "id_number",
    "address",
    "description",
    "narrative",
    "anomaly",
    "reason",
    "outcome",
    "record_number",
    "application_ref",
    "birth_certificate_number",
    "workplace_address",
    "pick_up_description",
    "age",
    "nationality",
    "disability",
}
ORGANISATION_NAMES = {
    "details.employer_name",
    "details.agency_name",
    "details.school_name",
    "details.venue_name",
}
CODES = {
    ("Escalation", "reason"),  # an EscalationReason code, not free text
    ("Referral", "grants.reason"),  # a grant's reason, from the rules file
    ("RoutingDecision", "grants.reason"),
}


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m.__name__)
def test_every_field_that_looks_personal_is_marked(model):
    """A new field about a person must carry a mark, or redaction and log scrubbing miss it."""
    marks = sensitive_fields(model)
    unmarked = sorted(
        p
        for p in field_paths(model)
        if p.rsplit(".", 1)[-1] in PERSONAL_LEAF_NAMES
        and p not in marks
        and p not in ORGANISATION_NAMES
        and (model.__name__, p) not in CODES
    )
    assert not unmarked


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m.__name__)
def test_no_field_is_dna_or_biometric(model):
    assert not [p for p in field_paths(model) if DNA_KEY.search(p)]
    assert Sensitivity.biometric not in sensitive_fields(model).values()


@pytest.mark.parametrize(
    "key, is_dna",
    [
        ("dna", True),
        ("DNA_profile", True),
        ("genetic_test", True),
        ("Biometric", True),
        ("fingerprint_id", True),
        ("iris", True),
        ("faceprint", True),
        ("face_print", True),
        ("voiceprint", True),
        ("name", False),
        ("face", False),
        ("print_ref", False),
        ("district_code", False),
        ("voice_note", False),
    ],
)
def test_dna_key_pattern(key, is_dna):
    assert bool(DNA_KEY.search(key)) is is_dna


def test_find_dna_keys_reports_every_path_with_list_indexes():
    data = {
        "a": [{"x": 1}, {"fingerprint": 2}],
        "b": {"c": {"DNA": 3}},
        "dna_free_text": "value only: dna",
    }
    assert find_dna_keys(data) == ["a.1.fingerprint", "b.c.DNA", "dna_free_text"]
    assert find_dna_keys({"narrative": "a DNA test was mentioned"}) == []  # values are not keys


@pytest.mark.parametrize(
    "data",
    [
        {"a": [{"x": 1}, {"fingerprint": 2}]},
        {"b": {"c": {"DNA": 3}}},
        {"outer": ({"inner": [[{"Iris_scan": 1}]]},)},
        {"narrative": "a DNA test was mentioned", "subjects": [{"name": "x"}]},
        {1: {"genetic": 1}},
        {"x" * 100: {"y" * 100: 1}},
        [{"ok": 1}, {"voiceprint": 2}],
        "dna",
        {},
    ],
)
def test_has_dna_keys_agrees_with_find_dna_keys(data):
    # Twice: the second pass answers from the cache of clean keys and must agree as well.
    for _ in range(2):
        assert has_dna_keys(data) is bool(find_dna_keys(data))


def test_a_key_seen_clean_never_hides_a_dna_key_beside_it():
    assert has_dna_keys({"category": 1, "details": {"notes": 2}}) is False
    assert has_dna_keys({"category": 1, "details": {"notes": 2, "dna_profile": 3}}) is True


def test_the_clean_key_cache_is_bounded():
    for i in range(dna._CLEAN_KEYS_MAX + 500):
        has_dna_keys({f"field_{i}": 1, "z" * (dna._CLEAN_KEY_MAX_LEN + 1): 2})
    assert len(dna._CLEAN_KEYS) <= dna._CLEAN_KEYS_MAX
    assert all(len(key) <= dna._CLEAN_KEY_MAX_LEN for key in dna._CLEAN_KEYS)


def _objects(schema):
    """Every object schema in a JSON Schema, with the path of keys that leads to it."""
    stack = [((), schema)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, dict):
            if node.get("type") == "object" or "properties" in node:
                yield path, node
            stack.extend(((*path, k), v) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend(((*path, i), v) for i, v in enumerate(node))


@pytest.mark.parametrize("model", [*REPORT_MODELS.values(), *SUBMISSION_MODELS.values()], ids=lambda m: m.__name__)
def test_every_object_of_a_report_or_submission_forbids_undeclared_keys(model):
    # What lets reject_dna_keys look for DNA keys only when validation fails: no object holds a key
    # it does not declare (and test_no_model_declares_a_dna_like_field: none declares one like DNA).
    objects = list(_objects(model.model_json_schema()))
    assert objects
    for path, node in objects:
        assert node.get("properties"), f"{path}: an object with no declared keys"
        assert node.get("additionalProperties") is False, f"{path}: undeclared keys allowed"


def _with_key_everywhere(data, key):
    """Copies of ``data`` with ``key`` added to one of its objects, once for every object in it."""
    if isinstance(data, dict):
        yield {**data, key: "x"}
        for k, v in data.items():
            for changed in _with_key_everywhere(v, key):
                yield {**data, k: changed}
    elif isinstance(data, list):
        for i, v in enumerate(data):
            for changed in _with_key_everywhere(v, key):
                yield [*data[:i], changed, *data[i + 1 :]]


ENVELOPE = ("schema_version", "report_id", "source", "source_system", "received_at")


@pytest.mark.parametrize("kind", ["report", "submission"])
def test_a_dna_key_in_any_object_of_any_example_is_refused_with_the_legal_reason(kind):
    import json

    from pydantic import ValidationError

    from schemas import parse_report, parse_submission
    from schemas.examples import load_examples

    def parse(source, data):
        if kind == "report":
            return parse_report(json.dumps(data))
        return parse_submission(source, json.dumps({k: v for k, v in data.items() if k not in ENVELOPE}))

    tried = 0
    for name, example in load_examples("v1", "reports").items():
        parse(example["source"], example)  # valid as it is
        for changed in _with_key_everywhere(example, "dna_profile"):
            with pytest.raises(ValidationError) as err:
                parse(example["source"], changed)
            (error,) = err.value.errors()
            assert "may only be collected by the police" in error["msg"], (name, error)
            tried += 1
    assert tried > 100
