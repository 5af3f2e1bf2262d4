"""The acknowledgement tracker's state machine (pure: no Kafka, no clock of its own).

One :class:`ReportTrack` per report holds every referral of that report: its
stage, its due times, and which escalation levels have fired. The tracker's
faust agent feeds it routing decisions, acknowledgements and clock ticks; each
call returns an :class:`Outcome` saying what to emit and what to store.

Rules of the lifecycle (FHIR Task / IHE 360X style):

* ``routed -> received -> accepted | declined -> completed``; ``received`` may
  be skipped; ``declined`` and ``completed`` are final; ``completed`` needs an
  acceptance first; an acceptance of a referral that requires it must name a
  case owner (the plan's 一长三包 for child-trafficking cases).
* A repeated acknowledgement is a no-op; going backwards, or acting on a
  closed referral, is rejected to the dead-letter topic with the reason.
* A stage overdue escalates to level 1, 2, ... of the department's chain at
  ``due + after`` of each level, then repeats the last level every
  ``repeat`` until the stage is reached. Each level fires once (recorded in
  the state), so a restart never escalates the same level twice.
* A decline by a lead department escalates at once to the chain's
  ``on_lead_decline`` target: a report must never end with no lead acting.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from schemas import (
    Ack,
    DepartmentStatus,
    DueStage,
    Escalation,
    EscalationReason,
    ReportStatus,
    RoutingDecision,
    Stage,
    escalation_id_for,
)
from schemas.lifecycle import ack_refusal
from services.rules import CompiledRules

STATE_VERSION = 1
# The clock a referral waits on, by its current stage (None: final).
WAITING_ON: dict[str, str | None] = {
    "routed": DueStage.received.value,
    "received": DueStage.decided.value,
    "accepted": DueStage.completed.value,
    "declined": None,
    "completed": None,
}
DUE_INDEX = {"received": 0, "decided": 1, "completed": 2}
OPEN_STAGES = ("routed", "received", "accepted")
_intern = sys.intern


def ts(moment: datetime) -> float:
    return moment.timestamp()


def dt(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


@dataclass(slots=True)
class RefTrack:
    """One department's referral of a report."""

    referral_id: str
    role: str
    priority: str
    due: list[float]  # received, decided, completed (epoch seconds)
    case_owner_required: bool
    stage: str = "routed"
    stage_at: float = 0.0
    # due stage -> [last level fired, last repeat fired]
    escalated: dict[str, list[int]] = field(default_factory=dict)
    decline_reason: str | None = None
    outcome: str | None = None

    @property
    def open(self) -> bool:
        return self.stage in OPEN_STAGES

    def waiting_on(self) -> str | None:
        return WAITING_ON[self.stage]

    def due_at(self) -> float | None:
        clock = self.waiting_on()
        return self.due[DUE_INDEX[clock]] if clock else None

    def escalation_level(self) -> int:
        clock = self.waiting_on()
        return self.escalated.get(clock, [0, 0])[0] if clock else 0


