"""The realistic case corpus (tests/rules/corpus/<source>/<id>.json) is well formed.

Checks the files, not the routing (routing the corpus is `cluebus rules test`'s job): every
file parses and has the keys of docs/rules-language §3; its `submission` validates with the
sector's own submission model, as the adapter would; every department and role it expects
exists; and every expected recipient is named in the plan brackets the case copies, with the
role the union of those brackets gives it (lead wins over cooperating). How the cases read the
plan is in docs/CORPUS.md.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from schemas import SUBMISSION_MODELS, Priority, Role, Source

REPO = Path(__file__).resolve().parents[3]
CORPUS = REPO / "tests" / "rules" / "corpus"
FILES = sorted(CORPUS.glob("*/*.json"))
DEPARTMENTS = tomllib.loads((REPO / "routing_rules.toml").read_text())["departments"]
BY_NAME_ZH = {spec["name_zh"]: dept for dept, spec in DEPARTMENTS.items()}
ALL_MEMBERS = "区反拐联席会议各成员单位"  # "every member unit of the joint meeting"

REQUIRED = {"id", "title", "clause", "clause_text", "source", "submission", "expect"}
OPTIONAL = {"notes"}
EXPECT_KEYS = {"recipients", "exact", "absent", "min_priority", "max_priority", "case_owner"}
# 二.(一).2.(4), 二.(一).2.(2)-3 (the third "——" item under a measure), 二.(三).2.(4)-1
CLAUSE = re.compile(r"^[一二三四五六]\.\([一二三四五六七]\)\.[12]\.\(\d\)(-\d{1,2})?$")
BRACKET = re.compile(r"\[[^\[\]]+\]")
MIN_CASES, MIN_PER_SOURCE = 100, 18  # issue 13 item 4


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def clauses_of(case: dict) -> list[str]:
    return case["clause"].split(" + ")


def brackets_of(case: dict) -> list[str]:
    return case["clause_text"].split(" + ")


def bracket_roles(bracket: str) -> tuple[set[str], set[str], bool]:
    """(leads, cooperating, every member leads) of a bracket, as department ids.

    Units the bus does not have (区财政局, 区发改委, ...) are skipped.
    """
    leads: set[str] = set()
    coops: set[str] = set()
    all_members = False
    for part in bracket.strip("[]").split("，"):
        for suffix, target in (("负责", leads), ("配合", coops)):
            if part.endswith(suffix):
                for name in part.removesuffix(suffix).split("、"):
                    if name == ALL_MEMBERS:
                        target.add("joint_meeting")
                        all_members = all_members or target is leads
                    elif name in BY_NAME_ZH:
                        target.add(BY_NAME_ZH[name])
    return leads, coops, all_members


def test_the_corpus_is_large_enough_and_covers_every_source():
    per_source = Counter(path.parent.name for path in FILES)
    assert len(FILES) >= MIN_CASES, f"{len(FILES)} cases, want at least {MIN_CASES}"
    for source in Source:
        assert per_source[source.value] >= MIN_PER_SOURCE, f"{source.value}: {per_source[source.value]} cases"
    assert set(per_source) <= {s.value for s in Source}, f"unknown source folders: {set(per_source)}"


def test_case_ids_are_unique():
    ids = Counter(load(path)["id"] for path in FILES)
    assert [i for i, n in ids.items() if n > 1] == []


def test_a_clause_id_always_carries_the_same_bracket():
    seen: dict[str, set[str]] = defaultdict(set)
    for path in FILES:
        case = load(path)
        for clause, bracket in zip(clauses_of(case), brackets_of(case), strict=False):
            seen[clause].add(bracket)
    assert {c: b for c, b in seen.items() if len(b) > 1} == {}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_case_file(path: Path):
    case = load(path)
    assert REQUIRED <= set(case) <= REQUIRED | OPTIONAL, f"keys: {sorted(set(case) ^ REQUIRED)}"
    assert case["id"] == path.stem
    assert case["source"] == path.parent.name
    source = Source(case["source"])
    assert isinstance(case["title"], str) and len(case["title"]) >= 10

    # What the departmental system posts must be accepted by that sector's adapter.
    SUBMISSION_MODELS[source].model_validate(case["submission"])

    clauses, brackets = clauses_of(case), brackets_of(case)
    assert all(CLAUSE.match(c) for c in clauses), clauses
    assert len(clauses) == len(set(clauses)) == len(brackets), "one bracket per cited clause"
    assert all(BRACKET.fullmatch(b) for b in brackets), brackets

    expect = case["expect"]
    assert set(expect) <= EXPECT_KEYS and "recipients" in expect
    recipients = expect["recipients"]
    assert isinstance(recipients, dict) and recipients
    assert set(recipients) <= set(DEPARTMENTS), set(recipients) - set(DEPARTMENTS)
    assert {Role(role) for role in recipients.values()}
    assert isinstance(expect.get("exact", True), bool)
    absent = expect.get("absent", [])
    assert set(absent) <= set(DEPARTMENTS) and not set(absent) & set(recipients)
    low, high = (expect.get(k) for k in ("min_priority", "max_priority"))
    if low and high:
        assert Priority(low).rank <= Priority(high).rank
    elif low or high:
        Priority(low or high)
    assert set(expect.get("case_owner", [])) <= set(recipients)

    # Every expected recipient comes from a copied bracket, with the union's role.
    leads: set[str] = set()
    coops: set[str] = set()
    any_member_leads = False
    for bracket in brackets:
        lead, coop, all_members = bracket_roles(bracket)
        leads |= lead
        coops |= coop
        any_member_leads |= all_members
    for dept, role in recipients.items():
        if role == Role.lead:
            assert dept in leads or any_member_leads, f"{dept} is not a lead (负责) unit of {case['clause']}"
        else:
            assert dept in coops, f"{dept} is not a cooperating (配合) unit of {case['clause']}"
            assert dept not in leads, f"{dept} leads in {case['clause']}: lead wins over cooperating"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_case_people_are_fictional(path: Path):
    """Resident ids are masked and phone numbers use the reserved fictional ranges."""
    submission = load(path)["submission"]
    phones = [submission["reporter"].get("phone")] + [s.get("phone") for s in submission["subjects"]]
    for phone in filter(None, phones):
        assert phone.startswith(("022-0000", "1300000")), phone
    for subject in submission["subjects"]:
        if subject.get("id_type") == "resident_id":
            assert "*" in subject["id_number"], subject["id_number"]
