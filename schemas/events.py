"""The bus's own events: referrals, acknowledgements, escalations, audit, access records and status.

Ids of referrals, acks and escalations are derived (uuid5) from what they are
about, never random: a report processed twice yields the same ids, so
at-least-once delivery stays idempotent, and every event is checked against
the derivation so that an ack cannot name another department's referral.

Over 400 lines on purpose: every event model of the bus in one module, since they
share the derived ids and the patterns they are checked against.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from datetime import datetime
from functools import lru_cache
from typing import Any, Literal
from uuid import UUID

from pydantic import AwareDatetime, Field, ValidationInfo, field_validator, model_validator

from schemas.base import SCHEMA_VERSION, Model, Sensitivity, personal
from schemas.disclosure import SharedGrant, Withheld
from schemas.enums import (
    AccessChannel,
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
from schemas.report import SOURCE_SYSTEM_PATTERN, UUID7_PATTERN

# Fixed namespace of every derived id. Never change it: ids already on the bus would not match.
NAMESPACE_CLUEBUS = UUID("6f1d2c1e-5b7a-4c35-9a43-6c7a3b0f2e91")
UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
_DEPARTMENT = r"[a-z][a-z0-9_]{0,39}"
# The one pattern of a department id: it becomes part of a principal (dept-<id>), a group and a topic name.
DEPARTMENT_ID = rf"^{_DEPARTMENT}$"
STAFF_ID = r"^[A-Za-z0-9_.@-]{1,64}$"
TARGET_PATTERN = rf"^{_DEPARTMENT}(\.{_DEPARTMENT})?$"  # department or department.role


def _uuid5(name: str) -> str:
    """``str(uuid.uuid5(NAMESPACE_CLUEBUS, name))`` without the intermediate objects.

    Derived ids are computed for every output and checked on every parse, so this
    is on the router's and tracker's hot paths (a test holds it equal to the stdlib).
    """
    # RFC 9562 name-based id: SHA-1 is what version 5 is defined with, not a security hash.
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name.encode()).digest()[:16])  # noqa: S324
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_NAMESPACE_BYTES = NAMESPACE_CLUEBUS.bytes


@lru_cache(maxsize=8192)
def referral_id_for(report_id: str, department: str) -> str:
    """The referral of one report to one department.

    Cached: building and then validating one report's referrals, decision and
    status asks for the same few ids about four times each.
    """
    return _uuid5(f"{report_id}/{department}")


def ack_id_for(referral_id: str, stage: AckStage | str) -> str:
    """The acknowledgement of one referral at one stage (a repeated ack has the same id)."""
    return _uuid5(f"ack/{referral_id}/{_value(stage)}")


def escalation_id_for(referral_id: str, stage: DueStage | str, level: int, repeat: int, reason: str = "overdue") -> str:
    """One escalation of one referral's overdue stage, at one level, the ``repeat``-th time.

    An escalation for another reason than ``overdue`` (a lead's decline) has an id
    of its own, so it never collides with an overdue escalation of the same stage.
    """
    tail = "" if _value(reason) == "overdue" else f"/{_value(reason)}"
    return _uuid5(f"escalation/{referral_id}/{_value(stage)}/{level}/{repeat}{tail}")


def access_id_for(referral_id: str, by: str, at: datetime, channel: AccessChannel | str) -> str:
    """One opening of one referral by one person at one instant (a resent record has the same id)."""
    return _uuid5(f"access/{referral_id}/{by}/{at.isoformat()}/{_value(channel)}")


def dead_letter_id_for(service: str, topic: str, partition: int, offset: int) -> str:
    """One unprocessable record, as seen by one service."""
    return _uuid5(f"dead/{service}/{topic}/{partition}/{offset}")


def _value(x: Any) -> str:
    return str(getattr(x, "value", x))


def _check_referral_id(referral_id: str, report_id: str, department: str, where: str = "referral_id") -> None:
    if referral_id != referral_id_for(report_id, department):
        raise ValueError(f"{where} is not the referral of report_id to department '{department}'")


class Event(Model):
    schema_version: int = Field(
        SCHEMA_VERSION,
        ge=1,
        le=SCHEMA_VERSION,
        description="Version of the event schema; newer than this code is rejected.",
    )


class DueTimes(Model):
    """When each next step of a referral is due (clocks run from the report's receipt)."""

    received: AwareDatetime
    decided: AwareDatetime
    completed: AwareDatetime

    @model_validator(mode="after")
    def _ordered(self) -> DueTimes:
        if not self.received <= self.decided <= self.completed:
            raise ValueError("due times must be in order: received <= decided <= completed")
        return self

    def of(self, stage: DueStage | str) -> datetime:
        return getattr(self, DueStage(_value(stage)).value)


class Referral(Event):
    """One report forwarded to one department, reduced to what that department may see."""

    referral_id: str = Field(pattern=UUID_PATTERN, description="referral_id_for(report_id, department).")
    report_id: str = Field(pattern=UUID7_PATTERN)
    department: str = Field(pattern=DEPARTMENT_ID)
    role: Role
    priority: Priority
    source: Source
    category: Category
    routed_at: AwareDatetime
    rule_path: tuple[str, ...] = Field(min_length=1, description="Route names from the root to the deciding route.")
    rules_version: str = Field(min_length=1, max_length=100)
    due: DueTimes
    case_owner_required: bool = Field(
        False, description="Acceptance must name a case owner; never closes without an outcome."
    )
    anonymised: bool = Field(False, description="Identity was removed (an adult victim refused consent).")
    fields: tuple[str, ...] = Field(description="Dotted paths of the report this copy may hold (names, never values).")
    grants: tuple[SharedGrant, ...] = Field(
        (), description="Each grant that shared fields into this copy, of which subjects' roles, and its reason."
    )
    withheld: Withheld = Field(
        default_factory=Withheld, description="Subjects' identity and free text the rules kept from this copy."
    )
    report: dict[str, Any] = Field(
        description="The report reduced to this department's fields (partial, so untyped). Every subject keeps its "
        "place and its role in `subjects`, with the fields granted for that role only."
    )

    @model_validator(mode="after")
    def _id_matches(self) -> Referral:
        _check_referral_id(self.referral_id, self.report_id, self.department)
        return self

    @field_validator("fields")
    @classmethod
    def _unique(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("fields must not repeat")
        return value


class Ack(Event):
    """A department's acknowledgement of one referral at one stage.

    ``reason_code`` and ``reason`` belong to (and are required by) ``declined``;
    ``outcome_code`` and ``outcome`` to ``completed``. Whether an acceptance needs
    a ``case_owner`` depends on the referral, so the tracker enforces it.
    """

    ack_id: str = Field(
        None,
        pattern=UUID_PATTERN,
        validate_default=True,  # type: ignore[assignment]
        description="ack_id_for(referral_id, stage); derived when absent.",
    )
    referral_id: str = Field(pattern=UUID_PATTERN)
    report_id: str = Field(pattern=UUID7_PATTERN)
    department: str = Field(pattern=DEPARTMENT_ID)
    stage: AckStage
    by: str = Field(pattern=STAFF_ID, description="Staff or system id (not a name).")
    at: AwareDatetime
    reason_code: DeclineReason | None = Field(None, validate_default=True)
    reason: str | None = personal(Sensitivity.personal, None, max_length=2000, validate_default=True)
    case_owner: str | None = Field(None, pattern=STAFF_ID, description="Staff id of the case owner.")
    outcome_code: OutcomeCode | None = Field(None, validate_default=True)
    outcome: str | None = personal(Sensitivity.personal, None, max_length=4000, validate_default=True)

    @model_validator(mode="before")
    @classmethod
    def _derive_id(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("ack_id") is None and data.get("referral_id") and data.get("stage"):
            data = {**data, "ack_id": ack_id_for(str(data["referral_id"]), _value(data["stage"]))}
        return data

    @field_validator("reason_code", "reason")
    @classmethod
    def _decline_only(cls, value: Any, info: ValidationInfo) -> Any:
        return _only_at(value, info, AckStage.declined, "declining")

    @field_validator("outcome_code", "outcome")
    @classmethod
    def _completion_only(cls, value: Any, info: ValidationInfo) -> Any:
        return _only_at(value, info, AckStage.completed, "completing")

    @model_validator(mode="after")
    def _ids_match(self) -> Ack:
        _check_referral_id(self.referral_id, self.report_id, self.department)
        if self.ack_id != ack_id_for(self.referral_id, self.stage):
            raise ValueError("ack_id is not ack_id_for(referral_id, stage); leave it out to have it derived")
        return self


def _only_at(value: Any, info: ValidationInfo, stage: AckStage, doing: str) -> Any:
    given = info.data.get("stage")
    if given is None:  # invalid stage: reported there
        return value
    if given == stage and (value is None or value == ""):
        raise ValueError(f"{info.field_name} is required when {doing}")
    if given != stage and value is not None:
        raise ValueError(f"{info.field_name} belongs to stage '{stage.value}' only, not '{given.value}'")
    return value


class Escalation(Event):
    """A referral overdue at a stage (or declined by its lead) raised to the next level."""

    escalation_id: str = Field(
        pattern=UUID_PATTERN,
        description="escalation_id_for(referral_id, stage_overdue, level, repeat).",
    )
    referral_id: str = Field(pattern=UUID_PATTERN)
    report_id: str = Field(pattern=UUID7_PATTERN)
    department: str = Field(pattern=DEPARTMENT_ID, description="The department whose referral is escalated.")
    stage_overdue: DueStage = Field(description="The step that was due (for a lead's decline: decided).")
    level: int = Field(ge=1, le=20)
    repeat: int = Field(0, ge=0, description="How many times this level was repeated before.")
    target: str = Field(
        pattern=TARGET_PATTERN,
        description="Who must act: department or department.role, e.g. 'police.duty_supervisor'.",
    )
    reason: EscalationReason
    priority: Priority
    due_at: AwareDatetime
    escalated_at: AwareDatetime

    @model_validator(mode="after")
    def _ids_match(self) -> Escalation:
        _check_referral_id(self.referral_id, self.report_id, self.department)
        if self.escalation_id != escalation_id_for(
            self.referral_id, self.stage_overdue, self.level, self.repeat, self.reason
        ):
            raise ValueError(
                "escalation_id is not escalation_id_for(referral_id, stage_overdue, level, repeat, reason)"
            )
        return self


def _base64(value: str | None, field: str) -> str | None:
    if value is not None:
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"{field} is not standard base64") from None
    return value


class DeadLetter(Event):
    """An event that could not be processed, kept with its original bytes.

    ``error`` says what was wrong by field and reason only: producers must pass
    the validation *messages*, never the offending input values (use
    ``services.deadletter.letters.describe_error``). The original bytes, which may
    hold personal data, stay in ``value_b64`` and are shown only by ``summary()``'s
    byte count.
    """

    dead_letter_id: str = Field(
        pattern=UUID_PATTERN, description="dead_letter_id_for(service, topic, partition, offset)."
    )
    service: str = Field(min_length=1, max_length=64)
    topic: str = Field(min_length=1, max_length=249)
    partition: int = Field(ge=0)
    offset: int = Field(ge=0)
    key_b64: str | None = Field(None, description="The original key, base64.")
    value_b64: str = Field(description="The original bytes, base64; may hold personal data.")
    error_type: str = Field(min_length=1, max_length=100)
    error: str = Field(
        max_length=2000,
        description="What was wrong, by field and reason; never echoes input values.",
    )
    cause: Literal["input", "internal"] = Field(
        "input",
        description="input: the event itself is wrong (it will never be processed as it is); internal: "
        "processing failed though the event may be right (tried again, then given up): the reconciler "
        "does not count such a dead letter as an outcome, so the report is re-driven and alerted on.",
    )
    at: AwareDatetime

    @field_validator("key_b64", "value_b64")
    @classmethod
    def _is_base64(cls, value: str | None, info: ValidationInfo) -> str | None:
        return _base64(value, str(info.field_name))

    @classmethod
    def of(
        cls,
        *,
        service: str,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        error_type: str,
        error: str,
        at: datetime,
        cause: Literal["input", "internal"] = "input",
    ) -> DeadLetter:
        """A dead letter for a consumed record; ``error`` must be a message, not input values."""
        return cls(
            dead_letter_id=dead_letter_id_for(service, topic, partition, offset),
            service=service,
            topic=topic,
            partition=partition,
            offset=offset,
            key_b64=base64.b64encode(key).decode() if key is not None else None,
            value_b64=base64.b64encode(value or b"").decode(),
            error_type=error_type[:100] or "Error",
            error=error[:2000],
            cause=cause,
            at=at,
        )

    def value(self) -> bytes:
        """The original bytes (personal data: for replay, not for display)."""
        return base64.b64decode(self.value_b64)

    def summary(self) -> dict[str, Any]:
        """Ids, sizes and the error type only: safe to print or log (no payload, key or message)."""
        return {
            "dead_letter_id": self.dead_letter_id,
            "service": self.service,
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "error_type": self.error_type,
            "key_bytes": len(base64.b64decode(self.key_b64)) if self.key_b64 is not None else None,
            "value_bytes": len(self.value()),
            "at": self.at.isoformat(),
        }


class RecipientDecision(Model):
    """One recipient of a routing decision: who, why, how fast, and which field names."""

    department: str = Field(pattern=DEPARTMENT_ID)
    role: Role
    referral_id: str = Field(pattern=UUID_PATTERN)
    priority: Priority
    rule_path: tuple[str, ...] = Field(min_length=1)
    due: DueTimes
    case_owner_required: bool = False
    anonymised: bool = False
    fields: tuple[str, ...] = Field(description="Names of the fields shared; never values.")
    grants_applied: tuple[int, ...] = Field(
        (),
        description="What was shared with this department and why: positions in the decision's `grants` "
        "(a grant that several recipients got, like the case summary, is recorded once).",
    )
    withheld: Withheld = Field(default_factory=Withheld, description="Subjects' identity and free text kept back.")


class RoutingDecision(Event):
    """Audit record of one routing: rules matched, who got which fields (no personal values)."""

    decision_id: str = Field(pattern=UUID7_PATTERN, description="Equal to report_id: one decision per report.")
    report_id: str = Field(pattern=UUID7_PATTERN)
    source: Source
    source_system: str = Field(pattern=SOURCE_SYSTEM_PATTERN)
    category: Category
    urgency: Urgency
    priority: Priority
    rules_version: str = Field(min_length=1, max_length=100)
    decided_at: AwareDatetime
    fallback: bool = Field(False, description="No route matched; the root's recipients were used.")
    matched_routes: tuple[tuple[str, ...], ...] = Field(description="Each matched route as its path of route names.")
    matched_by: tuple[tuple[str, ...], ...] = Field(
        (),
        description="For each matched route, the kinds of its match tests that held (e.g. category, subject, "
        "indicators.any, details.venue_type); never values. Empty in decisions made before it was recorded.",
    )
    priority_route: tuple[str, ...] | None = Field(
        None,
        min_length=1,
        description="The route (path of names) whose priority raised the report above the reporter's urgency; "
        "null when the priority is the reporter's urgency.",
    )
    recipients: tuple[RecipientDecision, ...] = Field(min_length=1)
    grants: tuple[SharedGrant, ...] = Field(
        (),
        description="Every grant applied to some recipient's copy (field groups, subjects' roles, reason), once each; "
        "recipients name theirs in `grants_applied`. Empty in decisions made before grants were recorded.",
    )

    def grants_of(self, recipient: RecipientDecision) -> tuple[SharedGrant, ...]:
        """The grants applied to one recipient's copy."""
        return tuple(self.grants[i] for i in recipient.grants_applied)

    @model_validator(mode="after")
    def _consistent(self) -> RoutingDecision:
        if self.decision_id != self.report_id:
            raise ValueError("decision_id must equal report_id")
        if self.priority.rank < self.urgency.rank:
            raise ValueError(f"priority '{self.priority.value}' is below the urgency '{self.urgency.value}'")
        if self.priority_route is not None and self.priority.rank == self.urgency.rank:
            raise ValueError("priority_route is given but the priority is the reporter's urgency")
        if self.matched_by and len(self.matched_by) != len(self.matched_routes):
            raise ValueError("matched_by must have one entry per matched route")
        count = len(self.grants)
        for i, r in enumerate(self.recipients):
            applied = r.grants_applied
            if applied and (min(applied) < 0 or max(applied) >= count or len(set(applied)) != len(applied)):
                raise ValueError(f"recipients.{i}.grants_applied must name distinct positions in grants")
        _check_recipients(self.report_id, self.recipients, "recipients")
        return self


def _check_recipients(report_id: str, recipients: tuple[Any, ...], where: str) -> None:
    seen: set[str] = set()
    for i, r in enumerate(recipients):
        if r.department in seen:
            raise ValueError(f"{where}.{i}: department '{r.department}' appears twice")
        seen.add(r.department)
        _check_referral_id(r.referral_id, report_id, r.department, f"{where}.{i}.referral_id")


class DepartmentStatus(Model):
    """Where one department's referral stands: codes only, never free text."""

    department: str = Field(pattern=DEPARTMENT_ID)
    role: Role
    referral_id: str = Field(pattern=UUID_PATTERN)
    stage: Stage
    stage_at: AwareDatetime
    overdue: bool = False
    escalation_level: int = Field(0, ge=0)
    decline_reason_code: DeclineReason | None = None
    outcome_code: OutcomeCode | None = None

    @field_validator("decline_reason_code")
    @classmethod
    def _declined_only(cls, value: Any, info: ValidationInfo) -> Any:
        if value is not None and info.data.get("stage") not in (None, Stage.declined):
            raise ValueError("decline_reason_code belongs to stage 'declined' only")
        return value

    @field_validator("outcome_code")
    @classmethod
    def _completed_only(cls, value: Any, info: ValidationInfo) -> Any:
        if value is not None and info.data.get("stage") not in (None, Stage.completed):
            raise ValueError("outcome_code belongs to stage 'completed' only")
        return value


class ReportStatus(Event):
    """Where a report stands, per department: codes only, for feedback to the reporter.

    Published on a compacted topic keyed by report_id; ``seq`` grows with every
    update, so a consumer keeps the status with the highest ``seq``.
    """

    report_id: str = Field(pattern=UUID7_PATTERN)
    source: Source
    source_system: str = Field(pattern=SOURCE_SYSTEM_PATTERN)
    seq: int = Field(ge=0, description="Increases with every update of a report; keep the highest.")
    updated_at: AwareDatetime
    departments: tuple[DepartmentStatus, ...]

    @model_validator(mode="after")
    def _consistent(self) -> ReportStatus:
        _check_recipients(self.report_id, self.departments, "departments")
        return self

    def newer_than(self, other: ReportStatus | None) -> bool:
        """Whether this status should replace ``other`` (same report, higher seq)."""
        return other is None or (other.report_id == self.report_id and self.seq > other.seq)


class Tick(Event):
    """Internal to the tracker: its clock asks its own agent to look at a report now.

    Keyed by report_id on ``<prefix>.tracker.ticks``, a topic only the tracker reads
    and writes; the agent acts on the key (the report), so a tick repeated or late
    is harmless: the state says what, if anything, is due.
    """

    report_id: str = Field(pattern=UUID7_PATTERN)
    at: AwareDatetime = Field(description="When the clock found the report due.")


FIELD_GROUP = r"^[a-z][a-z0-9_]{0,63}$"


def field_groups(fields: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The groups of a copy's field paths (their first segment: ``subjects``, ``narrative``...), sorted."""
    return tuple(sorted({f.split(".", 1)[0] for f in fields if f}))


class AccessEvent(Event):
    """A person opened a referral's personal data: who, where, which groups of fields, when; never values.

    Published to the audit topic keyed by ``report_id``, so that access records are
    co-partitioned with the routing decision that says which field names the
    department was sent.
    """

    access_id: str = Field(
        None,
        pattern=UUID_PATTERN,
        validate_default=True,  # type: ignore[assignment]
        description="access_id_for(referral_id, by, at, channel); derived when absent.",
    )
    referral_id: str = Field(pattern=UUID_PATTERN)
    report_id: str = Field(pattern=UUID7_PATTERN)
    department: str = Field(pattern=DEPARTMENT_ID, description="The department whose copy was opened.")
    by: str = Field(pattern=STAFF_ID, description="Staff id of the person (not a name).")
    channel: AccessChannel
    field_groups: tuple[str, ...] = Field(
        description="Groups of fields shown (first segment of each field path), never their values."
    )
    at: AwareDatetime

    @model_validator(mode="before")
    @classmethod
    def _derive_id(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("access_id") is None:
            try:
                at = data["at"] if isinstance(data["at"], datetime) else datetime.fromisoformat(str(data["at"]))
                data = {
                    **data,
                    "access_id": access_id_for(str(data["referral_id"]), str(data["by"]), at, data["channel"]),
                }
            except (KeyError, ValueError, TypeError):
                pass  # the missing or invalid field is reported where it is
        return data

    @field_validator("field_groups")
    @classmethod
    def _groups(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [g for g in value if not re.fullmatch(FIELD_GROUP, g)]
        if bad:
            raise ValueError(f"field groups are lower_snake_case names: {bad}")
        if len(set(value)) != len(value):
            raise ValueError("field groups must not repeat")
        return value

    @model_validator(mode="after")
    def _ids_match(self) -> AccessEvent:
        _check_referral_id(self.referral_id, self.report_id, self.department)
        if self.access_id != access_id_for(self.referral_id, self.by, self.at, self.channel):
            raise ValueError("access_id is not access_id_for(referral_id, by, at, channel); leave it out")
        return self


EVENT_MODELS: dict[str, type[Model]] = {
    "Referral": Referral,
    "Ack": Ack,
    "Escalation": Escalation,
    "DeadLetter": DeadLetter,
    "RoutingDecision": RoutingDecision,
    "ReportStatus": ReportStatus,
    "AccessEvent": AccessEvent,
    "Tick": Tick,
}
