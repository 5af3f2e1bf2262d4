"""Grants by subject role on the real bus: one report, a victim, a suspect and a guardian, many copies.

The router runs as a process against the real broker. Every personal text field of each person
(and of the case) holds its own canary marker; the narrative names all three people. Each
department's copy, as read back from its referral topic, must hold exactly the markers its grants
allow: the table below is written from the rules' intent (issue 14), not from the code.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from schemas import Referral, RoutingDecision, parse_report
from schemas.examples import load_examples
from services.common.ids import uuid7
from services.rules import load_rules

from ..support import collect, free_port, produce

PEOPLE = ("victim", "suspect", "guardian")
IDENTITY = ("name", "id_number", "phone", "description")
FULL = {f"{p}.{f}" for p in PEOPLE for f in IDENTITY}
CASE = {"narrative", "address", "place", "reporter.name", "reporter.phone", "pick_up", "summary"}


def _identity_of(*people: str, description: bool = True) -> set[str]:
    return {f"{p}.{f}" for p in people for f in IDENTITY if description or f != "description"}


# department -> (role, the markers its copy holds). Free text (the narrative, every description,
# location.description, the pick-up description) goes only where every subject's identity may go.
EXPECTED = {
    "police": ("lead", FULL | CASE),
    "court": ("lead", FULL | CASE),
    "procuratorate": ("lead", FULL | CASE),
    # Victims' and guardians' identity for placement and schooling; never the suspect's, hence no free text.
    "civil_affairs": (
        "lead",
        _identity_of("victim", "guardian", description=False)
        | {"address", "reporter.name", "reporter.phone", "summary"},
    ),
    "education": (
        "lead",
        _identity_of("victim", "guardian", description=False)
        | {"address", "reporter.name", "reporter.phone", "summary"},
    ),
    # The case summary only (the reporter's shareable summary, facts, no identity).
    "womens_federation": ("lead", {"summary"}),
    "youth_league": ("cooperating", {"summary"}),
    "next_generation": ("cooperating", {"summary"}),
    "culture_tourism": ("cooperating", {"summary"}),
    "township": ("cooperating", {"summary"}),
}


def _marker(tag: str) -> str:
    return f"CNRY{tag.upper().replace('.', '').replace('_', '')[:10]}{uuid.uuid4().hex[:8]}"


def canary_report():
    """The school example with a victim, a suspect and a guardian, each field a unique marker."""
    data = json.loads(json.dumps(load_examples("v1", "reports")["school-suspected_trafficking_child"]))
    markers: dict[str, str] = {}

    def mark(key: str, kind: str = "text") -> str:
        markers[key] = "+86 1" + str(uuid.uuid4().int)[:10] if kind == "phone" else _marker(key)
        return markers[key]

    victim, suspect = data["subjects"]
    guardian = {"role": "guardian", "age": 38, "sex": "male", "id_type": "resident_id"}
    suspect["id_type"] = "resident_id"
    for role, subject in zip(PEOPLE, (victim, suspect, guardian), strict=True):
        subject["name"] = mark(f"{role}.name")
        subject["id_number"] = mark(f"{role}.id_number")
        subject["phone"] = mark(f"{role}.phone", "phone")
        subject["description"] = mark(f"{role}.description")
    data["subjects"] = [victim, suspect, guardian]
    data["narrative"] = f"{mark('narrative')}: {victim['name']} was collected by {suspect['name']}"
    data["shareable_summary"] = mark("summary")
    data["location"]["address"] = mark("address")
    data["location"]["description"] = mark("place")
    data["reporter"]["name"] = mark("reporter.name")
    data["reporter"]["phone"] = mark("reporter.phone", "phone")
    data["details"]["pick_up_description"] = mark("pick_up")
    data["attachments"] = []
    data["report_id"] = uuid7()
    data["received_at"] = datetime.now(UTC).isoformat()
    data["source_ref"] = f"grants-{data['report_id'][:8]}"
    return parse_report(json.dumps(data)), markers


def test_each_copy_holds_exactly_its_grant_per_subject_role(kafka_bootstrap, bus, services, service_env, rules_file):
    rules = load_rules(rules_file)
    report, markers = canary_report()
    planned = {p.department: p.role.value for p in rules.plan(report, report.received_at).referrals}
    assert planned == {d: role for d, (role, _) in EXPECTED.items()}  # lead and cooperating, as the plan says

    services("router", ["router", "--metrics-port", str(free_port())], service_env)
    produce(kafka_bootstrap, [(bus.report("school"), report.report_id.encode(), report.model_dump_json().encode())])
    messages = collect(
        kafka_bootstrap,
        [*(bus.referral(d) for d in EXPECTED), bus.decisions],
        done=lambda ms: sum(m.topic == bus.decisions for m in ms) >= 1 and len(ms) >= len(EXPECTED) + 1,
        timeout=90,
    )
    copies = {
        r.department: r for r in (Referral.model_validate_json(m.value) for m in messages if m.topic != bus.decisions)
    }
    assert set(copies) == set(EXPECTED)
    for department, (role, allowed) in EXPECTED.items():
        referral = copies[department]
        payload = json.dumps(referral.report, ensure_ascii=False)
        present = {key for key, marker in markers.items() if marker in payload}
        assert referral.role.value == role, department
        assert present == allowed, (department, sorted(present - allowed), sorted(allowed - present))
        # Each person's markers sit in that person's own entry (positions and roles kept).
        for i, person in enumerate(PEOPLE):
            entry = json.dumps(referral.report["subjects"][i], ensure_ascii=False)
            assert referral.report["subjects"][i]["role"] == person
            others = {k for k in markers if k.split(".")[0] in PEOPLE and not k.startswith(person)}
            assert not [k for k in others if markers[k] in entry], (department, person)
        withheld = {r.value for r in referral.withheld.identity}
        assert withheld == {p for p in PEOPLE if not _identity_of(p, description=False) <= present}, department
        # Granted the narrative but not the suspect's identity: withheld, and said so.
        assert ("narrative" in referral.withheld.free_text) == (department in ("civil_affairs", "education"))

    decision = RoutingDecision.model_validate_json(next(m.value for m in messages if m.topic == bus.decisions))
    text = json.dumps(decision.model_dump(mode="json"), ensure_ascii=False)
    assert not [k for k, marker in markers.items() if marker in text]  # names and roles, never values
    by_department = {r.department: r for r in decision.recipients}
    for department, referral in copies.items():
        # the decision says what was shared and why (each grant once, each recipient naming its own)
        assert decision.grants_of(by_department[department]) == referral.grants
        assert by_department[department].withheld == referral.withheld
    assert len(decision.grants) < sum(len(r.grants) for r in copies.values())  # the summary is recorded once
    township = [g for g in decision.grants_of(by_department["township"]) if g.route]
    assert [g.route for g in township] == [("root", "child-at-risk")] and "village committee" in township[0].reason
    education = [
        g for g in decision.grants_of(by_department["education"]) if g.basis.value == "department" and g.subjects
    ]
    assert [r.value for r in education[0].subjects] == ["guardian", "victim"]  # sorted
