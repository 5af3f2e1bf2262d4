"""Grants by subject role: load-time checks (table-driven, inline config) and need-to-know copies.

The property tests compare every copy with an *oracle* written here from the rules file's own
text (its grants, the summary, the routes' grants) and a fixed statement of the law: what a
subject's identity is, which fields are free text, who may see a suspect's or a buyer's
identity. The oracle is deliberately naive (it re-reads the spec for every copy), so that it
shares no code with the compiled projection it checks.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from itertools import chain, combinations
from pathlib import Path
from textwrap import dedent

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import REPORT_MODELS, SUBMISSION_MODELS, Role, Source, SubjectRole, make_report
from services.common.ids import uuid7
from services.rules import RulesError, load_rules, parse_rules
from services.rules.redaction import expand, schema_leaves

from ..schemas.strategies import submissions
from .support import HEAD

REPO = Path(__file__).resolve().parents[3]
RULES = load_rules(REPO / "routing_rules.toml")
SPEC = RULES.spec

# --- the law, stated here once (independently of the code under test) ---------------------------
# Who may ever see a suspect's or a buyer's identity (二.(二).2.(2): police, procuratorate, court).
MAY_SEE_OFFENDERS = {"police", "procuratorate", "court"}
OFFENDERS = {"suspect", "buyer"}
IDENTITY = {"name", "id_type", "id_number", "phone", "description"}  # of a subject
FREE_TEXT = {
    "narrative",
    "subjects.description",
    "location.description",
    "attachments.description",
    "details.identity_check.anomaly",
    "details.pick_up_description",
}
ROLES = [r.value for r in SubjectRole]


# --- the oracle -------------------------------------------------------------------------------


def _leaves(paths, source):
    return {leaf for leaf in schema_leaves(source) if any(leaf == p or leaf.startswith(p + ".") for p in paths)}


def _route_grants(route, path=()):
    path = (*path, route.name)
    out = {path: route.grants}
    for child in route.routes:
        out |= _route_grants(child, path)
    return out


ROUTE_GRANTS = _route_grants(SPEC.route)


def oracle(department, role, matched, source, roles, refused):
    """(case leaves, {subject role: subject leaves}, roles whose identity is withheld) for one recipient."""
    grants = list(SPEC.summary)
    if role == Role.lead:
        grants += list(SPEC.departments[department].grants)
    for path in matched:
        grants += [g for g in ROUTE_GRANTS.get(path, ()) if department in g.to]
    always = _leaves(expand(SPEC.always_shared, SPEC.field_sets), source)
    case = {leaf for leaf in always if not leaf.startswith("subjects.")}
    by_role = {r: {leaf for leaf in always if leaf.startswith("subjects.")} for r in roles}
    for g in grants:
        of = {p.value for p in g.of}
        for leaf in _leaves(expand(g.fields, SPEC.field_sets), source):
            if leaf.startswith("subjects."):
                for r in roles & of:
                    by_role[r].add(leaf)
            elif not leaf.startswith("reporter.") or "reporter" in of:
                case.add(leaf)
    if refused and department != SPEC.police:
        gone = _leaves(expand(SPEC.anonymise, SPEC.field_sets), source)
        case -= gone
        by_role = {r: kept - gone for r, kept in by_role.items()}
    withheld = {r for r, kept in by_role.items() if not {f"subjects.{i}" for i in IDENTITY} <= kept}
    if withheld:
        case -= FREE_TEXT
        by_role = {r: kept - FREE_TEXT for r, kept in by_role.items()}
    return case, by_role, withheld


def expected_copy(data, case, by_role):
    """The report with only the granted leaves, each subject by its own role (plain recursion)."""

    def keep(value, prefix, granted):
        if isinstance(value, dict):
            out = {}
            for key, sub in value.items():
                path = prefix + key
                if path in granted:
                    out[key] = sub
                elif any(g.startswith(path + ".") for g in granted):
                    out[key] = keep(sub, path + ".", granted)
            return out
        if isinstance(value, list):
            return [keep(item, prefix, granted) for item in value]
        return value

    out = keep({k: v for k, v in data.items() if k != "subjects"}, "", case)
    out["subjects"] = [keep(s, "subjects.", by_role[s["role"]]) for s in data["subjects"]]
    return out


def _report(source, data):
    return make_report(
        SUBMISSION_MODELS[source].model_validate(data),
        source=source,
        report_id=uuid7(),
        source_system="sys-1",
        received_at=datetime.now(UTC),
    )


def _subsets(items):
    items = list(items)
    return chain.from_iterable(combinations(items, n) for n in range(len(items) + 1))


# --- property tests over the shipped rules ----------------------------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(submissions(), st.data())
def test_every_copy_holds_exactly_what_the_rules_grant_per_department_role_and_field(case, data):
    """For every department x lead/cooperating x subject role x field: the value is in the copy iff granted."""
    source, submission = case
    if data.draw(st.booleans()):  # a report with every role, so that each role's grants are exercised
        for role in ROLES:
            submission["subjects"].append({"role": role, "name": f"CNRY-{role}", "phone": "+86 13800000000"})
    report = _report(source, submission)
    report_json = report.model_dump(mode="json")
    roles = frozenset(s["role"] for s in report_json["subjects"])
    refused = report.consent.value == "refused"
    matched = RULES.route(report).matched_paths
    granting = RULES.grants.granting_routes(matched)
    for department in RULES.departments:
        for role in (Role.lead, Role.cooperating):
            for routes in {(), tuple(p for p in matched if p in ROUTE_GRANTS)}:
                anonymise = refused and department != RULES.police
                copy = RULES.grants.copy_for(department, role, granting if routes else (), source, roles, anonymise)
                case_leaves, by_role, withheld = oracle(department, role, routes, source, roles, refused)
                assert copy.apply(report_json) == expected_copy(report_json, case_leaves, by_role), (department, role)
                assert set(copy.fields) == case_leaves | set().union(*by_role.values())
                assert {r.value for r in copy.withheld.identity} == withheld


def test_the_invariant_states_who_may_see_a_suspect_or_a_buyer():
    assert set(SPEC.offender_identity) == MAY_SEE_OFFENDERS
    assert RULES.police == "police"


def _everyone_report(source):
    """The source's v1 example with one subject of every role, each with a name, id, phone and description."""
    from schemas import parse_report
    from schemas.examples import load_examples

    data = json.loads(json.dumps(next(d for d in load_examples("v1", "reports").values() if d["source"] == source)))
    data["subjects"] = [
        {
            "role": r,
            "age": 30,
            "name": f"CNRY-{r}",
            "id_type": "resident_id",
            "id_number": f"ID-{r}",
            "phone": "+86 13800000000",
            "description": f"CNRY-{r}-description",
        }
        for r in ROLES
    ]
    data["category"] = "other"  # any category takes a victim and adults
    if source == "school":
        data["subjects"][0]["age"] = 9  # the pupil
    return parse_report(json.dumps(data)).model_dump(mode="json")


