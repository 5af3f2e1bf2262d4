"""Examples, compatibility with released versions, and the published contracts."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from functools import cache
from pathlib import Path

import jsonschema
import pytest

from schemas import EVENT_MODELS, REPORT_MODELS, Category, Source, dump_event, parse_report
from schemas.examples import load_examples
from schemas.export import ASYNCAPI, HERE, JSON_DIR, export, models_by_file, render
from services.common.topics import TopicNames

REPORTS = load_examples("v1", "reports")
EVENTS = load_examples("v1", "events")
EVENT_FILE_MODEL = {
    "referral": "Referral",
    "ack-accepted": "Ack",
    "ack-declined": "Ack",
    "ack-completed": "Ack",
    "escalation": "Escalation",
    "routing-decision": "RoutingDecision",
    "report-status": "ReportStatus",
    "dead-letter": "DeadLetter",
    "access-event": "AccessEvent",
    "tick": "Tick",
}
MODEL_FILE = {
    "Referral": "referral",
    "Ack": "ack",
    "Escalation": "escalation",
    "RoutingDecision": "routing-decision",
    "ReportStatus": "report-status",
    "DeadLetter": "dead-letter",
    "AccessEvent": "access-event",
    "Tick": "tick",
}


def test_examples_cover_every_source_category_and_event():
    assert {r["source"] for r in REPORTS.values()} == {s.value for s in Source}
    assert {r["category"] for r in REPORTS.values()} == {c.value for c in Category}
    assert set(EVENTS) == set(EVENT_FILE_MODEL)
    assert set(EVENT_FILE_MODEL.values()) == set(EVENT_MODELS)
    for name, data in REPORTS.items():  # file names say what they hold
        assert name == f"{data['source']}-{data['category']}"


def test_examples_are_obviously_fictional():
    for name, data in REPORTS.items():
        assert "fictional" in data["narrative"] or "虚构" in data["narrative"], name
        for subject in data["subjects"]:
            assert subject["name"] is None or subject["name"].startswith("示例"), name
        assert data["reporter"]["name"].startswith("示例"), name
        for attachment in data["attachments"]:
            assert ".invalid/" in attachment["uri"] or attachment["uri"].startswith("urn:"), name


@pytest.mark.parametrize("name", sorted(REPORTS))
def test_v1_report_examples_still_parse_and_round_trip(name):
    """Compatibility: every report ever published as v1 must parse with the current models."""
    data = REPORTS[name]
    report = parse_report(json.dumps(data))
    assert isinstance(report, REPORT_MODELS[Source(data["source"])])
    assert report.model_dump(mode="json") == data
    assert json.loads(dump_event(report)) == data
    assert parse_report(dump_event(report)) == report


@pytest.mark.parametrize("name", sorted(EVENTS))
def test_v1_event_examples_still_parse_and_round_trip(name):
    model = EVENT_MODELS[EVENT_FILE_MODEL[name]]
    event = model.model_validate(EVENTS[name])
    assert event.model_dump(mode="json") == EVENTS[name]
    assert json.loads(dump_event(event)) == EVENTS[name]
    assert model.model_validate_json(dump_event(event)) == event


def test_a_report_made_before_the_shareable_summary_still_parses():
    data = {k: v for k, v in REPORTS["school-suspected_trafficking_child"].items() if k != "shareable_summary"}
    assert parse_report(json.dumps(data)).shareable_summary is None
    validator("school-report").validate(data)


def test_copies_and_decisions_made_before_grants_were_recorded_still_parse():
    referral = {k: v for k, v in EVENTS["referral"].items() if k not in ("grants", "withheld")}
    parsed = EVENT_MODELS["Referral"].model_validate(referral)
    assert parsed.grants == () and not parsed.withheld
    validator("referral").validate(referral)
    decision = json.loads(json.dumps(EVENTS["routing-decision"]))
    del decision["grants"]
    for recipient in decision["recipients"]:
        del recipient["grants_applied"], recipient["withheld"]
    parsed = EVENT_MODELS["RoutingDecision"].model_validate(decision)
    assert parsed.grants == () and all(parsed.grants_of(r) == () for r in parsed.recipients)
    validator("routing-decision").validate(decision)


def test_a_decision_names_only_grants_it_records():
    decision = json.loads(json.dumps(EVENTS["routing-decision"]))
    decision["recipients"][0]["grants_applied"] = [len(decision["grants"])]
    with pytest.raises(ValueError, match="grants_applied must name distinct positions in grants"):
        EVENT_MODELS["RoutingDecision"].model_validate(decision)


def test_a_decision_recorded_before_matched_by_and_priority_route_still_parses():
    data = {k: v for k, v in EVENTS["routing-decision"].items() if k not in ("matched_by", "priority_route")}
    decision = EVENT_MODELS["RoutingDecision"].model_validate(data)
    assert decision.matched_by == () and decision.priority_route is None
    validator("routing-decision").validate(data)


@cache
def validator(file_name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((HERE / JSON_DIR / f"{file_name}.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("name", sorted(REPORTS))
def test_exported_json_schema_accepts_report_examples(name):
    data = REPORTS[name]
    validator(f"{data['source']}-report").validate(data)
    validator("report").validate(data)
    submission = {
        k: v
        for k, v in data.items()
        if k not in ("schema_version", "report_id", "source", "source_system", "received_at")
    }
    validator(f"{data['source']}-submission").validate(submission)


@pytest.mark.parametrize("name", sorted(EVENTS))
def test_exported_event_schemas_accept_examples(name):
    validator(MODEL_FILE[EVENT_FILE_MODEL[name]]).validate(EVENTS[name])


@pytest.mark.parametrize(
    "change",
    [
        {"category": "kidnapping"},
        {"unexpected": "x"},
        {"dna_profile": "AGCT"},
        {"source": "police"},
        {"report_id": "not-a-uuid"},
        {"subjects": []},
    ],
    ids=lambda c: next(iter(c)),
)
def test_exported_json_schema_rejects_what_the_model_rejects(change):
    data = {**copy.deepcopy(REPORTS["school-missing_child"]), **change}
    with pytest.raises(jsonschema.ValidationError):
        validator("school-report").validate(data)
    with pytest.raises(jsonschema.ValidationError):
        validator("report").validate(data)


def test_exported_json_schema_keeps_sensitivity_marks():
    text = (HERE / JSON_DIR / "hospital-report.json").read_text(encoding="utf-8")
    for mark in ("identifying", "personal", "special"):
        assert f'"x-cluebus-sensitivity": "{mark}"' in text
    assert '"x-cluebus-sensitivity": "biometric"' not in text


def test_committed_contracts_are_current(tmp_path):
    """Regenerate into a temp dir: every committed file must match byte for byte."""
    written = export(tmp_path)
    assert written, "export wrote nothing"
    rels = sorted(p.relative_to(tmp_path).as_posix() for p in written)
    stale = [
        rel for rel in rels if not (HERE / rel).exists() or (HERE / rel).read_bytes() != (tmp_path / rel).read_bytes()
    ]
    extra = sorted(
        f"{JSON_DIR}/{p.name}" for p in (HERE / JSON_DIR).glob("*.json") if f"{JSON_DIR}/{p.name}" not in rels
    )
    assert not stale and not extra, (
        f"published contracts are out of date (stale {stale}, extra {extra}): "
        "run `python -m schemas.export` (or `cluebus schemas export`) "
        "and commit schemas/json and schemas/asyncapi.yaml"
    )
    assert set(models_by_file()) == {rel.split("/")[1][:-5] for rel in rels if rel.startswith(f"{JSON_DIR}/")}


def test_export_is_deterministic_and_removes_stale_files(tmp_path):
    (tmp_path / JSON_DIR).mkdir()
    (tmp_path / JSON_DIR / "old-model.json").write_text("{}")
    export(tmp_path)
    first = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert Path(JSON_DIR) / "old-model.json" not in first
    assert render() == render()
    export(tmp_path)
    assert first == {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}


def test_module_entry_point_exports(tmp_path):
    repo = HERE.parent
    result = subprocess.run(
        [sys.executable, "-m", "schemas.export", str(tmp_path)],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(repo)},
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / ASYNCAPI).read_bytes() == (HERE / ASYNCAPI).read_bytes()


@cache
def asyncapi() -> dict:
    import yaml

    return yaml.safe_load((HERE / ASYNCAPI).read_text(encoding="utf-8"))


def _resolve(doc: dict, ref: str) -> dict:
    assert ref.startswith("#/"), ref
    node = doc
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def test_asyncapi_names_every_topic():
    doc = asyncapi()
    assert doc["asyncapi"] == "3.0.0"
    t = TopicNames()
    assert t.prefix == "cluebus"
    addresses = {c["address"] for c in doc["channels"].values()}
    assert addresses == set(t.reports()) | {
        t.referral("{department}"),
        t.decisions,
        t.acks,
        t.escalations,
        t.status,
        t.deadletter,
        t.tracker_ticks,
        t.access_audit,
    }
    referrals = next(c for c in doc["channels"].values() if c["address"] == "cluebus.referrals.{department}")
    assert set(referrals["parameters"]) == {"department"}


def test_asyncapi_every_channel_has_a_sender_and_a_receiver_and_refs_resolve():
    doc = asyncapi()
    for name, channel in doc["channels"].items():
        ops = [op for op in doc["operations"].values() if op["channel"]["$ref"] == f"#/channels/{name}"]
        assert {op["action"] for op in ops} == {"send", "receive"}, name
        for message in channel["messages"].values():
            resolved = _resolve(doc, message["$ref"])
            payload = resolved["payload"]
            if "schema" in payload:
                assert (HERE / payload["schema"]["$ref"]).is_file(), payload
            assert "report_id" in resolved["bindings"]["kafka"]["key"]["description"]
    for op_id, op in doc["operations"].items():
        assert op["action"] in ("send", "receive"), op_id
        for message in op["messages"]:
            assert message["$ref"].startswith(op["channel"]["$ref"] + "/messages/"), op_id
            _resolve(doc, message["$ref"])


def _who(action: str, address: str) -> set[str]:
    doc = asyncapi()
    return {
        op["x-cluebus-service"]
        for op in doc["operations"].values()
        if op["action"] == action and _resolve(doc, op["channel"]["$ref"])["address"] == address
    }


@pytest.mark.parametrize(
    "address, senders, receivers",
    [
        *[
            (f"cluebus.reports.{s.value}", {f"adapter-{s.value}", "reconciler"}, {"router", "reconciler"})
            for s in Source
        ],
        ("cluebus.referrals.{department}", {"router"}, {"inbox", "console"}),
        ("cluebus.decisions", {"router", "reconciler"}, {"tracker", "audit", "reconciler"}),
        ("cluebus.acks", {"inbox", "console"}, {"tracker"}),
        ("cluebus.audit.access", {"inbox", "console"}, {"audit"}),
        ("cluebus.tracker.ticks", {"tracker"}, {"tracker"}),
        ("cluebus.escalations", {"tracker"}, {"inbox", "console"}),
        ("cluebus.status", {"tracker"}, {"adapters", "console", "reconciler"}),
        ("cluebus.deadletter", {"router", "tracker"}, {"operators", "reconciler"}),
    ],
)
def test_asyncapi_says_who_sends_and_who_receives(address, senders, receivers):
    assert _who("send", address) == senders
    assert _who("receive", address) == receivers


def test_load_examples_reads_both_kinds_and_fails_on_an_unknown_version():
    assert load_examples() == REPORTS
    assert load_examples("v1", "events") == EVENTS
    with pytest.raises(FileNotFoundError):
        load_examples("v999")
    with pytest.raises(ValueError):
        load_examples("v1", "report")
