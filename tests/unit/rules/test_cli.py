"""The rule authors' tools: check, test, explain (run as a person would, through the CLI)."""

from pathlib import Path

from click.testing import CliRunner

from services.cli import main

REPO = Path(__file__).resolve().parents[3]
CASES = REPO / "tests" / "rules" / "plan_duties.toml"


def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_check_ok_prints_a_summary():
    result = run("rules", "check", str(REPO / "routing_rules.toml"))
    assert result.exit_code == 0
    assert "departments  23" in result.output


def test_check_broken_file_names_line_and_reason(tmp_path):
    text = (
        (REPO / "routing_rules.toml")
        .read_text()
        .replace('{ department = "court", role = "lead" }', '{ department = "trains", role = "lead" }', 1)
    )
    bad = tmp_path / "rules.toml"
    bad.write_text(text)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if '"trains"' in t)
    result = run("rules", "check", str(bad))
    assert result.exit_code == 1
    assert f"{bad}:{line}: route.routes[2].recipients[0].department: unknown department 'trains'" in result.output


def test_the_plan_duty_cases_pass():
    result = run("rules", "test", str(CASES))
    assert result.exit_code == 0, result.output
    assert "0 failed" in result.output


def test_a_wrong_expectation_fails_with_the_mismatch(tmp_path):
    cases = tmp_path / "cases.toml"
    cases.write_text(
        '[[case]]\nname = "dropout wrongly expected at the police"\n'
        'facts = { source = "school", category = "school_dropout_risk" }\n'
        'expect = { education = "lead", police = "lead" }\npriority = "critical"\n'
    )
    result = run("rules", "test", str(cases), "--rules", str(REPO / "routing_rules.toml"))
    assert result.exit_code == 1
    assert "police: expected lead, got nothing" in result.output
    assert "civil_affairs: expected nothing, got cooperating" in result.output
    assert "priority: expected critical, got normal" in result.output
    assert "0 passed, 1 failed" in result.output


def test_explain_shows_path_recipients_and_fields():
    report = REPO / "schemas/examples/v1/reports/hospital-suspected_trafficking_woman.json"
    result = run("rules", "explain", str(report), "--rules", str(REPO / "routing_rules.toml"))
    assert result.exit_code == 0
    assert "root > hospital-birth-identity" in result.output
    lines = result.output.splitlines()
    civil = lines.index(next(line for line in lines if line.strip().startswith("civil_affairs")))
    assert "anonymised" in lines[civil]
    assert "subjects.name" not in lines[civil + 2]  # its fields line
    police = lines.index(next(line for line in lines if line.strip().startswith("police")))
    assert "subjects.name" in lines[police + 2]


def test_explain_shows_what_was_shared_of_whom_and_why_and_what_was_withheld():
    report = REPO / "schemas/examples/v1/reports/school-suspected_trafficking_child.json"
    result = run("rules", "explain", str(report), "--rules", str(REPO / "routing_rules.toml"), "--format", "json")
    recipients = {r["department"]: r for r in json.loads(result.output)["recipients"]}
    youth = recipients["youth_league"]
    assert youth["role"] == "cooperating" and {g["basis"] for g in youth["grants"]} == {"summary"}
    assert youth["withheld"]["identity"] == ["suspect", "victim"] and "subjects.name" not in youth["fields"]
    education = recipients["education"]
    assert education["withheld"] == {
        "identity": ["suspect"],
        "free_text": ["details.pick_up_description", "location.description", "narrative", "subjects.description"],
    }
    (own,) = [g for g in education["grants"] if g["basis"] == "department" and g.get("subjects")]
    assert own["subjects"] == ["victim"] and own["field_groups"] == ["reporter", "subjects"]
    assert "二.(一).2.(2)-8" in own["reason"] and "subjects.name" in education["fields"]
    text = run("rules", "explain", str(report), "--rules", str(REPO / "routing_rules.toml")).output
    assert "withheld: the identity of suspect, victim" in text
    assert "shared by department of victim (reporter, subjects): the pupil and the guardians" in text


# --- the corpus form, explain on a submission, coverage, diff ------------------------------------

import copy  # noqa: E402
import json  # noqa: E402
from textwrap import dedent  # noqa: E402

from schemas.examples import load_examples  # noqa: E402

