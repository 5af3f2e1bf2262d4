"""The parts every report shares: where, who reported, who is involved, what happened."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    ValidationInfo,
    field_validator,
    model_validator,
)

from schemas.base import SCHEMA_VERSION, SHAREABLE_KEY, Model, Sensitivity, personal
from schemas.countries import COUNTRY_CODES
from schemas.dna import reject_dna_keys
from schemas.enums import (
    CHILD_CATEGORIES,
    NO_VICTIM_NEEDED,
    AgeBand,
    AttachmentKind,
    Category,
    Consent,
    Disability,
    IdType,
    Indicator,
    Sex,
    Source,
    SubjectRole,
    Urgency,
)
from schemas.scalars import Count, FreeText, Line, OptionalCount, OptionalFreeText, OptionalLine, Timestamp

IDENT, PERS, SPEC = Sensitivity.identifying, Sensitivity.personal, Sensitivity.special
SOURCE_SYSTEM_PATTERN = r"^[a-z0-9][a-z0-9_.-]{1,63}$"
UUID7_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
PHONE_PATTERN = r"^\+?[0-9 ()-]{5,20}$"
URI_PATTERN = r"^[^\s\u0000-\u001f\u007f-\u009f]+$"
FUTURE_TOLERANCE = timedelta(minutes=5)  # clock skew allowed between a sender and the bus


def _known_country(code: str) -> str:
    if code not in COUNTRY_CODES:
        raise ValueError(f"'{code}' is not an ISO 3166-1 alpha-2 country code")
    return code


CountryCode = Annotated[
    str,
    Field(
        pattern=r"^[A-Z]{2}$",
        description="ISO 3166-1 alpha-2 code, upper case (CN, VN, MM, ...).",
        json_schema_extra={"enum": sorted(COUNTRY_CODES)},
    ),
    AfterValidator(_known_country),
]


class Part(Model):
    """A part of a report as sent: text is never trimmed (see ``schemas/scalars.py``)."""

    model_config = ConfigDict(str_strip_whitespace=False)


class Location(Part):
    """Administrative codes (GB/T 2260 county, statistical township/village codes) and free text."""

    district_code: str | None = Field(
        None, pattern=r"^[0-9]{6}$", description="6-digit county code, e.g. 120118 (Jinghai)."
    )
    township_code: str | None = Field(None, pattern=r"^[0-9]{9}$", description="9-digit township code.")
    village_code: str | None = Field(None, pattern=r"^[0-9]{12}$", description="12-digit village/community code.")
    address: OptionalLine = personal(IDENT, None, max_length=500, description="Exact address: identifying.")
    description: OptionalFreeText = personal(
        PERS, None, max_length=2000, description="Where, in words (e.g. 'bus station')."
    )

    @model_validator(mode="after")
    def _codes_nest(self) -> Location:
        # A township code starts with its county's code, a village code with its township's.
        for outer, inner in (("district_code", "township_code"), ("township_code", "village_code")):
            a, b = getattr(self, outer), getattr(self, inner)
            if a is not None and b is not None and not b.startswith(a):
                raise ValueError(f"location.{inner} '{b}' does not lie within location.{outer} '{a}'")
        return self


class Reporter(Part):
    """The member of staff who reports (a professional under the duty to report)."""

    name: Line = personal(IDENT, min_length=1, max_length=100)
    role: Line = Field(min_length=1, max_length=100, description="e.g. 'attending nurse', 'class teacher'.")
    organisation: Line = Field(min_length=1, max_length=200)
    phone: str | None = personal(IDENT, None, pattern=PHONE_PATTERN)


class Subject(Part):
    """A person the report is about.

    Give ``age`` when known (``age_band`` is then derived), else ``age_band``
    when it can be estimated; both may be given if they agree.
    """

    role: SubjectRole
    name: OptionalLine = personal(IDENT, None, max_length=100)
    sex: Sex = personal(PERS, Sex.unknown)
    age: OptionalCount = personal(PERS, None, ge=0, le=120, description="Age in whole years.")
    age_band: AgeBand = personal(
        PERS,
        AgeBand.unknown,
        validate_default=True,
        description="Derived from age when only age is given.",
    )
    id_type: IdType | None = personal(IDENT, None)
    id_number: OptionalLine = personal(IDENT, None, min_length=4, max_length=40, validate_default=True)
    phone: str | None = personal(IDENT, None, pattern=PHONE_PATTERN)
    nationality: CountryCode | None = personal(PERS, None)
    disability: Disability = personal(SPEC, Disability.unknown)
    description: OptionalFreeText = personal(PERS, None, max_length=2000)

    @field_validator("age_band")
    @classmethod
    def _band_of_age(cls, band: AgeBand, info: ValidationInfo) -> AgeBand:
        age = info.data.get("age")
        if age is None:  # not given, or invalid (already reported under 'age')
            return band
        derived = AgeBand.for_age(age)
        if band == AgeBand.unknown:
            return derived
        if band != derived:
            raise ValueError(
                f"age {age} does not agree with age_band '{band.value}' (age {age} is in '{derived.value}')"
            )
        return band

    @field_validator("id_number")
    @classmethod
    def _needs_type(cls, value: str | None, info: ValidationInfo) -> str | None:
        # "id_type" missing from info.data means it was given but invalid: reported there already.
        if value is not None and "id_type" in info.data and info.data["id_type"] is None:
            raise ValueError("id_type is required when id_number is given")
        return value

    @property
    def is_minor(self) -> bool:
        """Under 18 (by age, or by band when the exact age is not known)."""
        return self.age_band.is_minor

    @property
    def is_under_14(self) -> bool:
        """Under 14: PIPL treats the child's personal information as sensitive."""
        return self.age_band.is_under_14

    @property
    def age_unknown(self) -> bool:
        return self.age_band == AgeBand.unknown

    @property
    def is_foreign(self) -> bool:
        return self.nationality is not None and self.nationality != "CN"

    @property
    def has_disability(self) -> bool:
        return self.disability not in (Disability.none, Disability.unknown)


