"""The parts every report shares: where, who reported, who is involved, what happened."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import AwareDatetime, Field, field_validator, model_validator

from schemas.base import SCHEMA_VERSION, Model, Sensitivity, find_dna_keys, personal
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

I, P, S = Sensitivity.identifying, Sensitivity.personal, Sensitivity.special
SOURCE_SYSTEM_PATTERN = r"^[a-z0-9][a-z0-9_.-]{1,63}$"


class Location(Model):
    """Administrative codes (GB/T 2260 and the statistical division codes) and free text."""

    district_code: str | None = Field(None, pattern=r"^\d{6}$", description="6-digit county code, e.g. 120118.")
    township_code: str | None = Field(None, pattern=r"^\d{9}$", description="9-digit township code.")
    village_code: str | None = Field(None, pattern=r"^\d{12}$", description="12-digit village code.")
    address: str | None = personal(I, None, max_length=500)
    description: str | None = personal(P, None, max_length=2000)


class Reporter(Model):
    """The member of staff who reports (a professional under the duty to report)."""

    name: str = personal(I, min_length=1, max_length=100)
    role: str = Field(min_length=1, max_length=100, description="e.g. 'attending nurse', 'class teacher'.")
    organisation: str = Field(min_length=1, max_length=200)
    phone: str | None = personal(I, None, pattern=r"^\+?[0-9 ()-]{5,20}$")


class Subject(Model):
    """A person the report is about."""

    role: SubjectRole
    name: str | None = personal(I, None, max_length=100)
    sex: Sex = personal(P, Sex.unknown)
    age: int | None = personal(P, None, ge=0, le=120)
    age_band: AgeBand = personal(P, AgeBand.unknown)
    id_type: IdType | None = personal(I, None)
    id_number: str | None = personal(I, None, min_length=4, max_length=40)
    phone: str | None = personal(I, None, pattern=r"^\+?[0-9 ()-]{5,20}$")
    nationality: str | None = personal(P, None, pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2.")
    disability: Disability = personal(S, Disability.unknown)
    description: str | None = personal(P, None, max_length=2000)

    @model_validator(mode="before")
    @classmethod
    def _derive_band(cls, data: Any) -> Any:
        # Only the age given: fill in its band, so that routing can rely on age_band.
        if isinstance(data, dict) and isinstance(data.get("age"), int) and not isinstance(data.get("age"), bool):
            if data.get("age_band") in (None, AgeBand.unknown, "unknown") and 0 <= data["age"] <= 120:
                data = {**data, "age_band": AgeBand.for_age(data["age"]).value}
        return data

    @model_validator(mode="after")
    def _age_agrees_with_band(self) -> Subject:
        if self.age is not None and self.age_band != AgeBand.for_age(self.age):
            raise ValueError(
                f"age {self.age} does not agree with age_band '{self.age_band.value}' "
                f"(it belongs to '{AgeBand.for_age(self.age).value}')"
            )
        if self.id_number is not None and self.id_type is None:
            raise ValueError("id_type is required when id_number is given")
        return self

    @property
    def is_minor(self) -> bool:
        return self.age_band.is_minor

    @property
    def age_unknown(self) -> bool:
        return self.age_band == AgeBand.unknown

    @property
    def is_foreign(self) -> bool:
        return self.nationality is not None and self.nationality != "CN"

    @property
    def has_disability(self) -> bool:
        return self.disability not in (Disability.none, Disability.unknown)


class Attachment(Model):
    """A reference to evidence held by the sender: never the bytes themselves."""

    uri: str = Field(min_length=3, max_length=2000)
    media_type: str = Field(pattern=r"^[a-z]+/[A-Za-z0-9.+-]+$", max_length=100)
    sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    kind: AttachmentKind = AttachmentKind.document
    description: str | None = personal(P, None, max_length=500)

    @field_validator("uri")
    @classmethod
    def _reference_only(cls, value: str) -> str:
        if value.lower().startswith("data:"):
            raise ValueError("attachments are references, not content: a data: URI is not accepted")
        scheme = value.split(":", 1)[0].lower() if ":" in value else ""
        if scheme not in {"https", "http", "urn", "s3", "file", "smb"}:
            raise ValueError("uri must be a reference (https, urn, s3, file or smb)")
        return value


class SubmissionBase(Model):
    """What a departmental system posts; the adapter adds the envelope."""

    source_ref: str = Field(
        min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/-]*$",
        description="The sender's own id for this report; the same value again is a duplicate.",
    )
    reported_at: AwareDatetime
    category: Category
    urgency: Urgency = Urgency.normal
    location: Location = Field(default_factory=Location)
    reporter: Reporter
    subjects: tuple[Subject, ...] = Field(min_length=1, max_length=50)
    narrative: str = personal(P, min_length=1, max_length=20_000)
    indicators: tuple[Indicator, ...] = Field(default=(), max_length=30)
    consent: Consent = Consent.unknown
    attachments: tuple[Attachment, ...] = Field(default=(), max_length=20)

    @model_validator(mode="before")
    @classmethod
    def _no_dna(cls, data: Any) -> Any:
        keys = find_dna_keys(data)
        if keys:
            raise ValueError(
                f"DNA and biometric data may only be collected by the police (field '{keys[0]}'); "
                "do not send it"
            )
        return data

    @field_validator("reported_at")
    @classmethod
    def _not_in_future(cls, value: datetime) -> datetime:
        if value > datetime.now(UTC) + timedelta(minutes=5):
            raise ValueError("reported_at is in the future")
        return value

    @field_validator("indicators")
    @classmethod
    def _unique(cls, value: tuple[Indicator, ...]) -> tuple[Indicator, ...]:
        if len(set(value)) != len(value):
            raise ValueError("indicators must not repeat")
        return value

    @model_validator(mode="after")
    def _cross_field(self) -> SubmissionBase:
        victims = [s for s in self.subjects if s.role == SubjectRole.victim]
        if self.consent == Consent.refused and any(v.is_minor for v in victims):
            raise ValueError(
                "consent: a minor's report is shared without consent under mandatory reporting; "
                "'refused' applies to adult victims only"
            )
        if self.category in CHILD_CATEGORIES and not any(s.is_minor or s.age_unknown for s in self.subjects):
            raise ValueError(
                f"subjects: category '{self.category.value}' concerns a child, but every subject is an adult"
            )
        if self.category not in NO_VICTIM_NEEDED and not victims:
            raise ValueError(f"subjects: category '{self.category.value}' needs at least one subject with role 'victim'")
        return self


class ReportEnvelope(Model):
    """Fields the adapter stamps: never taken from the sender's body."""

    schema_version: int = SCHEMA_VERSION
    report_id: str = Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$",
                           description="UUIDv7 assigned by the adapter (time-ordered).")
    source: Source
    source_system: str = Field(pattern=SOURCE_SYSTEM_PATTERN, description="The authenticated sender.")
    received_at: AwareDatetime