@pytest.mark.parametrize("department", sorted(RULES.departments))
def test_no_suspect_or_buyer_identity_or_dna_outside_the_invariant(department):
    """Every department, both roles, every combination of the routes that grant it, every subject role:
    applied to a report with one person of each role."""
    mine = [p for p, grants in ROUTE_GRANTS.items() if any(department in g.to for g in grants)]
    everyone = frozenset(ROLES)
    for source in Source:
        report_json = _everyone_report(source)
        for role in (Role.lead, Role.cooperating):
            for routes in _subsets(mine):
                copy = RULES.grants.copy_for(department, role, tuple(routes), source, everyone, False)
                held = copy.apply(report_json)
                if department not in MAY_SEE_OFFENDERS:
                    for subject in held["subjects"]:
                        if subject["role"] in OFFENDERS:
                            assert not set(subject) & IDENTITY, (department, role, routes, subject["role"])
                    text = json.dumps(held, ensure_ascii=False)
                    assert "CNRY-suspect" not in text and "CNRY-buyer" not in text, (department, role, routes)
                    # a report naming a suspect or buyer: its free text stays with the invariant's departments
                    assert not set(copy.fields) & FREE_TEXT, (department, role, routes)
                    assert "narrative" not in held
                if department != RULES.police:
                    assert not [f for f in copy.fields if "dna" in f.lower() or "biometric" in f.lower()]


