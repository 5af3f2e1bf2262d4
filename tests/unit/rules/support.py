"""Shared by the rules tests: a small valid rules file head, and rules built from it plus a tree."""

from textwrap import dedent

from services.rules import CompiledRules, parse_rules
from tests.small_rules import DEFAULT_CLOCKS

HEAD = (
    dedent("""
    version = "t1"
    offender_identity = ["police"]
    always_shared = ["report_id", "source", "category", "subjects.role"]
    anonymise = ["subjects.name", "narrative"]
    [[summary]]
    of = ["victim", "suspect", "buyer", "guardian", "witness", "other"]
    fields = ["subjects.age_band"]
    reason = "the facts"
    [calendars.office]
    [calendars.always]
    always = true
    [defaults]
    calendar = "office"
""")
    + DEFAULT_CLOCKS
    + dedent("""\
    [defaults.escalation]
    repeat = "1h"
    levels = [{ after = "0s", to = "{department}.supervisor" }, { after = "1h", to = "joint_meeting" }]
    [departments.police]
    name_zh = "公安"
    name_en = "Police"
    [[departments.police.grants]]
    of = ["victim", "suspect", "buyer", "guardian", "witness", "other", "reporter"]
    fields = ["*"]
    reason = "investigation"
    [departments.joint_meeting]
    name_zh = "联席"
    name_en = "Joint meeting"
    [departments.education]
    name_zh = "教育"
    name_en = "Education"
    [[departments.education.grants]]
    fields = ["details.*"]
    reason = "the school"
    [departments.hrss]
    name_zh = "人社"
    name_en = "HRSS"
    [[departments.hrss.grants]]
    of = ["victim"]
    fields = ["subjects.name"]
    reason = "the workers"
    [[departments.hrss.grants]]
    fields = ["narrative"]
    reason = "what happened"
""")
)


def rules_with(tree: str) -> CompiledRules:
    return parse_rules(HEAD + dedent(tree), "inline.toml")
