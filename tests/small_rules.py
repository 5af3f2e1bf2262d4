"""A small valid routing rules file for tests that need departments (and their referral topics), not routes.

Every report goes to the police (the lead the rules demand); the other departments only exist, so their
principals, inboxes, topics and ACLs do.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from services.rules import CompiledRules, parse_rules

# Every priority's clocks, as ``[defaults]`` needs them (also the head of tests/unit/rules/support.py).
DEFAULT_CLOCKS = """\
[defaults.clocks.critical]
received = "5m"
decided = "10m"
completed = "1d"
[defaults.clocks.high]
received = "1h"
decided = "2h"
completed = "2d"
[defaults.clocks.normal]
received = "4h"
decided = "8h"
completed = "3d"
"""

_HEAD = f"""\
version = "small-1"
offender_identity = ["police"]
always_shared = ["report_id", "source", "category"]
anonymise = ["subjects.name"]
[[summary]]
of = ["victim", "suspect", "buyer", "guardian", "witness", "other"]
fields = ["subjects.age_band"]
reason = "the facts"
[calendars.office]
[defaults]
calendar = "office"
{DEFAULT_CLOCKS}[defaults.escalation]
repeat = "1h"
levels = [{{ after = "0s", to = "{{department}}.supervisor" }}]
on_lead_decline = "police"
[route]
name = "root"
recipients = [{{ department = "police", role = "lead" }}]
"""


def small_rules_text(departments: Iterable[str], topics: Mapping[str, str] | None = None) -> str:
    """The rules text: ``departments`` (the police among them) and their ``topic`` overrides."""
    departments = list(departments)
    assert "police" in departments, "the small rules route every report to the police"
    text = _HEAD
    for department in departments:
        text += f'[departments.{department}]\nname_zh = "{department}"\nname_en = "{department}"\n'
        if topics and department in topics:
            text += f'topic = "{topics[department]}"\n'
    return text


def small_rules(departments: Iterable[str], topics: Mapping[str, str] | None = None) -> CompiledRules:
    return parse_rules(small_rules_text(departments, topics), "small_rules.toml")
