"""The access record against the real broker: `inbox show` writes one, `cluebus audit` lists it with the decision."""

from __future__ import annotations

import json
import subprocess

from schemas import AccessEvent, referral_id_for

from ..support import CLUEBUS, collect, free_port, many_reports, produce, wait_until


def _grant_roles(row):
    from schemas import SubjectRole

    return {SubjectRole(r) for g in row["sent"]["grants"] for r in g.get("subjects", ())}


def run(env, *args, ok=True):
    result = subprocess.run([CLUEBUS, *args], env=env, capture_output=True, text=True, timeout=120)
    if ok:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_every_inbox_show_is_recorded_and_listed_with_the_fields_the_decision_sent(
    kafka_bootstrap, bus, services, service_env
):
    services("router", ["router", "--metrics-port", "0"], service_env)
    (report,) = many_reports(1, ("school-suspected_trafficking_child",))
    produce(kafka_bootstrap, [(bus.report("school"), report.report_id.encode(), report.model_dump_json().encode())])
    police = referral_id_for(report.report_id, "police")
    education = referral_id_for(report.report_id, "education")
    officer = {**service_env, "CLUEBUS_INBOX_USER": "officer.0042"}
    teacher = {**service_env, "CLUEBUS_INBOX_USER": "clerk.0007"}

    wait_until(lambda: police in run(officer, "inbox", "police", "list").stdout, 90)
    wait_until(lambda: education in run(teacher, "inbox", "education", "list").stdout, 60)
    shown = json.loads(run(officer, "inbox", "police", "show", police[:8]).stdout)
    assert shown["referral_id"] == police
    run(teacher, "inbox", "education", "show", education)
    # Opened while Kafka is away: the record waits in the store, and the next command sends it.
    away = {
        **officer,
        "CLUEBUS_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
        "CLUEBUS_KAFKA_BOOTSTRAP_TIMEOUT_MS": "500",
    }
    offline = run(away, "inbox", "--offline", "police", "show", police)
    # (kafka-python's connection errors are logged on stdout too; the referral is the indented object)
    assert json.loads(offline.stdout[offline.stdout.index("{\n") :])["referral_id"] == police
    assert "1 access record(s) stored locally" in offline.stderr
    assert "stored locally" not in run(officer, "inbox", "police", "sync").stderr
    refused = run(service_env, "inbox", "police", "show", police, ok=False)
    assert refused.returncode == 1 and "--user" in refused.stderr  # nobody opens a referral anonymously

    records = collect(kafka_bootstrap, [bus.access_audit], done=lambda ms: len(ms) >= 3, timeout=30)
    events = [AccessEvent.model_validate_json(m.value) for m in records]
    assert sorted((e.department, e.by, e.channel.value) for e in events) == [
        ("education", "clerk.0007", "inbox"),
        ("police", "officer.0042", "inbox"),
        ("police", "officer.0042", "inbox"),
    ]
    assert {m.key for m in records} == {report.report_id.encode()}  # keyed like the routing decision
    text = b"".join(m.value for m in records).decode()
    for subject in shown["report"]["subjects"]:  # ids and group names only: no value of the copy
        for value in subject.values():
            if isinstance(value, str) and len(value) > 3:
                assert value not in text

    by_report = run(service_env, "audit", "--report", report.report_id, "--json").stdout.splitlines()
    rows = [json.loads(line) for line in by_report]
    assert len(rows) == 3
    for row in rows:
        assert row["sent"] is not None, row  # the decision was found beside the record
        assert row["groups_beyond_grant"] == []
        sent_groups = {f.split(".")[0] for f in row["sent"]["fields"]}
        assert set(row["access"]["field_groups"]) <= sent_groups
    police_rows = [r for r in rows if r["access"]["department"] == "police"]
    education_rows = [r for r in rows if r["access"]["department"] == "education"]
    assert police_rows[0]["sent"]["role"] == "lead" and len(police_rows) == 2
    # The two departments were sent different field names, and the audit shows which, of whom and why.
    assert police_rows[0]["sent"]["fields"] != education_rows[0]["sent"]["fields"]
    own = [g for g in education_rows[0]["sent"]["grants"] if g["basis"] == "department" and g.get("subjects")]
    assert own and own[0]["subjects"] == ["victim"] and own[0]["reason"].startswith("the pupil and the guardians")
    assert education_rows[0]["sent"]["withheld"]["identity"] == ["suspect"]  # the suspect is the police's
    assert {r.value for r in _grant_roles(police_rows[0])} == {"victim", "suspect"}

    by_user = run(service_env, "audit", "--user", "clerk.0007").stdout
    assert education in by_user and police not in by_user.split("what the routing decisions sent")[0]
    assert f"report {report.report_id} -> education (" in by_user
    assert "shared by department of victim (reporter, subjects): the pupil and the guardians" in by_user
    assert "withheld: the identity of suspect" in by_user
    by_referral = run(service_env, "audit", "--referral", police[:8]).stdout
    assert by_referral.count("officer.0042") == 2 and "clerk.0007" not in by_referral
    assert "no access records match" in run(service_env, "audit", "--user", "officer.0042", "--since", "0s").stdout
    bad = run(service_env, "audit", "--report", "not-a-report", ok=False)
    assert bad.returncode == 1 and "not a report id" in bad.stderr
