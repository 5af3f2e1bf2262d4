"""Hypothesis strategies for valid submissions of every source (shared by tests)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

from hypothesis import strategies as st

from schemas import Category, Consent, Indicator, Source, SubjectRole, Urgency
from schemas.enums import CHILD_CATEGORIES, NO_VICTIM_NEEDED, AgeBand, Disability, Sex
from schemas.examples import load_examples

EXAMPLES = load_examples("v1", "reports")
ENVELOPE = ("schema_version", "report_id", "source", "source_system", "received_at")
BASE = {}
for _data in EXAMPLES.values():
    if _data["source"] not in BASE:
        BASE[_data["source"]] = {k: v for k, v in _data.items() if k not in ENVELOPE}

text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=60).filter(str.strip)
countries = st.sampled_from(["CN", "VN", "MM", "LA", "KP", "RU", "US"])


@st.composite
def subjects(draw, role=None, minor=None):
    age = draw(st.one_of(st.none(), st.integers(0, 17) if minor else
                         st.integers(18, 90) if minor is False else st.integers(0, 90)))
    band = AgeBand.unknown if age is None else AgeBand.for_age(age)
    if age is None and minor is True:
        band = draw(st.sampled_from([AgeBand.infant, AgeBand.child, AgeBand.adolescent, AgeBand.unknown]))
    if age is None and minor is False:
        band = draw(st.sampled_from([AgeBand.young_adult, AgeBand.adult, AgeBand.senior]))
    subject = {
        "role": (role or draw(st.sampled_from(list(SubjectRole)))).value,
        "sex": draw(st.sampled_from(list(Sex))).value,
        "age_band": band.value,
        "disability": draw(st.sampled_from(list(Disability))).value,
    }
    if age is not None:
        subject["age"] = age
    if draw(st.booleans()):
        subject["name"] = draw(text)
    if draw(st.booleans()):
        subject["nationality"] = draw(countries)
    if draw(st.booleans()):
        subject["id_type"] = "resident_id"
        subject["id_number"] = draw(st.from_regex(r"\A[0-9X]{6,18}\Z"))
    if draw(st.booleans()):
        subject["description"] = draw(text)
    return subject


@st.composite
def submissions(draw, source: Source | None = None):
    source = source or draw(st.sampled_from(list(Source)))
    data = copy.deepcopy(BASE[source.value])
    category = draw(st.sampled_from(list(Category)))
    consent = draw(st.sampled_from(list(Consent)))
    people = []
    # The first subject is the victim where one is needed (and the pupil for schools).
    needs_child = category in CHILD_CATEGORIES or source == Source.school
    first_minor = True if needs_child else (False if consent == Consent.refused else None)
    people.append(draw(subjects(role=SubjectRole.victim, minor=first_minor)))
    if consent == Consent.refused and needs_child:
        consent = Consent.not_required
    for _ in range(draw(st.integers(0, 3))):
        people.append(draw(subjects(minor=False if consent == Consent.refused else None)))
    if category in NO_VICTIM_NEEDED and draw(st.booleans()):
        people[0]["role"] = SubjectRole.suspect.value
    data.update({
        "source_ref": draw(st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.:/-]{0,40}\Z")),
        "reported_at": (datetime.now(UTC) - timedelta(seconds=draw(st.integers(0, 10**7)))).isoformat(),
        "category": category.value,
        "urgency": draw(st.sampled_from(list(Urgency))).value,
        "subjects": people,
        "narrative": draw(text),
        "indicators": draw(st.lists(st.sampled_from(list(Indicator)), unique=True, max_size=5)),
        "consent": consent.value,
    })
    data["indicators"] = [i.value for i in data["indicators"]]
    if source == Source.school:
        data["details"]["pupil_subject_index"] = 0
    return source, data