@dataclass(slots=True)
class ReportTrack:
    """Everything the tracker knows about one report."""

    report_id: str
    source: str = ""
    source_system: str = ""
    category: str = ""
    routed_at: float = 0.0
    partition: int = -1
    seq: int = 0  # last status sequence number emitted (the first, at the decision, is 0)
    refs: dict[str, RefTrack] = field(default_factory=dict)
    # Acknowledgements that arrived before the routing decision:
    # [ack JSON, topic, partition, offset, arrived at]
    pending: list[list[Any]] = field(default_factory=list)
    closed_at: float | None = None

    @property
    def routed(self) -> bool:
        return bool(self.refs)

    # Compact serialisation: the table holds bytes, ~150 bytes per referral.
    def to_bytes(self) -> bytes:
        refs = {
            d: [
                r.referral_id,
                r.role,
                r.priority,
                r.due,
                int(r.case_owner_required),
                r.stage,
                r.stage_at,
                r.escalated,
                r.decline_reason,
                r.outcome,
            ]
            for d, r in self.refs.items()
        }
        body = [
            STATE_VERSION,
            self.report_id,
            self.source,
            self.source_system,
            self.category,
            self.routed_at,
            self.partition,
            self.seq,
            refs,
            self.pending,
            self.closed_at,
        ]
        return json.dumps(body, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> ReportTrack:
        (version, report_id, source, system, category, routed_at, partition, seq, refs, pending, closed_at) = (
            json.loads(raw)
        )
        if version != STATE_VERSION:
            raise ValueError(f"tracker state version {version} is not {STATE_VERSION}")
        return cls(
            report_id=report_id,
            source=_intern(source),
            source_system=system,
            category=_intern(category),
            routed_at=routed_at,
            partition=partition,
            seq=seq,
            refs={
                _intern(d): RefTrack(
                    r[0], _intern(r[1]), _intern(r[2]), r[3], bool(r[4]), _intern(r[5]), r[6], r[7], r[8], r[9]
                )
                for d, r in refs.items()
            },
            pending=pending,
            closed_at=closed_at,
        )


@dataclass
class Rejection:
    """An input the tracker refuses; it goes to the dead-letter topic with this reason."""

    reason: str  # bounded code, also a metric label
    message: str  # what was wrong, never input values
    topic: str | None = None  # where the original was, for parked acknowledgements
    partition: int | None = None
    offset: int | None = None
    raw: bytes | None = None


@dataclass
class Observation:
    """A metric event the agent applies (kept out of the pure core)."""

    kind: str  # ack | overdue | escalation | decline
    department: str = ""
    stage: str = ""
    priority: str = ""
    seconds: float = 0.0
    level: int = 0
    reason: str = ""


@dataclass
class Outcome:
    track: ReportTrack | None  # the state to store; None with ``delete`` removes it
    changed: bool = False
    delete: bool = False
    escalations: list[Escalation] = field(default_factory=list)
    status: ReportStatus | None = None
    rejections: list[Rejection] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)
    next_check: float | None = None


@dataclass(frozen=True)
class TrackerPolicy:
    """Tunable times of the tracker itself (not of the referrals)."""

    unknown_ack_grace_s: float = 300.0  # how long an ack may wait for its routing decision
    closed_retention_s: float = 7 * 24 * 3600.0  # keep a closed report for late duplicates
    max_pending_acks: int = 50
    future_skew_s: float = 60.0  # an ack claiming to be later than now is clamped to now + this


