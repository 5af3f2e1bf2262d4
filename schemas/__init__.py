"""Typed events of the cluebus bus (pydantic v2), published as JSON Schema and AsyncAPI."""

from schemas.base import (
    SCHEMA_VERSION,
    SENSITIVITY_KEY,
    Model,
    Sensitivity,
    field_paths,
    find_dna_keys,
    sensitive_fields,
)
from schemas.enums import (
    AckStage,
    AgeBand,
    Category,
    Consent,
    DeclineReason,
    DueStage,
    EscalationReason,
    Indicator,
    OutcomeCode,
    Priority,
    Role,
    Source,
    Stage,
    SubjectRole,
    Urgency,
)
from schemas.events import (
    EVENT_MODELS,
    Ack,
    DeadLetter,
    DepartmentStatus,
    DueTimes,
    Escalation,
    RecipientDecision,
    Referral,
    ReportStatus,
    RoutingDecision,
    ack_id_for,
    escalation_id_for,
    referral_id_for,
)
from schemas.report import Attachment, Location, Reporter, ReportEnvelope, Subject, SubmissionBase
from schemas.sources import (
    REPORT_MODELS,
    SUBMISSION_MODELS,
    HospitalReport,
    HospitalSubmission,
    LabourReport,
    LabourSubmission,
    MarriageReport,
    MarriageSubmission,
    Report,
    ReportAdapter,
    SchoolReport,
    SchoolSubmission,
    Submission,
    VenueReport,
    VenueSubmission,
    dump_event,
    make_report,
    parse_report,
)

__all__ = [name for name in dir() if not name.startswith("_")]
