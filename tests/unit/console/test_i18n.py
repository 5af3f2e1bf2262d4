"""Every word a template asks for exists in both languages; department names come from the rules."""

from __future__ import annotations

import re

from schemas import Category, DeclineReason, OutcomeCode, Stage
from services.console.app import HERE
from services.console.i18n import LABELS, TEXT, Words


def test_every_key_a_template_uses_has_both_languages():
    used = set()
    for template in (HERE / "templates").glob("*.html"):
        used |= set(re.findall(r"t\('([a-z_.0-9]+)'\)", template.read_text()))
    assert used, "the templates ask for words"
    missing = sorted(k for k in used if k not in TEXT and not k.endswith("."))
    assert missing == []
    assert all(zh and en and zh != en for zh, en in TEXT.values() if zh not in ("English",))


def test_every_code_on_a_page_has_a_label():
    assert set(LABELS["stage"]) == {s.value for s in Stage}
    assert set(LABELS["decline"]) == {c.value for c in DeclineReason}
    assert set(LABELS["outcome"]) == {c.value for c in OutcomeCode}
    assert set(LABELS["category"]) == {c.value for c in Category}


def test_department_names_and_escalation_targets_come_from_the_rules(rules):
    names = {d: (s.name_zh, s.name_en) for d, s in rules.departments.items()}
    assert Words("zh", names).department("police") == "公安静海分局"
    assert Words("en", names).target("police.duty_supervisor") == "Jinghai Public Security Sub-bureau · duty_supervisor"
    assert Words("xx", names).lang == "zh"  # Chinese first
