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
