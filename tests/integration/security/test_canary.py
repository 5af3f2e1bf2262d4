"""Canary: personal data reaches referral payloads where the grants allow, per subject role, and nowhere else.

A report whose every personal text field holds a unique marker (per person: a victim, a suspect
and a guardian) goes through the whole bus on the secure broker, each service as its own
principal (TLS + SCRAM + ACLs): hospital adapter -> router -> tracker -> police inbox (received,
accepted, completed with a marked outcome). Each department's copy holds a person's marker only
where one of its recorded grants names that person's role and that field (and the suspect's
identity and every free text only in the police copy here); then every log line of every service,
every metrics exposition, every audit record, status event and escalation, and the dead-letter
listing are searched for the markers.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid

import httpx
import pytest

from schemas import REPORT_MODELS, Referral, Source, referral_id_for, sensitive_fields
from schemas.examples import load_examples

from ..support import REPO, Service, free_port, wait_until
from .helpers import make_bus


def _marker(kind: str = "text") -> str:
    if kind == "phone":
        return "+86 1" + "".join(str(uuid.uuid4().int)[:10])
    return "CNRY" + uuid.uuid4().hex[:12]


PEOPLE = ("victim", "suspect", "guardian")
SUBJECT_TEXT = (("name", "text"), ("id_number", "text"), ("phone", "phone"), ("description", "text"))


def canary_submission() -> tuple[dict, dict[str, str]]:
    """The hospital example with a victim, a suspect and a guardian and a unique marker in every
    personal text field; a subject's marker is keyed ``<role>.subjects.<field>``, a case's by its path."""
    data = dict(load_examples("v1", "reports")["hospital-suspected_trafficking_woman"])
    for key in ("schema_version", "report_id", "source", "source_system", "received_at"):
        data.pop(key)
    data["source_ref"] = f"canary-{uuid.uuid4().hex[:8]}"
    data["consent"] = "given"  # so that need-to-know, not anonymisation, decides
    markers: dict[str, str] = {}

    def put(obj: dict, key: str, path: str, kind: str = "text") -> None:
        markers[path] = obj[key] = _marker(kind)

    victim, suspect = (dict(s) for s in data["subjects"])
    guardian = {"role": "guardian", "age": 52, "sex": "female"}
    for role, subject in zip(PEOPLE, (victim, suspect, guardian), strict=True):
        assert subject["role"] == role
        for key, kind in SUBJECT_TEXT:
            put(subject, key, f"{role}.subjects.{key}", kind)
        subject["id_type"] = "resident_id"
    data["subjects"] = [victim, suspect, guardian]
    put(data, "shareable_summary", "shareable_summary")
    data["reporter"] = dict(data["reporter"])
    put(data["reporter"], "name", "reporter.name")
    put(data["reporter"], "phone", "reporter.phone", "phone")
    put(data, "narrative", "narrative")
    data["location"] = dict(data["location"])
    put(data["location"], "address", "location.address")
    put(data["location"], "description", "location.description")
    data["attachments"] = [dict(data["attachments"][0])]
    put(data["attachments"][0], "description", "attachments.description")
    details = data["details"] = json.loads(json.dumps(data["details"]))
    put(details, "record_number", "details.record_number")
    put(details["identity_check"], "anomaly", "details.identity_check.anomaly")
    put(details["newborn"], "birth_certificate_number", "details.newborn.birth_certificate_number")
    return data, markers


def test_every_personal_text_field_is_marked():
    _, markers = canary_submission()
    paths = {key.split(".", 1)[1] if key.split(".")[0] in PEOPLE else key for key in markers}
    assert {key.split(".")[0] for key in markers if key.split(".")[0] in PEOPLE} == set(PEOPLE)
    assert all(f"{p}.subjects.{f}" in markers for p in PEOPLE for f, _ in SUBJECT_TEXT)
    text_fields = {p for p, _ in sensitive_fields(REPORT_MODELS[Source.hospital]).items()} - {
        # not free text: enumerations and numbers, which cannot carry a unique marker
        "subjects.sex",
        "subjects.age",
        "subjects.age_band",
        "subjects.nationality",
        "subjects.disability",
        "subjects.id_type",
    }
    assert text_fields <= paths, text_fields - paths


FREE_TEXT_MARKERS = (
    "narrative",
    "location.description",
    "attachments.description",
    "details.identity_check.anomaly",
    *(f"{p}.subjects.description" for p in PEOPLE),
)


def _held(copy: dict, key: str) -> str:
    """The part of a copy where ``key``'s marker may be: the person's own entry, or the whole copy."""
    role = key.split(".")[0]
    if role in PEOPLE:
        return json.dumps(copy["subjects"][PEOPLE.index(role)], ensure_ascii=False)
    return json.dumps(copy, ensure_ascii=False)


def _planned_copies(submission: dict) -> dict[str, dict]:
    """What the shipped rules grant each department of this submission (computed here, off the bus)."""
    from services.rules import load_rules
    from services.rules.inputs import as_report

    report = as_report({"source": "hospital", "submission": submission})
    return {
        p.department: p.copy for p in load_rules(REPO / "routing_rules.toml").plan(report, report.received_at).referrals
    }


def _principal_env(bus, base_env: dict, principal: str) -> dict[str, str]:
    return {
        **base_env,
        **bus.broker.client_env(),
        "CLUEBUS_KAFKA_USERNAME": principal,
        "CLUEBUS_KAFKA_PASSWORD_FILE": str(bus.secrets_dir / f"{principal}.password"),
        "CLUEBUS_TOPICS_PREFIX": bus.prefix,
        "CLUEBUS_TOPICS_PARTITIONS": "2",
    }


@pytest.fixture
def canary_bus(secure_broker, tmp_path):
    from services.rules import load_rules

    departments = tuple(load_rules(REPO / "routing_rules.toml").departments)
    bus = make_bus(secure_broker, tmp_path / "bus", departments=departments)
    shutil.copy(REPO / "routing_rules.toml", bus.rules_file)  # same departments, full rules
    return bus


def test_markers_reach_allowed_referral_fields_and_no_log_metric_audit_or_status(canary_bus, tmp_path):
    bus = canary_bus
    logs = tmp_path / "logs"
    base = {
        **os.environ,
        "CLUEBUS_RULES_FILE": str(bus.rules_file),
        "CLUEBUS_STATE_DIR": str(tmp_path / "state"),
        "CLUEBUS_LOG_FORMAT": "json",
        "CLUEBUS_LOG_LEVEL": "debug",  # the most talkative setting must still leak nothing
        "CLUEBUS_SESSION_TIMEOUT_S": "6",
        "PYTHONUNBUFFERED": "1",
    }
    adapter_port, router_port, tracker_port = free_port(), free_port(), free_port()
    services = [
        Service(
            "adapter-hospital",
            ["adapter", "hospital"],
            {
                **_principal_env(bus, base, "adapter-hospital"),
                "CLUEBUS_ADAPTER_PORT": str(adapter_port),
                "CLUEBUS_ADAPTER_TOKENS_FILE": str(REPO / "deploy/adapters/demo-tokens.toml"),
                "CLUEBUS_ADAPTER_PLAIN_HTTP": "true",
            },
            logs,
        ),
        Service("router", ["router", "--metrics-port", str(router_port)], _principal_env(bus, base, "router"), logs),
        Service(
            "tracker", ["tracker", "--metrics-port", str(tracker_port)], _principal_env(bus, base, "tracker"), logs
        ),
    ]
    police_env = {**_principal_env(bus, base, "dept-police"), "CLUEBUS_INBOX_USER": "officer.0042"}
    cli_output: list[str] = []

    def inbox(*args: str) -> str:
        result = subprocess.run(
            [str(REPO / ".venv/bin/cluebus"), "inbox", "police", *args],
            env=police_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        cli_output.append(result.stdout + result.stderr)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    for service in services:
        service.start()
    try:
        submission, markers = canary_submission()
        client = httpx.Client(timeout=10)
        wait_until(lambda: client.get(f"http://127.0.0.1:{adapter_port}/readyz").status_code == 200, 90)
        answer = client.post(
            f"http://127.0.0.1:{adapter_port}/v1/reports",
            json=submission,
            headers={"Authorization": "Bearer demo-hospital-token"},
        )
        assert answer.status_code == 202, answer.text
        report_id = answer.json()["report_id"]
        referral_id = referral_id_for(report_id, "police")

        # The police work the referral: received (automatic), accepted with owner, completed.
        wait_until(lambda: referral_id[:8] in inbox("list"), 90)
        inbox("accept", referral_id, "--case-owner", "inspector.0007")
        outcome_marker = _marker()
        inbox("complete", referral_id, "--outcome-code", "case_opened", "--outcome", outcome_marker)
        refusal_marker = _marker()
        # A bad acknowledgement (a decline after completion) goes to the dead-letter topic.
        subprocess.run(
            [
                str(REPO / ".venv/bin/cluebus"),
                "inbox",
                "police",
                "decline",
                referral_id,
                "--reason-code",
                "other",
                "--reason",
                refusal_marker,
            ],
            env=police_env,
            capture_output=True,
            text=True,
            timeout=60,
        )

        def police_completed() -> bool:
            view = client.get(
                f"http://127.0.0.1:{adapter_port}/v1/reports/{report_id}",
                headers={"Authorization": "Bearer demo-hospital-token"},
            ).json()
            return bool(view.get("status")) and any(
                d["department"] == "police" and d["stage"] == "completed" for d in view["status"]["departments"]
            )

        wait_until(police_completed, 60)

        admin = bus.settings("admin")
        names = bus.names
        # A hospital's report of a trafficked woman: health, police and civil affairs lead
        # (plan 二.(一).2.(3)-3 [区卫健委、公安静海分局、区民政局负责]).
        recipients = ("police", "health", "civil_affairs")
        referral_topics = [names.referral(d) for d in recipients]
        found = collect_secure(admin, referral_topics, lambda ms: len(ms) >= 3)
        referrals = {
            Referral.model_validate_json(m.value).department: Referral.model_validate_json(m.value) for m in found
        }
        assert set(referrals) == set(recipients)
        planned = _planned_copies(submission)
        for department, referral in referrals.items():
            roles_granted = {r.value for g in referral.grants for r in g.subjects}
            for key, marker in markers.items():
                held = marker in _held(referral.report, key)
                assert held == (marker in _held(planned[department], key)), (department, key)
                if held and key.split(".")[0] in PEOPLE:  # the copy's own record says whose fields it holds
                    assert key.split(".")[0] in roles_granted, (department, key)
        assert all(m in json.dumps(referrals["police"].report) for m in markers.values())
        # Civil affairs may see who the victim and the guardian are, not the suspect, the hospital's
        # record or certificate numbers, nor any free text (it may name the suspect).
        for department in ("civil_affairs", "health"):
            copy = json.dumps(referrals[department].report, ensure_ascii=False)
            assert markers["victim.subjects.name"] in copy and markers["guardian.subjects.phone"] in copy
            assert not [k for k, m in markers.items() if k.startswith("suspect.") and m in copy], department
            assert not [k for k in FREE_TEXT_MARKERS if markers[k] in copy], department
            assert markers["shareable_summary"] in copy  # what they read instead of the narrative
        civil_affairs = json.dumps(referrals["civil_affairs"].report, ensure_ascii=False)
        assert markers["details.record_number"] not in civil_affairs
        assert markers["details.newborn.birth_certificate_number"] not in civil_affairs

        audit = collect_secure(admin, [names.decisions, names.status, names.escalations], lambda ms: False, timeout=5)
        metrics = "".join(
            client.get(url).text
            for url in (
                f"http://127.0.0.1:{adapter_port}/metrics",
                f"http://127.0.0.1:{router_port}/metrics",
                f"http://127.0.0.1:{tracker_port}/metrics",
            )
        )
        deadletters = subprocess.run(
            [str(REPO / ".venv/bin/cluebus"), "deadletters"],
            env={**base, **bus.broker.client_env(), "CLUEBUS_TOPICS_PREFIX": bus.prefix},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert deadletters.returncode == 0, deadletters.stderr
    finally:
        for service in services:
            service.stop()

    everything = {
        "logs": "\n".join(p.read_text(errors="replace") for p in sorted(logs.glob("*.log"))),
        "metrics": metrics,
        "audit, status and escalation events": "\n".join(m.value.decode(errors="replace") for m in audit),
        "dead-letter listing": deadletters.stdout + deadletters.stderr,
        "inbox command output (list, actions)": "\n".join(cli_output),
    }
    secrets = {**markers, "outcome": outcome_marker, "decline reason": refusal_marker}
    for where, text in everything.items():
        leaked = [path for path, marker in secrets.items() if marker in text]
        assert not leaked, f"personal data in {where}: {leaked}"
    lines = sum(text.count("\n") for text in everything.values())
    assert "report routed" in everything["logs"] and len(audit) >= 3 and "cluebus_" in metrics
    print(f"canary: {len(secrets)} markers, {lines} lines of logs/metrics/events searched, none leaked")


def collect_secure(settings, topics, done, timeout: float = 60.0):
    from services.common import kafka as clients

    consumer = clients.consumer(settings, *topics, group_id=None)
    messages = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                messages.extend(records)
            if done(messages):
                break
    finally:
        consumer.close()
    return messages