class Tracker:
    """Applies inputs to a report's state. ``rules()`` gives the rules in force (hot reload)."""

    def __init__(self, rules: Any, policy: TrackerPolicy | None = None) -> None:
        self._rules = rules
        self.policy = policy or TrackerPolicy()

    @property
    def rules(self) -> CompiledRules:
        return self._rules() if callable(self._rules) else self._rules

    # --- inputs ---------------------------------------------------------------------------
    def on_decision(self, track: ReportTrack | None, decision: RoutingDecision, partition: int, now: float) -> Outcome:
        if track is not None and track.routed:
            return Outcome(track, next_check=self.next_check(track))  # decision seen already
        track = track or ReportTrack(report_id=decision.report_id)
        track.source, track.source_system = decision.source.value, decision.source_system
        track.category, track.routed_at, track.partition = decision.category.value, ts(decision.decided_at), partition
        for r in decision.recipients:
            track.refs[_intern(r.department)] = RefTrack(
                referral_id=r.referral_id,
                role=_intern(r.role.value),
                priority=_intern(r.priority.value),
                due=[ts(r.due.received), ts(r.due.decided), ts(r.due.completed)],
                case_owner_required=r.case_owner_required,
                stage="routed",
                stage_at=track.routed_at,
            )
        out = Outcome(track, changed=True)
        parked, track.pending = track.pending, []
        for raw, topic, part, offset, _arrived in parked:
            self._apply_ack(track, Ack.model_validate_json(raw), now, out, origin=(topic, part, offset, raw.encode()))
        self._escalate(track, now, out)
        track.seq = -1
        self._finish(track, now, out)  # the report's first status (seq 0): the tracker holds its clocks
        out.next_check = self.next_check(track)
        return out

    def on_ack(
        self, track: ReportTrack | None, ack: Ack, now: float, origin: tuple[str, int, int, bytes] | None = None
    ) -> Outcome:
        if track is None or not track.routed:
            # The routing decision may still be on its way (another partition's fetch):
            # wait for it a while before calling the referral unknown.
            track = track or ReportTrack(report_id=ack.report_id)
            if len(track.pending) >= self.policy.max_pending_acks:
                return Outcome(
                    track,
                    rejections=[
                        Rejection(
                            "unknown_referral", "too many acknowledgements for a report the tracker does not know"
                        )
                    ],
                )
            topic, part, offset, raw = origin or ("", -1, -1, ack.model_dump_json().encode())
            track.pending.append([raw.decode(), topic, part, offset, now])
            return Outcome(track, changed=True, next_check=self.next_check(track))
        out = Outcome(track)
        self._apply_ack(track, ack, now, out, origin)
        if out.changed:
            self._finish(track, now, out)
        out.next_check = self.next_check(track)
        return out

    def on_tick(self, track: ReportTrack | None, now: float) -> Outcome:
        if track is None:
            return Outcome(None)
        if not track.routed:
            arrived = min(p[4] for p in track.pending) if track.pending else now
            if now - arrived < self.policy.unknown_ack_grace_s:
                return Outcome(track, next_check=self.next_check(track))
            out = Outcome(None, delete=True)
            for raw, topic, part, offset, _ in track.pending:
                out.rejections.append(
                    Rejection(
                        "unknown_referral",
                        f"no routing decision for this report arrived within {self.policy.unknown_ack_grace_s:.0f}s",
                        topic,
                        part,
                        offset,
                        raw.encode(),
                    )
                )
            return out
        if track.closed_at is not None and now - track.closed_at >= self.policy.closed_retention_s:
            return Outcome(None, delete=True)
        out = Outcome(track)
        self._escalate(track, now, out)
        if out.escalations:
            self._finish(track, now, out)
        out.next_check = self.next_check(track)
        return out

    # --- acknowledgements ------------------------------------------------------------------
    def _apply_ack(
        self, track: ReportTrack, ack: Ack, now: float, out: Outcome, origin: tuple[str, int, int, bytes] | None
    ) -> None:
        def reject(reason: str, message: str) -> None:
            topic, part, offset, raw = origin or (None, None, None, None)
            out.rejections.append(Rejection(reason, message, topic, part, offset, raw))

        ref = track.refs.get(ack.department)
        if ref is None:
            if any(r.referral_id == ack.referral_id for r in track.refs.values()):
                return reject("wrong_department", f"referral belongs to another department, not {ack.department}")
            return reject("unknown_referral", f"report has no referral to department {ack.department}")
        if ref.referral_id != ack.referral_id:
            return reject("unknown_referral", "referral_id does not match the department's referral")
        stage, new = ref.stage, ack.stage.value
        if stage == new:
            return  # repeated acknowledgement: idempotent
        refusal = ack_refusal(stage, new, case_owner_required=ref.case_owner_required, case_owner=ack.case_owner)
        if refusal is not None:
            return reject(*refusal)

        at = min(max(ts(ack.at), track.routed_at), now + self.policy.future_skew_s)
        ref.stage, ref.stage_at = _intern(new), at
        if new == "declined":
            ref.decline_reason = ack.reason_code.value if ack.reason_code else None
            out.observations.append(Observation("decline", ack.department, reason=ref.decline_reason or ""))
            if ref.role == "lead":
                target = (
                    self.rules.lead_decline_target(ack.department)
                    if ack.department in self.rules.departments
                    else "joint_meeting"
                )
                out.escalations.append(
                    Escalation(
                        escalation_id=escalation_id_for(
                            ref.referral_id, DueStage.decided, 1, 0, EscalationReason.declined_by_lead
                        ),
                        referral_id=ref.referral_id,
                        report_id=track.report_id,
                        department=ack.department,
                        stage_overdue=DueStage.decided,
                        level=1,
                        repeat=0,
                        target=target,
                        reason=EscalationReason.declined_by_lead,
                        priority=ref.priority,
                        due_at=dt(ref.due[DUE_INDEX["decided"]]),
                        escalated_at=dt(now),
                    )
                )
                out.observations.append(
                    Observation("escalation", ack.department, level=1, reason=EscalationReason.declined_by_lead.value)
                )
        if new == "completed":
            ref.outcome = ack.outcome_code.value if ack.outcome_code else None
        out.observations.append(
            Observation("ack", ack.department, new, ref.priority, seconds=max(0.0, at - track.routed_at))
        )
        out.changed = True

    # --- clocks ------------------------------------------------------------------------------
    def _escalate(self, track: ReportTrack, now: float, out: Outcome) -> None:
        rules = self.rules
        for department, ref in track.refs.items():
            clock = ref.waiting_on()
            if clock is None:
                continue
            due = ref.due[DUE_INDEX[clock]]
            if now < due or department not in rules.departments:
                continue
            chain = rules.escalation(department)
            levels = chain.levels
            level, repeat = ref.escalated.get(clock, [0, 0])
            fired: list[tuple[int, int]] = []
            while level < len(levels) and now >= due + levels[level].after.total_seconds():
                level += 1
                fired.append((level, 0))
            if level >= len(levels):
                base = due + levels[-1].after.total_seconds()
                elapsed = int((now - base) // chain.repeat.total_seconds())
                if elapsed > repeat:
                    repeat = elapsed  # after an outage, only the latest repeat is sent
                    fired.append((len(levels), repeat))
            if not fired:
                continue
            if clock not in ref.escalated:
                out.observations.append(Observation("overdue", department, clock))
            ref.escalated[clock] = [level, repeat]
            for lvl, rep in fired:
                out.escalations.append(
                    Escalation(
                        escalation_id=escalation_id_for(ref.referral_id, clock, lvl, rep),
                        referral_id=ref.referral_id,
                        report_id=track.report_id,
                        department=department,
                        stage_overdue=DueStage(clock),
                        level=lvl,
                        repeat=rep,
                        target=rules.escalation_target(department, lvl),
                        reason=EscalationReason.overdue,
                        priority=ref.priority,
                        due_at=dt(due),
                        escalated_at=dt(now),
                    )
                )
                out.observations.append(
                    Observation("escalation", department, clock, level=lvl, reason=EscalationReason.overdue.value)
                )
            out.changed = True

    def next_check(self, track: ReportTrack) -> float | None:
        """When this report next needs the clock (an escalation, a timeout, expiry)."""
        if not track.routed:
            if not track.pending:
                return None
            return min(p[4] for p in track.pending) + self.policy.unknown_ack_grace_s
        if track.closed_at is not None:
            return track.closed_at + self.policy.closed_retention_s
        rules = self.rules
        soonest: float | None = None
        for department, ref in track.refs.items():
            clock = ref.waiting_on()
            if clock is None or department not in rules.departments:
                continue
            due = ref.due[DUE_INDEX[clock]]
            chain = rules.escalation(department)
            level, repeat = ref.escalated.get(clock, [0, 0])
            if level < len(chain.levels):
                when = due + chain.levels[level].after.total_seconds()
            else:
                when = due + chain.levels[-1].after.total_seconds() + (repeat + 1) * chain.repeat.total_seconds()
            soonest = when if soonest is None else min(soonest, when)
        return soonest

    # --- status ----------------------------------------------------------------------------
    def _finish(self, track: ReportTrack, now: float, out: Outcome) -> None:
        if track.closed_at is None and track.refs and not any(r.open for r in track.refs.values()):
            track.closed_at = now
        track.seq += 1
        out.changed = True
        out.status = self.status(track, now)
        out.next_check = self.next_check(track)

    def status(self, track: ReportTrack, now: float) -> ReportStatus:
        return ReportStatus(
            report_id=track.report_id,
            source=track.source,
            source_system=track.source_system,
            seq=track.seq,
            updated_at=dt(now),
            departments=tuple(
                DepartmentStatus(
                    department=department,
                    role=ref.role,
                    referral_id=ref.referral_id,
                    stage=Stage(ref.stage),
                    stage_at=dt(ref.stage_at),
                    overdue=ref.open and (ref.due_at() or now + 1) <= now,
                    escalation_level=ref.escalation_level(),
                    decline_reason_code=ref.decline_reason if ref.stage == "declined" else None,
                    outcome_code=ref.outcome if ref.stage == "completed" else None,
                )
                for department, ref in sorted(track.refs.items())
            ),
        )