def test_compiled_copies_are_kept_per_shape():
    report = _report(Source.school, _school_submission())
    first = RULES.plan(report, datetime.now(UTC))
    again = RULES.plan(_report(Source.school, _school_submission()), datetime.now(UTC))
    for a, b in zip(first.referrals, again.referrals, strict=True):
        assert a.disclosure is b.disclosure


# --- the cases the issue found --------------------------------------------------------------------


def _school_submission():
    from schemas.examples import load_examples

    data = dict(load_examples("v1", "reports")["school-suspected_trafficking_child"])
    for key in ("schema_version", "report_id", "source", "source_system", "received_at"):
        data.pop(key)
    return json.loads(json.dumps(data))


def _plan(source, data):
    return {p.department: p for p in RULES.plan(_report(source, data), datetime.now(UTC)).referrals}


def test_a_disabled_workers_federation_never_gets_the_suspected_employers_name_or_phone():
    from schemas.examples import load_examples

    data = dict(load_examples("v1", "reports")["labour-illegal_employment_disabled"])
    for key in ("schema_version", "report_id", "source", "source_system", "received_at"):
        data.pop(key)
    data["subjects"] = [*data["subjects"], {"role": "suspect", "name": "CNRY-employer", "phone": "+86 13900000001"}]
    copy = _plan(Source.labour, data)["disabled_federation"]
    assert copy.role == Role.lead
    victim, suspect = copy.copy["subjects"][0], copy.copy["subjects"][-1]
    assert "name" in victim and "phone" in victim
    assert suspect == {k: v for k, v in suspect.items() if k not in ("name", "phone", "id_number")}
    assert "CNRY" not in json.dumps(copy.copy) and "narrative" not in copy.copy


def test_civil_affairs_gets_a_victims_identity_for_placement_but_never_a_buyers():
    data = _school_submission()
    data["subjects"].append({"role": "buyer", "name": "CNRY-buyer", "id_type": "resident_id", "id_number": "X12345"})
    copies = _plan(Source.school, data)
    for department in ("civil_affairs", "education"):
        subjects = copies[department].copy["subjects"]
        assert subjects[0]["name"] == data["subjects"][0]["name"]
        assert "CNRY-buyer" not in json.dumps(copies[department].copy)
        assert "narrative" not in copies[department].copy  # it may name the buyer
        assert copies[department].copy["shareable_summary"] == data["shareable_summary"]
        assert {r.value for r in copies[department].disclosure.withheld.identity} == {"suspect", "buyer"}
    assert "CNRY-buyer" in json.dumps(copies["police"].copy)


def test_cooperating_units_on_a_venue_case_get_the_summary_not_the_minors_identity():
    from schemas.examples import load_examples

    data = dict(load_examples("v1", "reports")["venue-escort_services"])
    for key in ("schema_version", "report_id", "source", "source_system", "received_at"):
        data.pop(key)
    copies = _plan(Source.venue, data)
    for department in ("hrss", "health"):
        assert copies[department].role == Role.cooperating
        copy = copies[department].copy
        assert set(copy["subjects"][0]) <= {"role", "sex", "age", "age_band", "nationality", "disability"}
        assert "narrative" not in copy and "address" not in copy.get("location", {})
    assert copies["hrss"].copy["details"]["venue_name"] == data["details"]["venue_name"]  # a route grants it
    assert "venue_name" not in copies["health"].copy["details"]
    assert {g.basis.value for g in copies["health"].disclosure.grants} == {"summary"}
    hrss_routes = [g for g in copies["hrss"].disclosure.grants if g.basis.value == "route"]
    assert hrss_routes and all(g.reason and g.route for g in hrss_routes)


# --- load-time checks: each fault with its line ------------------------------------------------------

TREE = """
    [route]
    name = "root"
    recipients = [{ department = "police", role = "lead" }]

    [[route.routes]]
    name = "school"
    match.source = ["school"]
    recipients = [
      { department = "education", role = "lead" },
      { department = "hrss", role = "cooperating" },
    ]
"""


def _rules(tree_extra: str = "", head_patch: tuple[str, str] | None = None):
    text = HEAD + dedent(TREE) + dedent(tree_extra)
    if head_patch:
        assert head_patch[0] in text
        text = text.replace(*head_patch, 1)
    return parse_rules(text, "inline.toml"), text


