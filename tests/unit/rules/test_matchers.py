"""The matcher language (docs/RULES.md): every matcher kind and combinator, table-driven with inline TOML.

Each case puts one matcher on a route "probe" (education, lead) under a root that
routes to the police; the probe matched exactly when education is a recipient.
"""

import json
from pathlib import Path
from textwrap import dedent

import pytest

from schemas import parse_report
from schemas.enums import Category, Source
from schemas.examples import load_examples
from services.rules import Facts, RulesError, parse_rules
from services.rules.engine import evaluate

from .support import HEAD, rules_with

REPORTS = load_examples("v1", "reports")


def probe(matcher: str, source: str | None = None) -> str:
    scope = f'match.source = ["{source}"]\n' if source else ""
    return (
        dedent("""
        [route]
        name = "root"
        recipients = [{ department = "police", role = "lead" }]
        [[route.routes]]
        name = "probe"
        """)
        + scope
        + dedent(matcher)
        + '\nrecipients = [{ department = "education", role = "lead" }]\n'
    )


def matched(matcher: str, facts: dict) -> bool:
    rules = rules_with(probe(matcher))
    result = evaluate(rules.root, Facts.from_mapping({"source": "labour", "category": "other", **facts}))
    return "education" in result.departments()


def victim(**kw):
    return {"role": "victim", **kw}