from .support import HEAD  # noqa: E402

ENVELOPE = ("schema_version", "report_id", "source", "source_system", "received_at")
EXAMPLES = load_examples("v1", "reports")


def submission(name, **changes):
    data = {k: copy.deepcopy(v) for k, v in EXAMPLES[name].items() if k not in ENVELOPE}
    return {**data, **changes}


def corpus_case(tmp_path, rel, case_id, source, sub, expect):
    path = tmp_path / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    case = {"id": case_id, "title": f"{case_id} title", "clause": "二.(一).2.(4)", "source": source}
    path.write_text(json.dumps({**case, "submission": sub, "expect": expect}, ensure_ascii=False))
    return path


SMALL_TREE = """
    [route]
    name = "root"
    recipients = [{ department = "police", role = "lead" }]

    [[route.routes]]
    name = "labour"
    match.source = ["labour"]
    continue = true
    recipients = [{ department = "hrss", role = "lead" }]

      [[route.routes.routes]]
      name = "foreign-worker"
      match.subject = { role = ["victim"], foreign = true }
      priority = "high"
      recipients = [{ department = "police", role = "cooperating" }]

    [[route.routes]]
    name = "school"
    match.source = ["school"]
    match.details = { enrolled = false }
    recipients = [{ department = "education", role = "lead" }]
"""


def rules_file(tmp_path, tree=SMALL_TREE, name="rules.toml"):
    path = tmp_path / name
    path.write_text(HEAD + dedent(tree))
    return path


def test_corpus_cases_pass_and_fail_with_clear_lines(tmp_path):
    rules = rules_file(tmp_path)
    foreign = submission("labour-illegal_employment_foreigner")  # a victim from MM, urgency normal
    corpus_case(
        tmp_path,
        "corpus/labour/ok-1.json",
        "labour-ok-1",
        "labour",
        foreign,
        {"recipients": {"hrss": "lead", "police": "cooperating"}, "min_priority": "high", "absent": ["education"]},
    )
    corpus_case(
        tmp_path,
        "corpus/labour/ok-contains.json",
        "labour-ok-2",
        "labour",
        foreign,
        {"recipients": {"hrss": "lead"}, "exact": False, "max_priority": "high", "case_owner": []},
    )
    corpus_case(
        tmp_path,
        "corpus/labour/deep/bad.json",
        "labour-bad",
        "labour",
        foreign,
        {
            "recipients": {"hrss": "lead", "education": "cooperating"},
            "absent": ["police"],
            "min_priority": "critical",
            "case_owner": ["hrss"],
        },
    )
    corpus_case(
        tmp_path,
        "corpus/labour/too-high.json",
        "labour-too-high",
        "labour",
        foreign,
        {"recipients": {"hrss": "lead"}, "exact": False, "max_priority": "normal"},
    )
    result = run("rules", "test", str(tmp_path / "corpus"), "--rules", str(rules))
    assert result.exit_code == 1
    out = result.output
    assert "ok    labour-ok-1  [二.(一).2.(4)]  labour-ok-1 title" in out
    assert "ok    labour-ok-2" in out
    assert "FAIL  labour-bad" in out and f"in {tmp_path / 'corpus/labour/deep/bad.json'}" in out
    assert "education: expected cooperating, got nothing" in out
    assert "police: expected nothing, got cooperating (via root > labour > foreign-worker)" in out
    assert "police: expected absent, got cooperating (via root > labour > foreign-worker)" in out
    assert "priority: expected at least critical, got high" in out
    assert "case owner required for: expected ['hrss'], got []" in out
    assert "priority: expected at most normal, got high (raised by root > labour > foreign-worker)" in out
    assert "2 passed, 2 failed" in out


def test_a_broken_corpus_case_fails_naming_the_field_not_the_value(tmp_path):
    rules = rules_file(tmp_path)
    sub = submission("labour-illegal_employment_foreigner")
    sub["subjects"][0]["age"] = "十四"
    corpus_case(tmp_path, "c/bad-sub.json", "bad-sub", "labour", sub, {"recipients": {"hrss": "lead"}})
    (tmp_path / "c" / "typo.json").write_text(json.dumps({"id": "typo", "source": "labour", "expect": {}}))
    result = run("rules", "test", str(tmp_path / "c"), "--rules", str(rules))
    assert result.exit_code == 1
    assert (
        "submission is not a valid labour submission: subjects.0.age: Input should be a valid integer" in result.output
    )
    assert "十四" not in result.output
    assert "not a corpus case: title: Field required" in result.output


