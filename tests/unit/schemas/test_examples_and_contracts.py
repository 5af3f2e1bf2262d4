"""Examples, compatibility with released versions, and the published contracts."""

import json

import jsonschema
import pytest

from schemas import EVENT_MODELS, REPORT_MODELS, Category, Source, parse_report
from schemas.examples import load_examples
from schemas.export import HERE, models_by_file, render

REPORTS = load_examples("v1", "reports")
EVENTS = load_examples("v1", "events")
EVENT_FILE_MODEL = {
    "referral": "Referral", "ack-accepted": "Ack", "ack-declined": "Ack", "ack-completed": "Ack",
    "escalation": "Escalation", "routing-decision": "RoutingDecision",
    "report-status": "ReportStatus", "dead-letter": "DeadLetter",
}


def test_examples_cover_every_source_and_category():
    assert {r["source"] for r in REPORTS.values()} == {s.value for s in Source}
    assert {r["category"] for r in REPORTS.values()} == {c.value for c in Category}
    assert set(EVENTS) == set(EVENT_FILE_MODEL)


@pytest.mark.parametrize("name", sorted(REPORTS))
def test_v1_report_examples_still_parse_and_round_trip(name):
    data = REPORTS[name]
    report = parse_report(json.dumps(data))
    assert isinstance(report, REPORT_MODELS[Source(data["source"])])
    assert report.model_dump(mode="json") == data
    assert parse_report(report.model_dump_json()) == report


@pytest.mark.parametrize("name", sorted(EVENTS))
def test_v1_event_examples_still_parse_and_round_trip(name):
    model = EVENT_MODELS[EVENT_FILE_MODEL[name]]
    event = model.model_validate(EVENTS[name])
    assert event.model_dump(mode="json") == EVENTS[name]
    assert model.model_validate_json(event.model_dump_json()) == event


def _validator(file_name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((HERE / "json" / f"{file_name}.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("name", sorted(REPORTS))
def test_exported_json_schema_accepts_examples(name):
    data = REPORTS[name]
    _validator(f"{data['source']}-report").validate(data)
    _validator("report").validate(data)


@pytest.mark.parametrize("name", sorted(EVENTS))
def test_exported_event_schemas_accept_examples(name):
    file_name = {"Referral": "referral", "Ack": "ack", "Escalation": "escalation",
                 "RoutingDecision": "routing-decision", "ReportStatus": "report-status",
                 "DeadLetter": "dead-letter"}[EVENT_FILE_MODEL[name]]
    _validator(file_name).validate(EVENTS[name])


def test_exported_json_schema_rejects_what_the_model_rejects():
    data = dict(REPORTS["school-missing_child"])
    data["category"] = "kidnapping"
    with pytest.raises(jsonschema.ValidationError):
        _validator("school-report").validate(data)
    data = dict(REPORTS["school-missing_child"], unexpected="x")
    with pytest.raises(jsonschema.ValidationError):
        _validator("school-report").validate(data)


def test_committed_contracts_are_current():
    rendered = render()
    stale = [rel for rel, text in rendered.items() if not (HERE / rel).exists() or (HERE / rel).read_text() != text]
    extra = sorted(p.name for p in (HERE / "json").glob("*.json") if f"json/{p.name}" not in rendered)
    assert not stale and not extra, (
        f"stale {stale} / extra {extra}: run `cluebus schemas export` and commit the result"
    )
    assert set(models_by_file()) == {r.split("/")[1][:-5] for r in rendered if r.startswith("json/")}


def test_asyncapi_names_every_topic_and_both_ends():
    import yaml

    doc = yaml.safe_load((HERE / "asyncapi.yaml").read_text())
    assert doc["asyncapi"] == "3.0.0"
    addresses = {c["address"] for c in doc["channels"].values()}
    from services.common.topics import TopicNames

    t = TopicNames("cluebus")
    assert set(t.reports()) | {t.referral("{department}"), t.decisions, t.acks, t.escalations,
                                t.status, t.deadletter, t.tracker_ticks} == addresses
    for channel in doc["channels"]:
        actions = {op["action"] for op in doc["operations"].values()
                   if op["channel"]["$ref"] == f"#/channels/{channel}"}
        assert actions == {"send", "receive"}, channel
