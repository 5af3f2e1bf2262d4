"""docs/PRIVACY.md is generated from the rules and cannot drift from them."""

from pathlib import Path

from click.testing import CliRunner

from services.cli import main
from services.rules import load_rules, parse_rules
from services.rules.privacy import render

REPO = Path(__file__).resolve().parents[3]
RULES_FILE = REPO / "routing_rules.toml"


def test_docs_privacy_is_what_the_shipped_rules_generate():
    expected = render(load_rules(RULES_FILE))
    assert (REPO / "docs/PRIVACY.md").read_text(encoding="utf-8") == expected, (
        "docs/PRIVACY.md differs from the rules: run `cluebus rules privacy > docs/PRIVACY.md`"
    )


def test_the_command_prints_the_same_document():
    result = CliRunner().invoke(main, ["rules", "privacy", str(RULES_FILE)])
    assert result.exit_code == 0, result.output
    assert result.output == render(load_rules(RULES_FILE))


def test_a_changed_grant_changes_the_document():
    text = RULES_FILE.read_text(encoding="utf-8")
    changed = text.replace(
        'of = ["victim", "other"]\nfields = ["subjects.name", "subjects.phone"]',
        'of = ["victim"]\nfields = ["subjects.name", "subjects.phone"]',
        1,
    )
    assert changed != text
    before, after = render(load_rules(RULES_FILE)), render(parse_rules(changed))
    row = next(line for line in after.splitlines() if line.startswith("| disabled_federation | victim |"))
    assert before != after and "| disabled_federation | victim, other |" in before and row


def test_the_document_states_the_invariant_and_every_department_with_identity():
    doc = render(load_rules(RULES_FILE))
    assert "only police, procuratorate, court" in doc
    rows = {line.split(" | ")[0].strip("| ") for line in doc.split("## Whose identity")[1].splitlines() if "|" in line}
    assert {"police", "procuratorate", "court", "civil_affairs", "education", "health", "hrss"} <= rows