# (matcher TOML, facts (source labour / category other unless given), expected)
CASES = {
    # --- indicators: short list form = any; any / all / none; several keys all hold --------------
    "indicators list, one present": ('match.indicators = ["under_age"]', {"indicators": ["under_age"]}, True),
    "indicators list, none present": ('match.indicators = ["under_age"]', {"indicators": ["deception"]}, False),
    "indicators.any": (
        'match.indicators = { any = ["retention_of_identity_documents", "accompanied_by_controller"] }',
        {"indicators": ["deception", "accompanied_by_controller"]},
        True,
    ),
    "indicators.all, both": (
        'match.indicators = { all = ["under_age", "physical_sexual_violence"] }',
        {"indicators": ["physical_sexual_violence", "under_age", "deception"]},
        True,
    ),
    "indicators.all, one missing": (
        'match.indicators = { all = ["under_age", "physical_sexual_violence"] }',
        {"indicators": ["under_age"]},
        False,
    ),
    "indicators.none, absent": ('match.indicators = { none = ["under_age"] }', {"indicators": []}, True),
    "indicators.none, present": ('match.indicators = { none = ["under_age"] }', {"indicators": ["under_age"]}, False),
    "indicators any+none, both hold": (
        'match.indicators = { any = ["deception"], none = ["under_age"] }',
        {"indicators": ["deception"]},
        True,
    ),
    "indicators any+none, none fails": (
        'match.indicators = { any = ["deception"], none = ["under_age"] }',
        {"indicators": ["deception", "under_age"]},
        False,
    ),
    # --- urgency and the flat subject summaries ---------------------------------------------------
    "urgency": ('match.urgency = ["critical"]', {"urgency": "critical"}, True),
    "urgency, other": ('match.urgency = ["critical"]', {"urgency": "high"}, False),
    "any_foreign from subjects": ("match.any_foreign = true", {"subjects": [victim(nationality="VN")]}, True),
    "any_foreign, a CN subject": ("match.any_foreign = true", {"subjects": [victim(nationality="CN")]}, False),
    # --- subject: every predicate holds for one and the same subject --------------------------------
    "subject victim minor female": (
        'match.subject = { role = ["victim"], minor = true, sex = ["female"] }',
        {"subjects": [victim(age=15, sex="female")]},
        True,
    ),
    "subject predicates split over two subjects": (
        'match.subject = { role = ["victim"], minor = true, sex = ["female"] }',
        {"subjects": [victim(age=30, sex="female"), victim(age=15, sex="male")]},
        False,
    ),
    "subject foreign suspect or buyer": (
        'match.subject = { role = ["suspect", "buyer"], foreign = true }',
        {"subjects": [victim(nationality="CN"), {"role": "buyer", "nationality": "VN"}]},
        True,
    ),
    "subject foreign victim is not a foreign suspect": (
        'match.subject = { role = ["suspect", "buyer"], foreign = true }',
        {"subjects": [victim(nationality="VN"), {"role": "suspect", "nationality": "CN"}]},
        False,
    ),
    "subject foreign = false, nationality unknown": (
        "match.subject = { foreign = false }",
        {"subjects": [victim()]},
        True,
    ),
    "subject age lt, exact age": ("match.subject = { age = { lt = 14 } }", {"subjects": [victim(age=12)]}, True),
    "subject age lt, older": ("match.subject = { age = { lt = 14 } }", {"subjects": [victim(age=15)]}, False),
    "subject age lt, band certainly under": (
        "match.subject = { age = { lt = 14 } }",
        {"subjects": [victim(age_band="6-13")]},
        True,
    ),
    "subject age lt, band only maybe under": (
        "match.subject = { age = { lt = 16 } }",
        {"subjects": [victim(age_band="14-17")]},
        False,
    ),
    "subject age unknown": ("match.subject = { age = { lt = 16 } }", {"subjects": [victim()]}, False),
    "subject age range": ("match.subject = { age = { ge = 14, lt = 16 } }", {"subjects": [victim(age=15)]}, True),
    "subject age range, at the end": (
        "match.subject = { age = { ge = 14, lt = 16 } }",
        {"subjects": [victim(age=16)]},
        False,
    ),
    "subject age eq": ("match.subject = { age = { eq = 16 } }", {"subjects": [victim(age=16)]}, True),
    "subject age_band": ('match.subject = { age_band = ["0-5"] }', {"subjects": [victim(age=3)]}, True),
    "subject nationality": (
        'match.subject = { nationality = ["VN", "MM"] }',
        {"subjects": [victim(nationality="MM")]},
        True,
    ),
    "subject nationality, not listed": (
        'match.subject = { nationality = ["VN", "MM"] }',
        {"subjects": [victim(nationality="CN")]},
        False,
    ),
    "subject disability any": (
        'match.subject = { disability = ["any"] }',
        {"subjects": [victim(disability="intellectual")]},
        True,
    ),
    "subject disability any, unknown": (
        'match.subject = { disability = ["any"] }',
        {"subjects": [victim(disability="unknown")]},
        False,
    ),
    "subject disability kind": (
        'match.subject = { disability = ["intellectual"] }',
        {"subjects": [victim(disability="mental")]},
        False,
    ),
    "subject has_id": (
        "match.subject = { has_id = true }",
        {"subjects": [victim(id_type="passport", id_number="E0000000")]},
        True,
    ),
    "subject has_id, none": ("match.subject = { has_id = true }", {"subjects": [victim()]}, False),
    # --- location codes ----------------------------------------------------------------------------
    "location township_code": (
        'match.location = { township_code = ["120118100"] }',
        {"location": {"township_code": "120118100"}},
        True,
    ),
    "location township_code, other": (
        'match.location = { township_code = ["120118100"] }',
        {"location": {"township_code": "120118101"}},
        False,
    ),
    "location village prefix": (
        'match.location = { village_code = { prefix = "120118100" } }',
        {"location": {"village_code": "120118100201"}},
        True,
    ),
    "location village prefix, other township": (
        'match.location = { village_code = { prefix = "120118100" } }',
        {"location": {"village_code": "120118101201"}},
        False,
    ),
    "location village prefix, no village": (
        'match.location = { village_code = { prefix = "120118100" } }',
        {"location": {"township_code": "120118100"}},
        False,
    ),
    "location district": (
        'match.location = { district_code = ["120118"] }',
        {"location": {"district_code": "120118"}},
        True,
    ),
    "township (short form)": ('match.township = ["120118100"]', {"township": "120118100"}, True),
    # --- details by dotted path -----------------------------------------------------------------------
    "details scalar and membership": (
        'match.details = { escort_services = true, venue_type = ["ktv", "bar", "nightclub"] }',
        {"source": "venue", "details": {"escort_services": True, "venue_type": "ktv"}},
        True,
    ),
    "details membership fails": (
        'match.details = { escort_services = true, venue_type = ["ktv", "bar", "nightclub"] }',
        {"source": "venue", "details": {"escort_services": True, "venue_type": "hotel"}},
        False,
    ),
    "details comparison and membership": (
        'match.details = { youngest_worker_age = { lt = 16 }, permit_status = ["missing", "expired"] }',
        {"details": {"youngest_worker_age": 15, "permit_status": "expired"}},
        True,
    ),
    "details comparison fails": (
        'match.details = { youngest_worker_age = { lt = 16 }, permit_status = ["missing", "expired"] }',
        {"details": {"youngest_worker_age": 16, "permit_status": "expired"}},
        False,
    ),
    "details comparison, value absent": (
        "match.details = { youngest_worker_age = { lt = 16 } }",
        {"details": {}},
        False,
    ),
    "details nested path": (
        'match.details = { "identity_check.document_matches_patient" = false }',
        {"source": "hospital", "details": {"identity_check": {"document_matches_patient": False}}},
        True,
    ),
    "details nested path, parent absent": (
        'match.details = { "identity_check.document_matches_patient" = false }',
        {"source": "hospital", "details": {}},
        False,
    ),
    "details ne": (
        'match.details = { permit_status = { ne = "valid" } }',
        {"details": {"permit_status": "missing"}},
        True,
    ),
    "details ne, equal": (
        'match.details = { permit_status = { ne = "valid" } }',
        {"details": {"permit_status": "valid"}},
        False,
    ),
    "details not_in": (
        'match.details = { permit_status = { not_in = ["valid", "not_applicable"] } }',
        {"details": {"permit_status": "unknown"}},
        True,
    ),
    "details number eq": ("match.details = { workers_affected = 3 }", {"details": {"workers_affected": 3}}, True),
    "details ge": (
        "match.details = { days_absent = { ge = 20 } }",
        {"source": "school", "details": {"days_absent": 20}},
        True,
    ),
    "details gt": (
        "match.details = { days_absent = { gt = 20 } }",
        {"source": "school", "details": {"days_absent": 20}},
        False,
    ),
    "details present": (
        "match.details = { agency_name = { present = true } }",
        {"details": {"agency_name": "某中介"}},
        True,
    ),
    "details present on a personal field": (
        "match.details = { workplace_address = { present = false } }",
        {"details": {}},
        True,
    ),
    "tuple contains_other_than": (
        'match.details = { party_nationalities = { contains_other_than = "CN" } }',
        {"source": "marriage", "details": {"party_nationalities": ["CN", "VN"]}},
        True,
    ),
    "tuple contains_other_than, all CN": (
        'match.details = { party_nationalities = { contains_other_than = "CN" } }',
        {"source": "marriage", "details": {"party_nationalities": ["CN", "CN"]}},
        False,
    ),
    "tuple contains": (
        'match.details = { document_anomalies = { contains = "forged_document" } }',
        {"source": "marriage", "details": {"document_anomalies": ["age_mismatch", "forged_document"]}},
        True,
    ),
    "tuple contains_any": (
        'match.details = { party_nationalities = { contains_any = ["MM", "LA"] } }',
        {"source": "marriage", "details": {"party_nationalities": ["CN", "VN"]}},
        False,
    ),
    # --- combinators ------------------------------------------------------------------------------------
    "any, first element": (
        'match.any = [ { category = ["child_labour"] }, { details = { youngest_worker_age = { lt = 16 } } } ]',
        {"category": "child_labour"},
        True,
    ),
    "any, second element": (
        'match.any = [ { category = ["child_labour"] }, { details = { youngest_worker_age = { lt = 16 } } } ]',
        {"category": "forced_labour", "details": {"youngest_worker_age": 15}},
        True,
    ),
    "any, no element": (
        'match.any = [ { category = ["child_labour"] }, { details = { youngest_worker_age = { lt = 16 } } } ]',
        {"category": "forced_labour", "details": {"youngest_worker_age": 17}},
        False,
    ),
    "all, both": (
        'match.all = [ { subject = { role = ["victim"], minor = true } }, '
        '{ indicators = { any = ["physical_sexual_violence"] } } ]',
        {"subjects": [victim(age=12)], "indicators": ["physical_sexual_violence"]},
        True,
    ),
    "all, one": (
        'match.all = [ { subject = { role = ["victim"], minor = true } }, '
        '{ indicators = { any = ["physical_sexual_violence"] } } ]',
        {"subjects": [victim(age=12)]},
        False,
    ),
    "not": (
        "match.not = { details = { enrolled = true } }",
        {"source": "school", "details": {"enrolled": False}},
        True,
    ),
    "not, inner holds": (
        "match.not = { details = { enrolled = true } }",
        {"source": "school", "details": {"enrolled": True}},
        False,
    ),
    "not inside any": (
        'match.any = [ { not = { urgency = ["normal"] } }, { indicators = ["under_age"] } ]',
        {"urgency": "high"},
        True,
    ),
    # --- match_not: the same keys; any one that holds excludes ------------------------------------------
    "match_not subject": (
        'match_not.subject = { role = ["victim"], minor = true }',
        {"subjects": [victim(age=12)]},
        False,
    ),
    "match_not subject, adult": (
        'match_not.subject = { role = ["victim"], minor = true }',
        {"subjects": [victim(age=40)]},
        True,
    ),
    "match_not details: either path excludes": (
        "match_not.details = { enrolled = true, days_absent = { lt = 5 } }",
        {"source": "school", "details": {"enrolled": False, "days_absent": 2}},
        False,
    ),
    "match_not details: neither path holds": (
        "match_not.details = { enrolled = true, days_absent = { lt = 5 } }",
        {"source": "school", "details": {"enrolled": False, "days_absent": 30}},
        True,
    ),
    "match_not indicators.all": (
        'match_not.indicators = { all = ["under_age", "deception"] }',
        {"indicators": ["under_age"]},
        True,
    ),
    "match_not any": (
        'match_not.any = [ { urgency = ["critical"] }, { indicators = ["under_age"] } ]',
        {"indicators": ["under_age"]},
        False,
    ),
    "match_not location prefix": (
        'match_not.location = { township_code = { prefix = "1201181" } }',
        {"location": {"township_code": "120118100"}},
        False,
    ),
}


