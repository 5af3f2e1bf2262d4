"""Hypothesis strategies for valid submissions of every source (shared with the rules tests).

Built from the models' own constraints (enums, patterns, lengths, the
cross-field rules), not from the examples, so that they reach corners the
examples do not: optional blocks absent or present, many subjects, every enum
value. ``submissions()`` draws ``(source, data)`` where ``data`` is the JSON
object a departmental system would post.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import strategies as st

from schemas import Category, Consent, Indicator, Source, SubjectRole, Urgency, dna_content
from schemas.countries import COUNTRY_CODES
from schemas.enums import (
    CHILD_CATEGORIES,
    NO_VICTIM_NEEDED,
    AgeBand,
    AttachmentKind,
    Disability,
    IdType,
    Sex,
)
from schemas.sources import DocumentAnomaly, EncounterType, PermitStatus, VenueType

COUNTRIES = sorted(COUNTRY_CODES)
CREDIT_CODE_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def text(max_size: int = 60) -> st.SearchStrategy[str]:
    """Free text in any script, never blank (the models trim whitespace) and never what the DNA screen
    refuses by design (hypothesis once drew the narrative "STRprofile": an STR profile, refused)."""
    return st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=max_size).filter(
        lambda s: s.strip() != "" and dna_content(s) is None
    )


def optional(strategy: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(st.none(), strategy)


def enum_value(enum: type) -> st.SearchStrategy[str]:
    return st.sampled_from([member.value for member in enum])


def aware_datetimes(max_age_seconds: int = 10**7) -> st.SearchStrategy[str]:
    """ISO 8601 with an offset, in the past (up to ~4 months), in China or UTC time."""
    from datetime import timezone

    zones = st.sampled_from([UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5))])
    return st.builds(
        lambda ago, tz: (datetime.now(UTC) - timedelta(seconds=ago)).astimezone(tz).isoformat(),
        st.integers(0, max_age_seconds),
        zones,
    )


credit_codes = st.builds(
    lambda head, digits, tail: head + digits + tail,
    st.text(CREDIT_CODE_CHARS, min_size=2, max_size=2),
    st.text("0123456789", min_size=6, max_size=6),
    st.text(CREDIT_CODE_CHARS, min_size=10, max_size=10),
)
phones = st.from_regex(r"\A\+?[0-9]{5,15}\Z")


@st.composite
def locations(draw) -> dict:
    location: dict = {}
    district = draw(optional(st.sampled_from(["120118", "120116", "130100"]) | st.from_regex(r"\A[0-9]{6}\Z")))
    if district is not None:
        location["district_code"] = district
        township = draw(optional(st.from_regex(r"\A[0-9]{3}\Z")))
        if township is not None:
            location["township_code"] = district + township
            village = draw(optional(st.from_regex(r"\A[0-9]{3}\Z")))
            if village is not None:
                location["village_code"] = district + township + village
    for key, size in (("address", 100), ("description", 100)):
        value = draw(optional(text(size)))
        if value is not None:
            location[key] = value
    return location


@st.composite
def reporters(draw) -> dict:
    reporter = {"name": draw(text(100)), "role": draw(text(100)), "organisation": draw(text(200))}
    phone = draw(optional(phones))
    if phone is not None:
        reporter["phone"] = phone
    return reporter


@st.composite
def subjects(draw, role: SubjectRole | None = None, minor: bool | None = None) -> dict:
    """A subject; ``minor`` True: under 18 or of unknown age; False: a known adult."""
    if minor is True:
        age = draw(optional(st.integers(0, 17)))
        bands = [AgeBand.infant, AgeBand.child, AgeBand.adolescent, AgeBand.unknown]
    elif minor is False:
        age = draw(optional(st.integers(18, 120)))
        bands = [AgeBand.young_adult, AgeBand.adult, AgeBand.senior]
    else:
        age = draw(optional(st.integers(0, 120)))
        bands = list(AgeBand)
    subject: dict = {"role": (role or draw(st.sampled_from(list(SubjectRole)))).value}
    if age is not None:
        subject["age"] = age
        if draw(st.booleans()):  # give the band too (it must agree), or let the model derive it
            subject["age_band"] = AgeBand.for_age(age).value
    else:
        subject["age_band"] = draw(st.sampled_from(bands)).value
    for key, strategy in (
        ("name", text(100)),
        ("sex", enum_value(Sex)),
        ("nationality", st.sampled_from(COUNTRIES)),
        ("phone", phones),
        ("disability", enum_value(Disability)),
        ("description", text(200)),
    ):
        if draw(st.booleans()):
            subject[key] = draw(strategy)
    if draw(st.booleans()):
        subject["id_type"] = draw(enum_value(IdType))
        if draw(st.booleans()):
            subject["id_number"] = draw(st.from_regex(r"\A[0-9A-Z]{4,40}\Z"))
    return subject


@st.composite
def attachments(draw) -> dict:
    attachment = {
        "uri": draw(
            st.sampled_from(
                [
                    "https://records.example.invalid/",
                    "s3://evidence-bucket/",
                    "http://intranet.example.invalid/files/",
                ]
            )
        )
        + draw(st.from_regex(r"\A[a-z0-9_/-]{1,40}\Z")),
        "media_type": draw(st.sampled_from(["application/pdf", "image/jpeg", "audio/mpeg", "video/mp4"])),
        "kind": draw(enum_value(AttachmentKind)),
    }
    if draw(st.booleans()):
        attachment["uri"] = "urn:cluebus:evidence:" + draw(st.from_regex(r"\A[a-z0-9]{1,20}\Z"))
    if draw(st.booleans()):
        attachment["sha256"] = draw(st.from_regex(r"\A[0-9a-f]{64}\Z"))
    if draw(st.booleans()):
        attachment["description"] = draw(text(100))
    return attachment


def _some(draw, fields: dict) -> dict:
    """Each optional field present or absent."""
    return {k: draw(v) for k, v in fields.items() if draw(st.booleans())}


@st.composite
def hospital_details(draw, people: list[dict]) -> dict:
    details = {"encounter_type": draw(enum_value(EncounterType))}
    details |= _some(
        draw,
        {
            "ward": text(100),
            "attending_staff_role": text(100),
            "record_number": text(64),
            "suspected_surrogacy": st.booleans(),
            "sex_determination_request": st.booleans(),
            "identity_check": st.fixed_dictionaries(
                {},
                optional={
                    "document_type": text(50),
                    "document_matches_patient": optional(st.booleans()),
                    "anomaly": text(200),
                },
            ),
            "newborn": st.fixed_dictionaries(
                {},
                optional={
                    "born_at": aware_datetimes(10**6),
                    "sex": enum_value(Sex),
                    "birth_certificate_number": text(40),
                    "certificate_anomaly": st.booleans(),
                },
            ),
        },
    )
    return details


def _child_or_unknown_age(subject: dict) -> bool:
    if "age" in subject:
        return subject["age"] < 18
    band = AgeBand(subject["age_band"])
    return band.is_minor or band == AgeBand.unknown


@st.composite
def school_details(draw, people: list[dict]) -> dict:
    pupils = [i for i, p in enumerate(people) if _child_or_unknown_age(p)]
    details = {"school_name": draw(text(200)), "pupil_subject_index": draw(st.sampled_from(pupils))}
    details |= _some(
        draw,
        {
            "school_code": text(20),
            "grade": text(30),
            "days_absent": st.integers(0, 400),
            "enrolled": st.booleans(),
            "guardian_relationship": text(50),
            "pick_up_anomaly": st.booleans(),
            "pick_up_description": text(200),
            "left_behind": st.booleans(),
        },
    )
    return details


@st.composite
def labour_details(draw, people: list[dict]) -> dict:
    details = {"employer_name": draw(text(200))}
    details |= _some(
        draw,
        {
            "employer_credit_code": credit_codes,
            "workplace_address": text(200),
            "industry": text(100),
            "workers_affected": st.integers(1, 100_000),
            "youngest_worker_age": st.integers(0, 120),
            "permit_status": enum_value(PermitStatus),
            "agency_name": text(200),
            "agency_credit_code": credit_codes,
            "inspection_ref": text(64),
        },
    )
    return details


@st.composite
def marriage_details(draw, people: list[dict]) -> dict:
    details = {"registration_office": draw(text(200))}
    details |= _some(
        draw,
        {
            "application_ref": text(64),
            "party_nationalities": st.lists(st.sampled_from(COUNTRIES), max_size=2),
            "intermediary_agency": text(200),
            "document_anomalies": st.lists(enum_value(DocumentAnomaly), unique=True, max_size=len(DocumentAnomaly)),
            "interpreter_present": st.booleans(),
            "interpreter_is_intermediary": st.booleans(),
        },
    )
    return details


@st.composite
def venue_details(draw, people: list[dict]) -> dict:
    details = {"venue_name": draw(text(200)), "venue_type": draw(enum_value(VenueType))}
    details |= _some(
        draw,
        {
            "venue_licence": text(64),
            "staff_roster_anomaly": st.booleans(),
            "minor_present": st.booleans(),
            "escort_services": st.booleans(),
            "inspection_ref": text(64),
        },
    )
    return details


DETAILS = {
    Source.hospital: hospital_details,
    Source.school: school_details,
    Source.labour: labour_details,
    Source.marriage: marriage_details,
    Source.venue: venue_details,
}


@st.composite
def submissions(draw, source: Source | None = None) -> tuple[Source, dict]:
    """``(source, data)``: a valid submission of that sector (any sector when not given)."""
    source = source or draw(st.sampled_from(list(Source)))
    category = draw(st.sampled_from(list(Category)))
    consent = draw(st.sampled_from(list(Consent)))
    # The first subject is the victim where one is needed, a child where the category or the
    # school (its pupil) needs one; consent 'refused' is only for adult victims.
    needs_child = category in CHILD_CATEGORIES or source == Source.school
    if consent == Consent.refused and needs_child:
        consent = Consent.not_required
    first_minor = True if needs_child else (False if consent == Consent.refused else None)
    people = [draw(subjects(role=SubjectRole.victim, minor=first_minor))]
    for _ in range(draw(st.integers(0, 3))):
        people.append(draw(subjects(minor=False if consent == Consent.refused else None)))
    if category in NO_VICTIM_NEEDED and draw(st.booleans()):
        people[0]["role"] = draw(st.sampled_from([SubjectRole.suspect, SubjectRole.buyer, SubjectRole.other])).value
    data: dict = {
        "source_ref": draw(st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.:/-]{0,40}\Z")),
        "reported_at": draw(aware_datetimes()),
        "category": category.value,
        "reporter": draw(reporters()),
        "subjects": people,
        "narrative": draw(text(300)),
        "details": draw(DETAILS[source](people)),
    }
    data |= _some(
        draw,
        {
            "urgency": enum_value(Urgency),
            "shareable_summary": text(200),
            "location": locations(),
            "indicators": st.lists(enum_value(Indicator), unique=True, max_size=6),
            "attachments": st.lists(attachments(), max_size=3),
        },
    )
    if consent != Consent.unknown or draw(st.booleans()):
        data["consent"] = consent.value
    if "shareable_summary" in data and _names_someone(data):
        del data["shareable_summary"]  # refused by design (it must not repeat a name, id, phone or address)
    return source, data


def _names_someone(data: dict) -> bool:
    from types import SimpleNamespace as NS

    from schemas.report import repeated_identity

    people = [NS(name=s.get("name"), id_number=s.get("id_number"), phone=s.get("phone")) for s in data["subjects"]]
    reporter = NS(name=data["reporter"]["name"], phone=data["reporter"].get("phone"))
    location = NS(address=data.get("location", {}).get("address"))
    submission = NS(shareable_summary=data["shareable_summary"], reporter=reporter, location=location, subjects=people)
    return repeated_identity(submission) is not None  # type: ignore[arg-type]
