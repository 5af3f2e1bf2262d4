"""The acknowledgement tracker's state machine (pure: no Kafka, no clock of its own).

One :class:`ReportTrack` per report holds every referral of that report: its
stage, its due times, and which escalation levels have fired. The tracker's
faust agent feeds it routing decisions, acknowledgements and clock ticks; each
call returns an :class:`Outcome` saying what to emit and what to store. The
records are in ``services/tracker/track.py``, their bytes in
``services/tracker/codec.py``, the lifecycle's order in ``schemas.enums.Stage``.

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

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

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
from schemas.enums import Role
from schemas.lifecycle import ack_refusal
from services.rules import CompiledRules
from services.tracker.track import Due, Fired, PendingAck, RefTrack, ReportTrack

# Where an input was read (topic, partition, offset, raw bytes): a refused one is dead-lettered from there.
Origin = tuple[str, int, int, bytes]


def ts(moment: datetime) -> float:
    return moment.timestamp()


def dt(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


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
    """Applies inputs to a report's state; ``rules()`` gives the rules in force (hot reload)."""

    def __init__(self, rules: Callable[[], CompiledRules], policy: TrackerPolicy | None = None) -> None:
        self._rules = rules
        self.policy = policy or TrackerPolicy()

    @property
    def rules(self) -> CompiledRules:
        return self._rules()

    # --- inputs ---------------------------------------------------------------------------
    def on_decision(self, track: ReportTrack | None, decision: RoutingDecision, partition: int, now: float) -> Outcome:
        if track is not None and track.routed:
            return Outcome(track, next_check=self.next_check(track))  # decision seen already
        track = track or ReportTrack(report_id=decision.report_id)
        track.source, track.source_system = decision.source, decision.source_system
        track.category, track.routed_at, track.partition = decision.category, ts(decision.decided_at), partition
        for r in decision.recipients:
            track.refs[sys.intern(r.department)] = RefTrack(
                referral_id=r.referral_id,
                role=r.role,
                priority=r.priority,
                due=Due(ts(r.due.received), ts(r.due.decided), ts(r.due.completed)),
                case_owner_required=r.case_owner_required,
                stage=Stage.routed,
                stage_at=track.routed_at,
            )
        out = Outcome(track, changed=True)
        parked, track.pending = track.pending, []
        for p in parked:
            origin = (p.topic, p.partition, p.offset, p.ack_json.encode())
            self._apply_ack(track, Ack.model_validate_json(p.ack_json), now, out, origin)
        self._escalate(track, now, out)
        track.seq = -1
        self._finish(track, now, out)  # the report's first status (seq 0): the tracker holds its clocks
        out.next_check = self.next_check(track)
        return out

    def on_ack(self, track: ReportTrack | None, ack: Ack, now: float, origin: Origin | None = None) -> Outcome:
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
            track.pending.append(PendingAck(raw.decode(), topic, part, offset, now))
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
            arrived = track.first_pending_at()
            if now - (now if arrived is None else arrived) < self.policy.unknown_ack_grace_s:
                return Outcome(track, next_check=self.next_check(track))
            out = Outcome(None, delete=True)
            for p in track.pending:
                out.rejections.append(
                    Rejection(
                        "unknown_referral",
                        f"no routing decision for this report arrived within {self.policy.unknown_ack_grace_s:.0f}s",
                        p.topic,
                        p.partition,
                        p.offset,
                        p.ack_json.encode(),
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
    def _apply_ack(self, track: ReportTrack, ack: Ack, now: float, out: Outcome, origin: Origin | None) -> None:
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
        new = ack.stage.stage
        if ref.stage == new:
            return  # repeated acknowledgement: idempotent
        refusal = ack_refusal(ref.stage, new, case_owner_required=ref.case_owner_required, case_owner=ack.case_owner)
        if refusal is not None:
            return reject(*refusal)

        at = min(max(ts(ack.at), track.routed_at), now + self.policy.future_skew_s)
        ref.stage, ref.stage_at = new, at
        if new == Stage.declined:
            ref.decline_reason = ack.reason_code
            out.observations.append(Observation("decline", ack.department, reason=ref.decline_reason or ""))
            if ref.role == Role.lead:
                rules = self.rules
                target = (
                    rules.lead_decline_target(ack.department)
                    if ack.department in rules.departments
                    else "joint_meeting"
                )
                reason = EscalationReason.declined_by_lead
                clock = DueStage.decided
                out.escalations.append(_escalation(track, ack.department, ref, clock, 1, 0, target, reason, now))
                out.observations.append(Observation("escalation", ack.department, level=1, reason=reason.value))
        if new == Stage.completed:
            ref.outcome = ack.outcome_code
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
            due = ref.due.of(clock)
            if now < due or department not in rules.departments:
                continue
            chain = rules.escalation(department)
            levels = chain.levels
            level, repeat = ref.fired(clock)
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
            ref.escalated[clock] = Fired(level, repeat)
            for lvl, rep in fired:
                target = rules.escalation_target(department, lvl)
                out.escalations.append(
                    _escalation(track, department, ref, clock, lvl, rep, target, EscalationReason.overdue, now)
                )
                out.observations.append(
                    Observation("escalation", department, clock, level=lvl, reason=EscalationReason.overdue.value)
                )
            out.changed = True

    def next_check(self, track: ReportTrack) -> float | None:
        """When this report next needs the clock (an escalation, a timeout, expiry)."""
        if not track.routed:
            arrived = track.first_pending_at()
            return None if arrived is None else arrived + self.policy.unknown_ack_grace_s
        if track.closed_at is not None:
            return track.closed_at + self.policy.closed_retention_s
        rules = self.rules
        soonest: float | None = None
        for department, ref in track.refs.items():
            clock = ref.waiting_on()
            if clock is None or department not in rules.departments:
                continue
            due = ref.due.of(clock)
            chain = rules.escalation(department)
            level, repeat = ref.fired(clock)
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
                    stage=ref.stage,
                    stage_at=dt(ref.stage_at),
                    overdue=ref.open and (ref.due_at() or now + 1) <= now,
                    escalation_level=ref.escalation_level(),
                    decline_reason_code=ref.decline_reason if ref.stage == Stage.declined else None,
                    outcome_code=ref.outcome if ref.stage == Stage.completed else None,
                )
                for department, ref in sorted(track.refs.items())
            ),
        )


def _escalation(
    track: ReportTrack,
    department: str,
    ref: RefTrack,
    clock: DueStage,
    level: int,
    repeat: int,
    target: str,
    reason: EscalationReason,
    now: float,
) -> Escalation:
    """The one way an :class:`Escalation` is made: overdue clocks and a lead's decline alike."""
    return Escalation(
        escalation_id=escalation_id_for(ref.referral_id, clock, level, repeat, reason),
        referral_id=ref.referral_id,
        report_id=track.report_id,
        department=department,
        stage_overdue=clock,
        level=level,
        repeat=repeat,
        target=target,
        reason=reason,
        priority=ref.priority,
        due_at=dt(ref.due.of(clock)),
        escalated_at=dt(now),
    )
