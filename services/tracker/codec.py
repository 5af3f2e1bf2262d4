"""The bytes of a :class:`~services.tracker.track.ReportTrack` in the tracker's table (and its changelog).

A compact JSON array, by position, not an object by name: it earns its keep.
Measured with ``bench/tracker_scale.py`` (the shipped examples' decisions, ~4.5
referrals a report): ~188 bytes of state per open referral, ~500 bytes of
tracker memory per open referral with the table's store and the indexes; an
object with names would repeat every field name in every referral of every
report. The positions are named here and only here::

    [version, report_id, source, source_system, category, routed_at, partition, seq,
     {department: [referral_id, role, priority, [due received, decided, completed],
                   case_owner_required (0|1), stage, stage_at,
                   {clock: [level, repeat]}, decline_reason, outcome]},
     [[ack JSON, topic, partition, offset, arrived_at]],   # acknowledgements before the decision
     closed_at]

Before the decision ``source`` and ``category`` are ``""``. Changing the layout
means a new ``STATE_VERSION`` and reading the old one: the changelog keeps what
was written.
"""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from typing import Any

from schemas.enums import Category, DeclineReason, DueStage, OutcomeCode, Priority, Role, Source, Stage
from services.tracker.track import Due, Fired, PendingAck, RefTrack, ReportTrack

STATE_VERSION = 1


def encode(track: ReportTrack) -> bytes:
    refs = {
        department: [
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
        for department, r in track.refs.items()
    }
    body = [
        STATE_VERSION,
        track.report_id,
        track.source or "",
        track.source_system,
        track.category or "",
        track.routed_at,
        track.partition,
        track.seq,
        refs,
        track.pending,
        track.closed_at,
    ]
    return json.dumps(body, separators=(",", ":")).encode()


def decode(raw: bytes) -> ReportTrack:
    (version, report_id, source, system, category, routed_at, partition, seq, refs, pending, closed_at) = json.loads(
        raw
    )
    if version != STATE_VERSION:
        raise ValueError(f"tracker state version {version} is not {STATE_VERSION}")
    return ReportTrack(
        report_id=report_id,
        source=_SOURCE[source] if source else None,
        source_system=system,
        category=_CATEGORY[category] if category else None,
        routed_at=routed_at,
        partition=partition,
        seq=seq,
        refs={sys.intern(department): _ref(r) for department, r in refs.items()},
        pending=[PendingAck(*p) for p in pending],
        closed_at=closed_at,
    )


def _ref(r: list[Any]) -> RefTrack:
    (referral_id, role, priority, due, owner, stage, stage_at, escalated, decline_reason, outcome) = r
    return RefTrack(
        referral_id=referral_id,
        role=_ROLE[role],
        priority=_PRIORITY[priority],
        due=Due(*due),
        case_owner_required=bool(owner),
        stage=_STAGE[stage],
        stage_at=stage_at,
        escalated={_CLOCK[clock]: Fired(*fired) for clock, fired in escalated.items()},
        decline_reason=_DECLINE[decline_reason] if decline_reason is not None else None,
        outcome=_OUTCOME[outcome] if outcome is not None else None,
    )


def _members(enum: type[StrEnum]) -> dict[str, Any]:
    # A dict lookup per field: Stage("routed") costs ~0.5 us, and a decode reads a dozen of them.
    return {member.value: member for member in enum}


_SOURCE, _CATEGORY, _ROLE, _PRIORITY = _members(Source), _members(Category), _members(Role), _members(Priority)
_STAGE, _CLOCK, _DECLINE, _OUTCOME = _members(Stage), _members(DueStage), _members(DeclineReason), _members(OutcomeCode)