URI_SCHEMES = frozenset({"https", "http", "urn", "s3", "oss", "obs", "cos"})
INLINE_KEYS = frozenset({"content", "data", "bytes", "base64", "body", "inline", "blob", "file", "payload"})


class Attachment(Part):
    """A reference to evidence held by the sender: never the bytes themselves.

    The sender keeps the file; recipients fetch it under their own access rights.
    """

    uri: str = Field(
        min_length=3,
        pattern=URI_PATTERN,
        max_length=2000,
        description="https/http, urn, or object-store (s3, oss, obs, cos) URI.",
    )
    media_type: str = Field(pattern=r"^[a-z]+/[A-Za-z0-9.+-]+$", max_length=100)
    sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$", description="Lower-case hex digest of the file.")
    kind: AttachmentKind = AttachmentKind.document
    description: OptionalFreeText = personal(PERS, None, max_length=500)

    @model_validator(mode="before")
    @classmethod
    def _no_inline_content(cls, data: Any) -> Any:
        if isinstance(data, dict):
            inline = sorted(k for k in data if isinstance(k, str) and k.lower() in INLINE_KEYS)
            if inline:
                raise ValueError(
                    "attachments are references, not content: send a 'uri' to the file your system "
                    f"keeps, not the file itself (field '{inline[0]}')"
                )
        return data

    @field_validator("uri")
    @classmethod
    def _reference_only(cls, value: str) -> str:
        scheme, sep, rest = value.partition(":")
        scheme = scheme.lower()
        if scheme == "data":
            raise ValueError("attachments are references, not content: a data: URI is not accepted")
        if not sep or scheme not in URI_SCHEMES:
            raise ValueError(f"uri must be a reference with one of the schemes {', '.join(sorted(URI_SCHEMES))}")
        if scheme != "urn":
            authority = rest.removeprefix("//").split("/", 1)[0]
            if not rest.startswith("//") or not authority:
                raise ValueError(f"uri must name a host or bucket: {scheme}://host/path")
            if "@" in authority:
                raise ValueError("uri must not carry credentials (user:password@); recipients use their own access")
        return value