@pytest.mark.parametrize("matcher, facts, expected", list(CASES.values()), ids=list(CASES))
def test_matcher(matcher, facts, expected):
    assert matched(matcher, facts) is expected


@pytest.mark.parametrize(
    "matcher, report, expected",
    [
        # Facts taken from published reports: subjects, details (enums in models) and location.
        ('match.subject = { role = ["victim"], nationality = ["MM"] }', "labour-illegal_employment_foreigner", True),
        ("match.details = { youngest_worker_age = { le = 14 } }", "labour-illegal_employment_foreigner", True),
        ('match.details = { permit_status = ["not_applicable"] }', "labour-illegal_employment_foreigner", True),
        ('match.details = { permit_status = ["missing"] }', "labour-illegal_employment_foreigner", False),
        ('match.location = { village_code = { prefix = "120118100" } }', "labour-illegal_employment_foreigner", True),
        (
            'match.details = { party_nationalities = { contains_other_than = "CN" } }',
            "marriage-cross_border_marriage",
            True,
        ),
    ],
)
def test_matchers_on_published_reports(matcher, report, expected):
    rules = rules_with(probe(matcher))
    facts = Facts.of(parse_report(json.dumps(REPORTS[report])))
    assert ("education" in evaluate(rules.root, facts).departments()) is expected