def _fails(message: str, marker: str, tree_extra: str = "", head_patch=None) -> None:
    """The load fails with ``message`` on the line holding ``marker`` (the patched line, or the tree's)."""
    with pytest.raises(RulesError) as err:
        _rules(tree_extra, head_patch)
    text = HEAD + dedent(TREE) + dedent(tree_extra)
    if head_patch:
        text = text.replace(*head_patch, 1)
    assert message in str(err.value), str(err.value)
    lines = [i for i, t in enumerate(text.splitlines(), 1) if marker in t]
    line = lines[0] if head_patch else lines[-1]  # a patch changes HEAD's first occurrence; a tree comes last
    assert any(p[0] == line and message in p[2] for p in err.value.problems), (line, err.value.problems)


ROUTE_GRANT = """
    [[route.routes.grants]]
    to = ["{to}"]
    {of}
    fields = [{fields}]
    reason = "{reason}"
"""


def _route_grant(to="hrss", of="", fields='"details.school_name"', reason="the school it helps"):
    return ROUTE_GRANT.format(to=to, of=of, fields=fields, reason=reason)


@pytest.mark.parametrize(
    "extra, marker, message",
    [
        (_route_grant(to="culture"), 'to = ["culture"]', "unknown department 'culture'"),
        (_route_grant(to="joint_meeting"), 'to = ["joint_meeting"]', "neither it nor a route above it routes"),
        (_route_grant(fields='"subjects.name"'), 'fields = ["subjects.name"]', "is a subject's: say whose in `of`"),
        (_route_grant(fields='"reporter.phone"'), 'fields = ["reporter.phone"]', "is the reporter's: add 'reporter'"),
        (
            _route_grant(of='of = ["victim"]'),
            'of = ["victim"]',
            "`of` names ['victim'] but no field of a subject is granted",
        ),
        (_route_grant(of='of = ["reporter"]'), 'of = ["reporter"]', "`of` names 'reporter' but no field"),
        (_route_grant(of='of = ["victims"]'), 'of = ["victims"]', "Input should be"),
        (_route_grant(fields='"details.shoe_size"'), "details.shoe_size", "unknown field 'details.shoe_size'"),
        (_route_grant(reason=""), 'reason = ""', "at least 3 characters"),
        (
            _route_grant(of='of = ["victim", "suspect"]', fields='"subjects.id_number"'),
            'of = ["victim", "suspect"]',
            "the identity of a suspect is for police only (offender_identity), not 'hrss'",
        ),
        (
            _route_grant(of='of = ["buyer"]', fields='"subjects.description"'),
            'of = ["buyer"]',
            "the identity of a buyer is for police only",
        ),
    ],
)
def test_bad_route_grants_are_load_errors_with_the_line(extra, marker, message):
    _fails(message, marker, extra)


@pytest.mark.parametrize(
    "patch, marker, message",
    [
        (('fields = ["subjects.age_band"]', 'fields = ["subjects.name"]'), 'fields = ["subjects.name"]', "no identity"),
        (
            ('fields = ["subjects.age_band"]', 'fields = ["subjects.age_band", "narrative"]'),
            'age_band", "narrative"',
            "no free",
        ),
        (
            (
                'always_shared = ["report_id", "source", "category", "subjects.role"]',
                'always_shared = ["subjects.age"]',
            ),
            "always_shared",
            "always_shared goes to every recipient: no personal data (['subjects.age'])",
        ),
        (
            ('offender_identity = ["police"]', 'offender_identity = ["court"]'),
            "offender_identity",
            "unknown department",
        ),
        (('offender_identity = ["police"]', 'offender_identity = ["hrss"]'), "offender_identity", "investigate"),
        (
            (
                'of = ["victim"]\nfields = ["subjects.name"]',
                'of = ["suspect"]\nfields = ["subjects.name"]',
            ),
            'of = ["suspect"]',
            "the identity of a suspect is for police only (offender_identity), not 'hrss'",
        ),
    ],
)
def test_bad_summary_department_grants_and_invariant_are_load_errors_with_the_line(patch, marker, message):
    _fails(message, marker, head_patch=patch)