def test_a_directory_mixes_json_and_toml_cases(tmp_path):
    rules = rules_file(tmp_path)
    corpus_case(
        tmp_path, "d/a.json", "a", "labour", submission("labour-child_labour"), {"recipients": {"hrss": "lead"}}
    )
    (tmp_path / "d" / "b.toml").write_text(
        '[[case]]\nname = "school pupil not enrolled"\n'
        'facts = { source = "school", category = "other", details = { enrolled = false } }\n'
        'expect = { education = "lead" }\n'
    )
    result = run("rules", "test", str(tmp_path / "d"), "--rules", str(rules), "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["passed"], data["failed"]) == (2, 0)
    assert {c["id"] for c in data["cases"]} == {"a", "school pupil not enrolled"}


def test_explain_a_submission_shows_why_each_recipient_and_the_priority(tmp_path):
    rules = rules_file(tmp_path)
    posted = tmp_path / "posted.json"
    posted.write_text(json.dumps(submission("labour-illegal_employment_foreigner"), ensure_ascii=False))
    text = run("rules", "explain", str(posted), "--source", "labour", "--rules", str(rules))
    assert text.exit_code == 0, text.output
    assert "(a submission, routed with a stand-in envelope" in text.output
    assert "yes  root > labour > foreign-worker   by subject" in text.output
    assert "priority: high (raised from urgency normal by root > labour > foreign-worker: subject)" in text.output
    assert "police               cooperating   via root > labour > foreign-worker (subject)" in text.output
    assert "示例工人庚" not in text.output  # the subject's name: fields are named, values never shown
    data = json.loads(
        run("rules", "explain", str(posted), "--source", "labour", "--rules", str(rules), "--format", "json").output
    )
    assert data["submission"] is True
    assert data["priority"] == {
        "value": "high",
        "urgency": "normal",
        "route": ["root", "labour", "foreign-worker"],
        "matched_by": ["subject"],
    }
    police = next(r for r in data["recipients"] if r["department"] == "police")
    assert police["rule_path"] == ["root", "labour", "foreign-worker"] and police["matched_by"] == ["subject"]
    assert {"path": ["root", "school"]} not in data["routes"]  # a school route is never tested for labour


def test_explain_a_submission_needs_its_source(tmp_path):
    posted = tmp_path / "posted.json"
    posted.write_text(json.dumps(submission("labour-child_labour")))
    result = run("rules", "explain", str(posted), "--rules", str(rules_file(tmp_path)))
    assert result.exit_code == 1
    assert "a submission (no report_id): give its sector with --source" in result.output


def test_explain_shows_a_failed_matcher_and_a_match_not_exclusion(tmp_path):
    rules = rules_file(
        tmp_path,
        SMALL_TREE
        + """
    [[route.routes]]
    name = "not-minors"
    match.source = ["labour"]
    match_not.subject = { minor = true }
    recipients = [{ department = "police", role = "lead" }]
    """,
    )
    report = REPO / "schemas/examples/v1/reports/labour-child_labour.json"
    data = json.loads(run("rules", "explain", str(report), "--rules", str(rules), "--format", "json").output)
    routes = {" > ".join(r["path"]): r for r in data["routes"]}
    assert routes["root > labour > foreign-worker"] == {
        "path": ["root", "labour", "foreign-worker"],
        "matched": False,
        "failed": ["subject"],
    }
    assert routes["root > not-minors"]["excluded_by"] == ["subject"]


def test_coverage_fails_on_an_unexercised_route_and_names_it(tmp_path):
    rules = rules_file(tmp_path)
    cases = tmp_path / "cases"
    corpus_case(tmp_path, "cases/a.json", "a", "labour", submission("labour-illegal_employment_foreigner"), {})
    result = run("rules", "coverage", "--cases", str(cases), "--rules", str(rules))
    assert result.exit_code == 1
    assert "1 routes are exercised by no case:\n  root > school\n" in result.output
    lines = result.output.splitlines()
    assert any(line.split()[:4] == ["*", "root", ">", "labour"] and line.split()[-2:] == ["1", "a"] for line in lines)
    # The missing case added: every route exercised, exit 0.
    sub = submission("school-school_dropout_risk")
    sub["details"]["enrolled"] = False
    corpus_case(tmp_path, "cases/b.json", "b", "school", sub, {})
    result = run("rules", "coverage", "--cases", str(cases), "--rules", str(rules), "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["unexercised"] == []
    assert data["pairs"]["school_dropout_risk/school"] == ["b"]
    assert {tuple(r["path"]): r["cases"] for r in data["routes"]} == {
        ("root", "labour"): ["a"],
        ("root", "labour", "foreign-worker"): ["a"],
        ("root", "school"): ["b"],
    }
    assert {tuple(r["path"]) for r in data["routes"] if r["fact_driven"]} == {
        ("root", "labour", "foreign-worker"),
        ("root", "school"),
    }


def test_diff_over_stored_reports_finds_a_planted_change(tmp_path):
    old = rules_file(tmp_path, name="old.toml")
    new = rules_file(
        tmp_path,
        SMALL_TREE.replace(
            'match.subject = { role = ["victim"], foreign = true }\n      priority = "high"\n'
            '      recipients = [{ department = "police", role = "cooperating" }]',
            'match.subject = { role = ["victim"], foreign = true }\n      priority = "critical"\n'
            '      recipients = [{ department = "police", role = "lead" }, { department = "joint_meeting", '
            'role = "cooperating" }]',
        ),
        name="new.toml",
    )
    stored = tmp_path / "stored"
    stored.mkdir()
    for name in ("labour-illegal_employment_foreigner", "labour-child_labour", "school-missing_child"):
        (stored / f"{name}.json").write_text(json.dumps(EXAMPLES[name], ensure_ascii=False))
    (stored / "posted.json").write_text(json.dumps(submission("labour-illegal_employment_foreigner")))
    (stored / "junk.json").write_text("{not json")
    result = run("rules", "diff", str(old), str(new), "--reports", str(stored), "--source", "labour")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "4 reports, 2 would change" in out
    foreign = str(stored / "labour-illegal_employment_foreigner.json")
    assert f"{foreign} (labour, illegal_employment_foreigner):" in out
    assert "+ joint_meeting        cooperating  via root > labour > foreign-worker" in out
    assert "~ police               cooperating -> lead   via root > labour > foreign-worker" in out
    assert "~ priority high -> critical   via root > labour > foreign-worker" in out
    assert "junk.json: not valid JSON (line 1)" in out
    data = json.loads(
        run(
            "rules", "diff", str(old), str(new), "--reports", str(stored), "--source", "labour", "--format", "json"
        ).output
    )
    assert data["reports"] == 4 and data["changed"] == 2
    assert data["routes"] == {
        "root > labour > foreign-worker": {
            "reports": 2,
            "added": 2,
            "removed": 0,
            "role": 2,
            "case_owner": 0,
            "priority": 2,
        }
    }
    assert [c["report"] for c in data["changes"]] == [foreign, str(stored / "posted.json")]


def test_diff_needs_one_input(tmp_path):
    old = rules_file(tmp_path)
    result = run("rules", "diff", str(old), str(old))
    assert result.exit_code == 2 and "give --reports DIR or --topic T" in result.output


def test_a_corpus_case_file_explains_as_is_and_a_file_may_hold_a_list(tmp_path):
    rules = rules_file(tmp_path)
    sub = submission("labour-illegal_employment_foreigner")
    case = corpus_case(
        tmp_path, "one.json", "one", "labour", sub, {"recipients": {"hrss": "lead", "police": "cooperating"}}
    )
    result = run("rules", "explain", str(case), "--rules", str(rules))
    assert result.exit_code == 0 and "yes  root > labour > foreign-worker   by subject" in result.output
    both = json.loads(case.read_text())
    (tmp_path / "list.json").write_text(json.dumps([both, {**both, "id": "two", "expect": {"recipients": {}}}]))
    result = run("rules", "test", str(tmp_path / "list.json"), "--rules", str(rules))
    assert result.exit_code == 1
    assert (
        "ok    one" in result.output
        and "FAIL  two" in result.output
        and f"in {tmp_path / 'list.json'}#1" in result.output
    )