def test_combinators_keep_the_index_conservative():
    # 'category' inside 'not' rules pairs out; inside 'any' with an open element it cannot.
    rules = rules_with(
        probe('match.not = { category = ["other"] }')
        + dedent("""
        [[route.routes]]
        name = "either"
        match.any = [ { category = ["child_labour"] }, { indicators = ["under_age"] } ]
        recipients = [{ department = "hrss", role = "lead" }]
        """)
    )
    root = rules.root
    names = {pair: [root.children[i].name for i in idx] for pair, idx in root.index.items()}
    assert names[(Source.labour, Category.other)] == ["either"]
    assert names[(Source.labour, Category.child_labour)] == ["probe", "either"]
    assert names[(Source.school, Category.forced_labour)] == ["probe", "either"]
    facts = Facts.from_mapping({"source": "school", "category": "other", "indicators": ["under_age"]})
    assert evaluate(root, facts).departments() == {"hrss": "lead"}


def test_a_fact_driven_route_without_a_lead_is_a_gap():
    # Some facts reach only the cooperating route: the loader proves the gap exists.
    with pytest.raises(RulesError, match="category 'child_labour' can reach no lead department"):
        rules_with("""
            [route]
            name = "root"
            recipients = [{ department = "police", role = "lead" }]
            [[route.routes]]
            name = "young-worker"
            match.category = ["child_labour"]
            match.subject = { age = { lt = 16 } }
            recipients = [{ department = "education", role = "cooperating" }]
        """)
    # The same route under a branch that leads is fine.
    rules_with("""
        [route]
        name = "root"
        recipients = [{ department = "police", role = "lead" }]
        [[route.routes]]
        name = "child-labour"
        match.category = ["child_labour"]
        recipients = [{ department = "hrss", role = "lead" }]
          [[route.routes.routes]]
          name = "young-worker"
          match.subject = { age = { lt = 16 } }
          recipients = [{ department = "education", role = "cooperating" }]
    """)