def test_a_good_route_grant_loads_and_shows_its_reason_on_the_copy():
    rules, _ = _rules(_route_grant())
    copy = rules.grants.copy_for(
        "hrss", Role.cooperating, (("root", "school"),), Source.school, frozenset({"victim"}), False
    )
    (route,) = [g for g in copy.grants if g.route]
    assert route.route == ("root", "school") and route.reason == "the school it helps"
    assert route.field_groups == ("details",) and route.subjects == ()


def test_a_summary_may_not_carry_dna_or_biometric_fields(monkeypatch):
    from services.rules import redaction

    known = redaction.all_paths() | {"details.dna_profile"}
    monkeypatch.setattr(redaction, "all_paths", lambda: known)
    monkeypatch.setattr(redaction, "all_leaves", lambda: known)
    with pytest.raises(RulesError, match="DNA/biometric fields are for the police only, not every recipient"):
        _rules(
            head_patch=('fields = ["subjects.age_band"]\n', 'fields = ["subjects.age_band", "details.dna_profile"]\n')
        )


def test_every_report_model_has_the_free_text_this_test_knows():
    from schemas import free_text_fields

    assert set().union(*(free_text_fields(m) for m in REPORT_MODELS.values())) == FREE_TEXT


def test_the_compiled_projection_equals_the_tree_walk_on_every_example_and_corpus_copy_and_equal_trees_share_it():
    from schemas import parse_report
    from schemas.examples import load_examples
    from services.rules.inputs import as_report, json_files, read_json
    from services.rules.redaction import project

    reports = [parse_report(json.dumps(d)) for d in load_examples("v1", "reports").values()]
    for path in json_files([REPO / "tests" / "rules" / "corpus"]):
        case = read_json(path)
        reports.append(as_report({"source": case["source"], "submission": case["submission"]}))
    shared = 0
    for report in reports:
        report_json = report.model_dump(mode="json")
        referrals = RULES.plan(report, datetime.now(UTC)).referrals
        by_tree: dict[str, object] = {}
        for p in referrals:
            assert p.copy == project(report_json, p.disclosure.keep), p.department
            # Recipients whose trees are equal share one projected copy; other trees get their own.
            assert by_tree.setdefault(repr(p.disclosure.keep), p.copy) is p.copy, p.department
        assert len({id(p.copy) for p in referrals}) == len(by_tree)
        shared += len(referrals) - len(by_tree)
    assert shared > 0  # the shipped rules give some recipients of a report the same copy


def test_the_documented_grant_example_loads_and_shares_what_it_says():
    import re

    block = re.findall(r"```toml\n(.*?)```", (REPO / "docs/RULES.md").read_text(encoding="utf-8"), re.S)[1]
    rules = parse_rules((REPO / "routing_rules.toml").read_text() + "\n" + block, "docs/RULES.md")
    copy = rules.grants.copy_for(
        "disabled_federation",
        Role.cooperating,
        (("root", "disabled-worker-contact"),),
        Source.labour,
        frozenset({"victim", "suspect"}),
        False,
    )
    (grant,) = [g for g in copy.grants if g.route]
    assert [r.value for r in grant.subjects] == ["victim"] and grant.field_groups == ("subjects",)
    assert {r.value for r in copy.withheld.identity} == {"victim", "suspect"}  # name and phone are not all of it


def test_a_decision_records_each_grant_once_and_each_recipient_its_own():
    from services.router.routing import route_report

    for name in ("school-suspected_trafficking_child", "hospital-suspected_trafficking_woman", "venue-minor_in_venue"):
        out = route_report(RULES, _report_named(name), datetime.now(UTC))
        decision = out.decision
        assert len(set(decision.grants)) == len(decision.grants)  # no grant twice
        by_department = {r.department: r for r in decision.recipients}
        for referral in out.referrals:
            assert decision.grants_of(by_department[referral.department]) == referral.grants, name
        summary = [i for i, g in enumerate(decision.grants) if g.basis.value == "summary"]
        assert all(set(summary) <= set(r.grants_applied) for r in decision.recipients)  # everyone's, recorded once


def _report_named(name):
    from schemas import parse_report
    from schemas.examples import load_examples

    return parse_report(json.dumps(load_examples("v1", "reports")[name]))
