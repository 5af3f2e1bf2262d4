"""The bus's own events: referrals, acknowledgements, escalations, audit and status."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any
from uuid import UUID, uuid5

from pydantic import AwareDatetime, Field, model_validator

from schemas.base import SCHEMA_VERSION, Model, Sensitivity, personal
from schemas.enums import (
    AckStage,
    Category,
    DeclineReason,
    DueStage,
    EscalationReason,
    OutcomeCode,
    Priority,
    Role,
    Source,
    Stage,
    Urgency,
)
from schemas.report import SOURCE_SYSTEM_PATTERN

# Fixed namespace: referral, ack and escalation ids are derived, never random, so that
# a report processed twice yields the same ids (idempotent, at-least-once).
NAMESPACE_CLUEBUS = UUID("6f1d2c1e-5b7a-4c35-9a43-6c7a3b0f2e91")
DEPARTMENT_ID = r"^[a-z][a-z0-9_]{0,39}$"
STAFF_ID = r"^[A-Za-z0-9_.@-]{1,64}$"


def referral_id_for(report_id: str, department: str) -> str:
    return str(uuid5(NAMESPACE_CLUEBUS, f"referral/{report_id}/{department}"))


def ack_id_for(referral_id: str, stage: str) -> str:
    return str(uuid5(NAMESPACE_CLUEBUS, f"ack/{referral_id}/{stage}"))


def escalation_id_for(referral_id: str, stage: str, level: int, repeat: int) -> str:
    return str(uuid5(NAMESPACE_CLUEBUS, f"escalation/{referral_id}/{stage}/{level}/{repeat}"))


class Event(Model):
    schema_version: int = SCHEMA_VERSION


class DueTimes(Model):
    """When each next step of a referral is due (clocks run from routing)."""

    received: AwareDatetime
    decided: AwareDatetime
    completed: AwareDatetime

    def of(self, stage: DueStage | str) -> datetime:
        return getattr(self, str(getattr(stage, "value", stage)))


class Referral(Event):
    """One report forwarded to one department, reduced to what it may see."""

    referral_id: str
    report_id: str
    department: str = Field(pattern=DEPARTMENT_ID)
    role: Role
    priority: Priority
    source: Source
    category: Category
    routed_at: AwareDatetime
    rule_path: tuple[str, ...] = Field(min_length=1)
    rules_version: str
    due: DueTimes
    case_owner_required: bool = False
    anonymised: bool = False
    fields: tuple[str, ...] = Field(description="Dotted paths of the report this copy may hold.")
    report: dict[str, Any] = Field(description="The report reduced to this department's fields.")

    @model_validator(mode="after")
    def _id_matches(self) -> Referral:
        if self.referral_id != referral_id_for(self.report_id, self.department):
            raise ValueError("referral_id is not the one derived from report_id and department")
        return self


class Ack(Event):
    """A department's acknowledgement of one referral at one stage."""

    ack_id: str | None = Field(None, description="Derived from referral_id and stage when absent.")
    referral_id: str
    report_id: str
    department: str = Field(pattern=DEPARTMENT_ID)
    stage: AckStage
    by: str = Field(pattern=STAFF_ID, description="Staff or system id (not a name).")
    at: AwareDatetime
    reason_code: DeclineReason | None = None
    reason: str | None = personal(Sensitivity.personal, None, max_length=2000)
    case_owner: str | None = Field(None, pattern=STAFF_ID, description="Staff id of the case owner.")
    outcome_code: OutcomeCode | None = None
    outcome: str | None = personal(Sensitivity.personal, None, max_length=4000)

    @model_validator(mode="after")
    def _stage_fields(self) -> Ack:
        declined = self.stage == AckStage.declined
        if declined and (self.reason_code is None or not self.reason):
            raise ValueError("reason_code and reason are required when declining")
        if not declined and (self.reason_code is not None or self.reason):
            raise ValueError("reason_code and reason belong to a decline only")
        completed = self.stage == AckStage.completed
        if completed and (self.outcome_code is None or not self.outcome):
            raise ValueError("outcome_code and outcome are required when completing")
        if not completed and (self.outcome_code is not None or self.outcome):
            raise ValueError("outcome_code and outcome belong to completion only")
        return self

    @model_validator(mode="before")
    @classmethod
    def _derive_id(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("ack_id") and data.get("referral_id") and data.get("stage"):
            stage = str(getattr(data["stage"], "value", data["stage"]))
            data = {**data, "ack_id": ack_id_for(str(data["referral_id"]), stage)}
        return data


class Escalation(Event):
    """A referral overdue at a stage (or declined by a lead) raised to the next level."""

    escalation_id: str
    referral_id: str
    report_id: str
    department: str = Field(pattern=DEPARTMENT_ID)
    stage_overdue: DueStage
    level: int = Field(ge=1)
    repeat: int = Field(0, ge=0)
    target: str = Field(description="Department id or department.role that must act.")
    reason: EscalationReason
    priority: Priority
    due_at: AwareDatetime
    escalated_at: AwareDatetime


class DeadLetter(Event):
    """An event that could not be processed, kept with its original bytes."""

    dead_letter_id: str
    service: str
    topic: str
    partition: int
    offset: int
    key_b64: str | None = None
    value_b64: str = Field(description="The original bytes, base64; may hold personal data.")
    error_type: str
    error: str = Field(max_length=2000, description="What was wrong; never echoes input values.")
    at: AwareDatetime

    @classmethod
    def of(cls, *, service: str, topic: str, partition: int, offset: int, key: bytes | None,
           value: bytes | None, error_type: str, error: str, at: datetime) -> DeadLetter:
        return cls(
            dead_letter_id=str(uuid5(NAMESPACE_CLUEBUS, f"dead/{service}/{topic}/{partition}/{offset}")),
            service=service, topic=topic, partition=partition, offset=offset,
            key_b64=base64.b64encode(key).decode() if key is not None else None,
            value_b64=base64.b64encode(value or b"").decode(),
            error_type=error_type, error=error[:2000], at=at,
        )

    def summary(self) -> dict[str, Any]:
        """Ids and sizes only, safe to print or log (no payload)."""
        return {
            "dead_letter_id": self.dead_letter_id,
            "service": self.service,
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "error_type": self.error_type,
            "value_bytes": len(base64.b64decode(self.value_b64)),
            "at": self.at.isoformat(),
        }


class RecipientDecision(Model):
    department: str = Field(pattern=DEPARTMENT_ID)
    role: Role
    referral_id: str
    priority: Priority
    rule_path: tuple[str, ...]
    due: DueTimes
    case_owner_required: bool = False
    anonymised: bool = False
    fields: tuple[str, ...] = Field(description="Names of the fields shared; never values.")


class RoutingDecision(Event):
    """Audit record of one routing: which rules matched and who got which fields."""

    decision_id: str
    report_id: str
    source: Source
    source_system: str = Field(pattern=SOURCE_SYSTEM_PATTERN)
    category: Category
    urgency: Urgency
    priority: Priority
    rules_version: str
    decided_at: AwareDatetime
    fallback: bool = Field(False, description="No route matched; the root's recipients were used.")
    matched_routes: tuple[tuple[str, ...], ...]
    recipients: tuple[RecipientDecision, ...] = Field(min_length=1)


class DepartmentStatus(Model):
    department: str = Field(pattern=DEPARTMENT_ID)
    role: Role
    referral_id: str
    stage: Stage
    stage_at: AwareDatetime
    overdue: bool = False
    escalation_level: int = Field(0, ge=0)
    decline_reason_code: DeclineReason | None = None
    outcome_code: OutcomeCode | None = None


class ReportStatus(Event):
    """Where a report stands, per department: codes only, for feedback to the reporter."""

    report_id: str
    source: Source
    source_system: str = Field(pattern=SOURCE_SYSTEM_PATTERN)
    seq: int = Field(ge=0, description="Increases with every update of a report; keep the highest.")
    updated_at: AwareDatetime
    departments: tuple[DepartmentStatus, ...]


EVENT_MODELS: dict[str, type[Model]] = {
    "Referral": Referral,
    "Ack": Ack,
    "Escalation": Escalation,
    "DeadLetter": DeadLetter,
    "RoutingDecision": RoutingDecision,
    "ReportStatus": ReportStatus,
}