# --- load errors: the file line and a reason naming what was considered ---------------------------------

ERRORS = {
    "unknown details path, any source": (
        "match.details = { youngest_worker_agee = { lt = 16 } }",
        None,
        "unknown details path 'youngest_worker_agee': not a field of the details of hospital, labour, "
        "marriage, school, venue",
    ),
    "details path of another source": (
        'match.details = { venue_type = ["ktv"] }',
        "school",
        "unknown details path 'venue_type': not a field of the details of school",
    ),
    "number field given text": (
        'match.details = { youngest_worker_age = { lt = "young" } }',
        None,
        "Input should be a valid",
    ),
    "number field given a boolean": (
        "match.details = { youngest_worker_age = true }",
        None,
        "details 'youngest_worker_age' of labour: True is not a number",
    ),
    "unknown enum value": (
        'match.details = { permit_status = ["none"] }',
        None,
        "'none' is not a valid PermitStatus (not_applicable, valid, missing, expired, unknown)",
    ),
    "comparison on a text field": (
        "match.details = { industry = { lt = 3 } }",
        "labour",
        "'industry' is a text field: it accepts eq, in, ne, not_in, present, not lt",
    ),
    "contains on a scalar": (
        'match.details = { venue_type = { contains = "ktv" } }',
        "venue",
        "'venue_type' is a enum field",
    ),
    "tuple field with equality": (
        'match.details = { party_nationalities = ["VN"] }',
        None,
        "'party_nationalities' is a tuple field",
    ),
    "tuple element type": (
        'match.details = { party_nationalities = { contains = "Vietnam" } }',
        None,
        "'Vietnam' is not a valid text",
    ),
    "a personal field's value": (
        'match.details = { workplace_address = "示例路1号" }',
        None,
        "'workplace_address' is personal data: it accepts present, not eq",
    ),
    "a model is not a value": (
        "match.details = { identity_check = true }",
        "hospital",
        "'identity_check' is a model field",
    ),
    "empty list": ("match.indicators = []", None, "at least 1 item"),
    "unknown indicator": ('match.indicators = { any = ["sad"] }', None, "Input should be"),
    "unknown key": ('match.subjects = { role = ["victim"] }', None, "Extra inputs are not permitted"),
    "unknown subject predicate": ('match.subject = { colour = ["red"] }', None, "Extra inputs are not permitted"),
    "empty subject": ("match.subject = {}", None, "give at least one of: role"),
    "subject predicate of the wrong type": ('match.subject = { minor = "yes" }', None, "valid boolean"),
    "unknown role": ('match.subject = { role = ["victm"] }', None, "Input should be 'victim'"),
    "unknown country": ('match.subject = { nationality = ["XX"] }', None, "not an ISO 3166-1 alpha-2"),
    "empty matcher in any": ("match.any = [ {} ]", None, "element 0 is an empty matcher"),
    "empty not": ("match.not = {}", None, "'not' of an empty matcher"),
    "location code length": ('match.location = { township_code = ["1201"] }', None, "is not 9 digits"),
    "location prefix digits": (
        'match.location = { village_code = { prefix = "12a" } }',
        None,
        "must be 1 to 12 digits",
    ),
    "bad details path syntax": ('match.details = { "Venue-Type" = "ktv" }', None, "String should match pattern"),
    "details inside any, scoped by its own source": (
        'match.any = [ { source = ["venue"], details = { youngest_worker_age = { lt = 16 } } } ]',
        None,
        "not a field of the details of venue",
    ),
    "details inside match_not": (
        "match_not.details = { days_absentt = { gt = 3 } }",
        "school",
        "unknown details path 'days_absentt'",
    ),
}


