"""One typed report per reporting sector, joined in a union discriminated by ``source``.

For each sector there is a ``...Details`` block (the sector's own facts), a
``...Submission`` (what that sector's systems post) and a ``...Report`` (the
event on Kafka: the submission plus the adapter's envelope). No model has a
DNA or biometric field: the plan reserves DNA to the police.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import Field, TypeAdapter, ValidationInfo, field_validator

from schemas.base import Model, Sensitivity, personal
from schemas.enums import Sex, Source
from schemas.report import CountryCode, Part, ReportEnvelope, Subject, SubmissionBase
from schemas.scalars import Count, Flag, Line, OptionalCount, OptionalFreeText, OptionalLine, Timestamp

IDENT, PERS = Sensitivity.identifying, Sensitivity.personal
# Unified social credit code (统一社会信用代码, GB 32100-2015): 18 characters, no I, O, S, V, Z.
CREDIT_CODE = r"^[0-9A-HJ-NPQRTUWXY]{2}[0-9]{6}[0-9A-HJ-NPQRTUWXY]{10}$"


# --- hospital -----------------------------------------------------------------------------
class EncounterType(StrEnum):
    """How the patient came to the hospital."""

    admission = "admission"
    delivery = "delivery"
    outpatient = "outpatient"
    emergency = "emergency"
    other = "other"


class IdentityCheck(Part):
    """The identity check at admission or birth (the plan requires one)."""

    document_type: OptionalLine = Field(None, max_length=50)
    document_matches_patient: Flag | None = None
    anomaly: OptionalFreeText = personal(PERS, None, max_length=1000)


class Newborn(Part):
    """A baby born in the hospital, when the report concerns a birth."""

    born_at: Timestamp | None = None
    sex: Sex = Sex.unknown
    birth_certificate_number: OptionalLine = personal(IDENT, None, max_length=40)
    certificate_anomaly: Flag = False


class HospitalDetails(Part):
    """Hospital facts: the encounter, the identity check and any newborn."""

    encounter_type: EncounterType
    ward: OptionalLine = Field(None, max_length=100)
    attending_staff_role: OptionalLine = Field(None, max_length=100)
    record_number: OptionalLine = personal(IDENT, None, max_length=64)
    identity_check: IdentityCheck | None = None
    newborn: Newborn | None = None
    suspected_surrogacy: Flag = False
    sex_determination_request: Flag = False


# --- school -------------------------------------------------------------------------------
class SchoolDetails(Part):
    """School facts: which pupil, attendance and pick-up."""

    school_name: Line = Field(min_length=1, max_length=200)
    school_code: OptionalLine = Field(None, max_length=20)
    grade: OptionalLine = Field(None, max_length=30)
    pupil_subject_index: Count = Field(0, ge=0, description="Which entry of `subjects` is the pupil.")
    days_absent: Count = Field(0, ge=0, le=400)
    enrolled: Flag = True
    guardian_relationship: OptionalLine = Field(None, max_length=50)
    pick_up_anomaly: Flag = False
    pick_up_description: OptionalFreeText = personal(PERS, None, max_length=1000)
    left_behind: Flag = False


# --- labour -------------------------------------------------------------------------------
class PermitStatus(StrEnum):
    """A foreign worker's work permit, as the inspector found it."""

    not_applicable = "not_applicable"
    valid = "valid"
    missing = "missing"
    expired = "expired"
    unknown = "unknown"


class LabourDetails(Part):
    """Labour inspection facts: employer, workplace, workers and agency."""

    employer_name: Line = Field(min_length=1, max_length=200)
    employer_credit_code: str | None = Field(None, pattern=CREDIT_CODE)
    workplace_address: OptionalLine = personal(IDENT, None, max_length=500)
    industry: OptionalLine = Field(None, max_length=100)
    workers_affected: Count = Field(1, ge=1, le=100_000)
    youngest_worker_age: OptionalCount = Field(None, ge=0, le=120)
    permit_status: PermitStatus = PermitStatus.unknown
    agency_name: OptionalLine = Field(None, max_length=200)
    agency_credit_code: str | None = Field(None, pattern=CREDIT_CODE)
    inspection_ref: OptionalLine = Field(None, max_length=64)


# --- marriage -----------------------------------------------------------------------------
class DocumentAnomaly(StrEnum):
    """What the registrar found wrong with the papers."""

    forged_document = "forged_document"
    age_mismatch = "age_mismatch"
    identity_mismatch = "identity_mismatch"
    entry_exit_anomaly = "entry_exit_anomaly"
    visa_anomaly = "visa_anomaly"
    other = "other"


class MarriageDetails(Part):
    """Marriage registration facts: the parties' nationalities, papers and intermediaries."""

    registration_office: Line = Field(min_length=1, max_length=200)
    application_ref: OptionalLine = personal(IDENT, None, max_length=64)
    party_nationalities: tuple[CountryCode, ...] = Field(
        default=(), max_length=2, description="Nationality of each party, ISO alpha-2."
    )
    intermediary_agency: OptionalLine = Field(None, max_length=200)
    document_anomalies: tuple[DocumentAnomaly, ...] = Field(
        default=(), max_length=len(DocumentAnomaly), json_schema_extra={"uniqueItems": True}
    )
    interpreter_present: Flag = False
    interpreter_is_intermediary: Flag = False

    @field_validator("document_anomalies")
    @classmethod
    def _unique(cls, value: tuple[DocumentAnomaly, ...]) -> tuple[DocumentAnomaly, ...]:
        if len(set(value)) != len(value):
            raise ValueError("document_anomalies must not repeat")
        return value

    @property
    def cross_border(self) -> bool:
        """A party is not Chinese (the plan's cross-border marriage checks apply)."""
        return any(n != "CN" for n in self.party_nationalities)