class SubmissionBase(Part):
    """What a departmental system posts; the adapter adds the envelope (see ``ReportEnvelope``)."""

    source_ref: str = Field(
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/-]*$",
        description="The sender's own id for this report; the same value again is a duplicate.",
    )
    reported_at: Timestamp = Field(description="When the reporter made the report (with a UTC offset).")
    category: Category
    urgency: Urgency = Urgency.normal
    location: Location = Field(default_factory=Location)
    reporter: Reporter
    subjects: tuple[Subject, ...] = Field(min_length=1, max_length=50)
    narrative: FreeText = personal(
        PERS, min_length=1, max_length=20_000, description="What happened, in the reporter's words."
    )
    shareable_summary: OptionalFreeText = personal(
        PERS,
        None,
        max_length=2000,
        description="What happened, written by the reporter for every department the report reaches, without "
        "names, id numbers, phone numbers or addresses: a department that may not see the narrative (it may name "
        "people that department may not identify) gets this instead. Refused if it repeats a name, id number, "
        "phone or address given elsewhere in the report.",
        json_schema_extra={SHAREABLE_KEY: True},
    )
    indicators: tuple[Indicator, ...] = Field(
        default=(), max_length=len(Indicator), description="Unique.", json_schema_extra={"uniqueItems": True}
    )
    consent: Consent = Field(
        Consent.unknown,
        validate_default=True,
        description="An adult victim's consent to share identity beyond the police.",
    )
    attachments: tuple[Attachment, ...] = Field(default=(), max_length=20)

    @model_validator(mode="wrap")
    @classmethod
    def _no_dna(cls, data: Any, validate: ModelWrapValidatorHandler[Any]) -> Any:
        return reject_dna_keys(data, validate)

    @field_validator("reported_at")
    @classmethod
    def _not_in_future(cls, value: datetime) -> datetime:
        if value > datetime.now(UTC) + FUTURE_TOLERANCE:
            raise ValueError("reported_at is in the future (more than 5 minutes ahead of the bus clock)")
        return value

    @field_validator("indicators")
    @classmethod
    def _unique(cls, value: tuple[Indicator, ...]) -> tuple[Indicator, ...]:
        repeated = sorted({i.value for i in value if value.count(i) > 1})
        if repeated:
            raise ValueError(f"indicators must not repeat: {', '.join(repeated)}")
        return value

    @field_validator("subjects")
    @classmethod
    def _subjects_fit_category(cls, subjects: tuple[Subject, ...], info: ValidationInfo) -> tuple[Subject, ...]:
        category = info.data.get("category")
        if category is None:  # invalid category: reported under 'category'
            return subjects
        if category in CHILD_CATEGORIES and not any(s.is_minor or s.age_unknown for s in subjects):
            raise ValueError(
                f"category '{category.value}' concerns a child: at least one subject must be "
                "a minor (age under 18 or a minor age_band) or of unknown age, "
                "but every subject is an adult"
            )
        if category not in NO_VICTIM_NEEDED and not any(s.role == SubjectRole.victim for s in subjects):
            raise ValueError(f"category '{category.value}' needs at least one subject with role 'victim'")
        return subjects

    @field_validator("consent")
    @classmethod
    def _minor_needs_no_consent(cls, consent: Consent, info: ValidationInfo) -> Consent:
        subjects = info.data.get("subjects") or ()
        if consent == Consent.refused:
            minors = [i for i, s in enumerate(subjects) if s.role == SubjectRole.victim and s.is_minor]
            if minors:
                raise ValueError(
                    "a minor's report is shared without consent under mandatory reporting "
                    f"(subjects.{minors[0]} is a minor victim); "
                    "'refused' applies to adult victims only"
                )
        return consent

    @model_validator(mode="after")
    def _summary_names_nobody(self) -> SubmissionBase:
        if self.shareable_summary is not None and (where := repeated_identity(self)) is not None:
            raise ValueError(
                f"shareable_summary must not identify anyone: it repeats {where}; it goes to every department "
                "the report reaches, so describe what happened without names, id numbers, phones or addresses"
            )
        return self

    @property
    def victims(self) -> tuple[Subject, ...]:
        return tuple(s for s in self.subjects if s.role == SubjectRole.victim)

    @property
    def involves_minor(self) -> bool:
        return any(s.is_minor for s in self.subjects)


_PHONE_NOISE = re.compile(r"[\s()+-]")
_MIN_NAME_CHARS = 2  # a one-character value (a surname alone) would be found in any text


def repeated_identity(submission: SubmissionBase) -> str | None:
    """The path of the first name, id number, phone or address that the shareable summary repeats, or None.

    Case-insensitive; phones are compared by their last eight digits, whatever the separators.
    """
    summary = (submission.shareable_summary or "").casefold()
    digits = _PHONE_NOISE.sub("", summary)
    values: list[tuple[str, str | None, bool]] = [
        ("reporter.name", submission.reporter.name, False),
        ("reporter.phone", submission.reporter.phone, True),
        ("location.address", submission.location.address, False),
    ]
    for i, s in enumerate(submission.subjects):
        values += [(f"subjects.{i}.name", s.name, False), (f"subjects.{i}.id_number", s.id_number, False)]
        values.append((f"subjects.{i}.phone", s.phone, True))
    for path, value, phone in values:
        if not value:
            continue
        if phone:
            tail = _PHONE_NOISE.sub("", value)[-8:]
            if tail and tail in digits:
                return path
        elif len(value.strip()) >= _MIN_NAME_CHARS and value.strip().casefold() in summary:
            return path
    return None


class ReportEnvelope(Part):
    """Fields the adapter stamps: never taken from the sender's body."""

    schema_version: Count = Field(
        SCHEMA_VERSION,
        ge=1,
        le=SCHEMA_VERSION,
        description="Version of the report schema; newer than this code is rejected.",
    )
    report_id: str = Field(pattern=UUID7_PATTERN, description="UUIDv7 assigned by the adapter (time-ordered).")
    source: Source
    source_system: str = Field(pattern=SOURCE_SYSTEM_PATTERN, description="The authenticated sender.")
    received_at: Timestamp = Field(description="When the adapter accepted the submission.")

    @model_validator(mode="wrap")
    @classmethod
    def _no_dna(cls, data: Any, validate: ModelWrapValidatorHandler[Any]) -> Any:
        return reject_dna_keys(data, validate)

    @model_validator(mode="after")
    def _reported_before_received(self) -> ReportEnvelope:
        reported_at = getattr(self, "reported_at", None)
        if reported_at is not None and reported_at > self.received_at + FUTURE_TOLERANCE:
            raise ValueError("reported_at is later than received_at: the sender's clock is ahead")
        return self