@pytest.mark.parametrize("matcher, source, message", list(ERRORS.values()), ids=list(ERRORS))
def test_bad_matchers_are_load_errors_with_the_line(matcher, source, message):
    tree = probe(matcher, source)
    text = HEAD + tree
    line = next(i for i, t in enumerate(text.splitlines(), 1) if t == dedent(matcher).strip())
    with pytest.raises(RulesError) as err:
        parse_rules(text, "inline.toml")
    assert message in str(err.value), str(err.value)
    assert any(p[0] == line for p in err.value.problems), (line, err.value.problems)
    assert str(err.value).startswith(f"inline.toml:{line}: route.routes[0].match")


def test_a_details_path_is_scoped_by_the_nearest_ancestor_source():
    tree = dedent("""
        [route]
        name = "root"
        recipients = [{ department = "police", role = "lead" }]
        [[route.routes]]
        name = "venues"
        match.source = ["venue"]
        recipients = [{ department = "police", role = "lead" }]
          [[route.routes.routes]]
          name = "young"
          match.details = { youngest_worker_age = { lt = 16 } }
          recipients = [{ department = "hrss", role = "cooperating" }]
    """)
    text = HEAD + tree
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "youngest_worker_age" in t)
    with pytest.raises(RulesError) as err:
        parse_rules(text, "inline.toml")
    assert err.value.lines() == [
        f"inline.toml:{line}: route.routes[0].routes[0].match.details.youngest_worker_age: "
        "unknown details path 'youngest_worker_age': not a field of the details of venue"
    ]
    # Under a labour branch the same path is fine.
    parse_rules(text.replace('match.source = ["venue"]', 'match.source = ["labour"]'), "inline.toml")


def test_errors_in_a_multi_line_any_name_the_element_line():
    tree = probe("""
        match.any = [
          { category = ["child_labour"] },
          { details = { youngest_worker_age = { lt = "x" } } },
        ]
    """)
    text = HEAD + tree
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "youngest_worker_age" in t)
    with pytest.raises(RulesError) as err:
        parse_rules(text, "inline.toml")
    assert {p[0] for p in err.value.problems} == {line}
    assert "route.routes[0].match.any[1].details.youngest_worker_age" in str(err.value)


def test_the_shipped_file_still_loads():
    parse_rules((Path(__file__).resolve().parents[3] / "routing_rules.toml").read_text(), "routing_rules.toml")


@pytest.mark.parametrize("doc", ["README.md", "docs/RULES.md"])
def test_the_documented_example_route_loads(doc):
    import re

    repo = Path(__file__).resolve().parents[3]
    block = re.search(r"```toml\n(.*?)```", (repo / doc).read_text(encoding="utf-8"), re.S).group(1)
    rules = parse_rules((repo / "routing_rules.toml").read_text() + "\n" + block, doc)
    name = re.search(r'name = "([^"]+)"', block).group(1)
    assert any(child.name == name and child.fact_driven for child in rules.root.children)