# --- venue --------------------------------------------------------------------------------
class VenueType(StrEnum):
    """Kind of entertainment venue or hotel."""

    ktv = "ktv"
    bar = "bar"
    nightclub = "nightclub"
    hotel = "hotel"
    internet_cafe = "internet_cafe"
    massage = "massage"
    bathhouse = "bathhouse"
    other = "other"


class VenueDetails(Part):
    """Venue inspection facts: the venue, its staff roster, minors and escort services."""

    venue_name: Line = Field(min_length=1, max_length=200)
    venue_licence: OptionalLine = Field(None, max_length=64)
    venue_type: VenueType
    staff_roster_anomaly: Flag = False
    minor_present: Flag = False
    escort_services: Flag = False
    inspection_ref: OptionalLine = Field(None, max_length=64)


# --- submissions (posted by departmental systems) -------------------------------------------
class HospitalSubmission(SubmissionBase):
    details: HospitalDetails


class SchoolSubmission(SubmissionBase):
    details: SchoolDetails

    @field_validator("details")
    @classmethod
    def _pupil(cls, details: SchoolDetails, info: ValidationInfo) -> SchoolDetails:
        subjects = info.data.get("subjects")
        if subjects is None:  # invalid subjects: reported there
            return details
        index = details.pupil_subject_index
        if index >= len(subjects):
            raise ValueError(
                f"details.pupil_subject_index {index} is not an entry of subjects (0..{len(subjects) - 1})"
            )
        pupil = subjects[index]
        if not (pupil.is_minor or pupil.age_unknown):
            raise ValueError(f"details.pupil_subject_index {index} must point at a minor or a subject of unknown age")
        return details

    @property
    def pupil(self) -> Subject:
        return self.subjects[self.details.pupil_subject_index]


class LabourSubmission(SubmissionBase):
    details: LabourDetails


class MarriageSubmission(SubmissionBase):
    details: MarriageDetails


class VenueSubmission(SubmissionBase):
    details: VenueDetails


# --- reports (events on Kafka) ----------------------------------------------------------------
class HospitalReport(ReportEnvelope, HospitalSubmission):
    source: Literal[Source.hospital] = Source.hospital


class SchoolReport(ReportEnvelope, SchoolSubmission):
    source: Literal[Source.school] = Source.school


class LabourReport(ReportEnvelope, LabourSubmission):
    source: Literal[Source.labour] = Source.labour


class MarriageReport(ReportEnvelope, MarriageSubmission):
    source: Literal[Source.marriage] = Source.marriage


class VenueReport(ReportEnvelope, VenueSubmission):
    source: Literal[Source.venue] = Source.venue


Submission: TypeAlias = HospitalSubmission | SchoolSubmission | LabourSubmission | MarriageSubmission | VenueSubmission
AnyReport: TypeAlias = HospitalReport | SchoolReport | LabourReport | MarriageReport | VenueReport
Report = Annotated[AnyReport, Field(discriminator="source")]
ReportAdapter: TypeAdapter[AnyReport] = TypeAdapter(Report)

SUBMISSION_MODELS: dict[Source, type[SubmissionBase]] = {
    Source.hospital: HospitalSubmission,
    Source.school: SchoolSubmission,
    Source.labour: LabourSubmission,
    Source.marriage: MarriageSubmission,
    Source.venue: VenueSubmission,
}
REPORT_MODELS: dict[Source, type[ReportEnvelope]] = {
    Source.hospital: HospitalReport,
    Source.school: SchoolReport,
    Source.labour: LabourReport,
    Source.marriage: MarriageReport,
    Source.venue: VenueReport,
}
ENVELOPE_FIELDS: tuple[str, ...] = tuple(ReportEnvelope.model_fields)


def parse_submission(source: Source | str, data: bytes | str | dict[str, Any]) -> Submission:
    """A sector's submission from JSON (bytes/str) or a decoded object.

    Raises ``pydantic.ValidationError``.

    The adapter chooses the model by the sector it serves, never from the body.
    """
    model = SUBMISSION_MODELS[Source(source)]
    if isinstance(data, bytes | str):
        return model.model_validate_json(data)  # type: ignore[return-value]
    return model.model_validate(data)  # type: ignore[return-value]


def make_report(
    submission: SubmissionBase,
    *,
    source: Source | str,
    report_id: str,
    source_system: str,
    received_at: datetime,
) -> AnyReport:
    """The event for Kafka: the submission plus the envelope the adapter stamps."""
    source = Source(source)
    expected = SUBMISSION_MODELS[source]
    if type(submission) is not expected:
        raise TypeError(f"a {source.value} report needs a {expected.__name__}, not {type(submission).__name__}")
    return REPORT_MODELS[source].model_validate(  # type: ignore[return-value]
        {
            **submission.model_dump(mode="python"),
            "source": source,
            "report_id": report_id,
            "source_system": source_system,
            "received_at": received_at,
        }
    )


def parse_report(data: bytes | str) -> AnyReport:
    """A report event from its JSON bytes (raises ``pydantic.ValidationError``)."""
    return ReportAdapter.validate_json(data)


def dump_event(model: Model) -> bytes:
    """Compact JSON bytes of any cluebus event (``mode="json"``: enum values, ISO 8601 times)."""
    return model.model_dump_json().encode("utf-8")
