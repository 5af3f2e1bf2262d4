"""What the tracker holds per report: named, typed records (their bytes: ``services/tracker/codec.py``).

One :class:`ReportTrack` per report holds one :class:`RefTrack` per department it
was referred to, and the acknowledgements that arrived before the routing
decision (:class:`PendingAck`). Stages, roles, priorities and codes are the
schemas' enums, so the lifecycle's rules (``schemas.enums.Stage``) apply to
them directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from schemas.enums import Category, DeclineReason, DueStage, OutcomeCode, Priority, Role, Source, Stage


class Due(NamedTuple):
    """When each clock of a referral runs out (epoch seconds)."""

    received: float
    decided: float
    completed: float

    def of(self, clock: DueStage) -> float:
        return self[_CLOCK_INDEX[clock]]


_CLOCK_INDEX = {DueStage.received: 0, DueStage.decided: 1, DueStage.completed: 2}


class Fired(NamedTuple):
    """The escalations of one overdue clock so far: the last level and the last repeat of it."""

    level: int  # 1-based; 0: none yet
    repeat: int  # repeats of the last level after the chain ran out


NOT_FIRED = Fired(0, 0)


class PendingAck(NamedTuple):
    """An acknowledgement that came before its routing decision, and where it was read."""

    ack_json: str
    topic: str
    partition: int
    offset: int
    arrived_at: float  # epoch seconds; the grace for the decision runs from here


@dataclass(slots=True)
class RefTrack:
    """One department's referral of a report."""

    referral_id: str
    role: Role
    priority: Priority
    due: Due
    case_owner_required: bool
    stage: Stage = Stage.routed
    stage_at: float = 0.0
    escalated: dict[DueStage, Fired] = field(default_factory=dict)
    decline_reason: DeclineReason | None = None
    outcome: OutcomeCode | None = None

    @property
    def open(self) -> bool:
        return self.stage.open

    def waiting_on(self) -> DueStage | None:
        return self.stage.waiting_on

    def due_at(self) -> float | None:
        clock = self.stage.waiting_on
        return self.due.of(clock) if clock else None

    def fired(self, clock: DueStage) -> Fired:
        return self.escalated.get(clock, NOT_FIRED)

    def escalation_level(self) -> int:
        clock = self.stage.waiting_on
        return self.fired(clock).level if clock else 0


@dataclass(slots=True)
class ReportTrack:
    """Everything the tracker knows about one report."""

    report_id: str
    source: Source | None = None  # None until the routing decision comes
    source_system: str = ""
    category: Category | None = None
    routed_at: float = 0.0
    partition: int = -1
    seq: int = 0  # last status sequence number emitted (the first, at the decision, is 0)
    refs: dict[str, RefTrack] = field(default_factory=dict)
    pending: list[PendingAck] = field(default_factory=list)  # acknowledgements before the decision
    closed_at: float | None = None

    @property
    def routed(self) -> bool:
        return bool(self.refs)

    def first_pending_at(self) -> float | None:
        return min(p.arrived_at for p in self.pending) if self.pending else None
