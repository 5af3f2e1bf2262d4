"""The tracker table's bytes: the compact positional layout, written and read by name."""

from __future__ import annotations

from datetime import timedelta

import pytest

from schemas.enums import Category, DeclineReason, DueStage, Priority, Role, Source, Stage
from services.tracker import codec
from services.tracker.state import Tracker, TrackerPolicy
from services.tracker.track import Due, Fired, PendingAck

from .test_state import RULES, T0, ack, decision_for, epoch

# Written by the tracker before its state had names (services/tracker/state.py at 450df5b) for the
# inputs of tracked() below: a changelog written then must read back, and the layout must not drift.
WRITTEN_BEFORE = (
    b'[1,"019aa0f2-0007-7000-8000-000000000007","hospital","hospital-example-sys","suspected_trafficking_woman",'
    b'1795834800.0,2,3,{"police":["15bac98f-c801-5cac-a4fa-c6ef1de1bddf","lead","high",'
    b'[1795834860.0,1795834920.0,1801018800.0],0,"received",1795834810.0,{"decided":[3,0]},null,null],'
    b'"health":["bd1c76fd-3456-5fa4-8375-0489ddcbdfce","lead","high",[1795998660.0,1795998720.0,1803029400.0],0,'
    b'"declined",1795834820.0,{},"not_in_remit",null],"civil_affairs":["0cc86ad2-1611-5a20-98b9-c3be83c5d768",'
    b'"lead","high",[1795998660.0,1795998720.0,1803029400.0],0,"routed",1795834800.0,{},null,null]},[],null]'
)


def tracked():  # type: ignore[no-untyped-def]
    """A report routed at T0 to police, health and civil affairs; police received, health declined,
    police's decided clock escalated to the last level by a tick three hours on."""
    tracker = Tracker(lambda: RULES, TrackerPolicy(unknown_ack_grace_s=30))
    decision = decision_for("hospital-suspected_trafficking_woman")
    track = tracker.on_decision(None, decision, 2, epoch(T0)).track
    tracker.on_ack(track, ack(decision, "police", "received", T0 + timedelta(seconds=10)), epoch(T0) + 10)
    declined = ack(decision, "health", "declined", T0 + timedelta(seconds=20), reason_code="not_in_remit", reason="x")
    tracker.on_ack(track, declined, epoch(T0) + 20)
    tracker.on_tick(track, epoch(T0) + 3 * 3600)
    return track


def test_the_layout_is_the_one_written_before_the_state_had_names():
    assert codec.encode(tracked()) == WRITTEN_BEFORE


def test_what_was_written_reads_back_by_name_and_writes_back_the_same():
    track = codec.decode(WRITTEN_BEFORE)
    assert (track.source, track.category, track.partition, track.seq) == (
        Source.hospital,
        Category.suspected_trafficking_woman,
        2,
        3,
    )
    police, health = track.refs["police"], track.refs["health"]
    assert (police.role, police.priority, police.stage) == (Role.lead, Priority.high, Stage.received)
    assert police.due == Due(1795834860.0, 1795834920.0, 1801018800.0)
    assert police.escalated == {DueStage.decided: Fired(level=3, repeat=0)}
    assert (health.stage, health.decline_reason, health.outcome) == (Stage.declined, DeclineReason.not_in_remit, None)
    assert track == tracked()
    assert codec.encode(track) == WRITTEN_BEFORE


def test_acknowledgements_before_the_decision_keep_where_they_were_read():
    tracker = Tracker(lambda: RULES)
    decision = decision_for("hospital-suspected_trafficking_woman")
    early = ack(decision, "police", "received", T0)
    track = tracker.on_ack(None, early, epoch(T0), origin=("acks", 1, 42, early.model_dump_json().encode())).track
    raw = codec.encode(track)
    assert raw.startswith(b'[1,"019aa0f2-0007-7000-8000-000000000007","","","",0.0,-1,0,{},[["{')
    assert raw.endswith(b'","acks",1,42,' + str(epoch(T0)).encode() + b"]],null]")
    (pending,) = codec.decode(raw).pending
    assert pending == PendingAck(early.model_dump_json(), "acks", 1, 42, epoch(T0))
    assert codec.decode(raw).source is None and codec.decode(raw).category is None


def test_another_state_version_is_refused():
    with pytest.raises(ValueError, match="tracker state version 2 is not 1"):
        codec.decode(b"[2" + WRITTEN_BEFORE[2:])
