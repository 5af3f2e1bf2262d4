"""The tracker's agent and clock.

The agent takes routing decisions, acknowledgements and clock ticks for a
report one at a time (all three topics are keyed by report id and
co-partitioned). For each it hands the outputs (escalations, status, dead
letters) to the producer and goes on; the new state is stored, and the input
acknowledged, only once the broker has acknowledged them, in each report's
input order (``services/tracker/pending.py``): a crash can repeat an
escalation (same deterministic id), never lose one. The clock never touches
the table: it finds due reports in the index and sends a tick, which the
agent handles like any other input.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from schemas import Ack, DeadLetter, RoutingDecision, Tick, dump_event
from services.common.logging import get_logger
from services.common.streams.guard import guarded_agent, refresh_changelog_metadata
from services.deadletter.letters import dead_letter, describe_error
from services.tracker import codec, tables
from services.tracker.index import TrackerIndex
from services.tracker.metrics import TrackerMetrics
from services.tracker.pending import PendingStates, Record
from services.tracker.state import Outcome, Rejection, Tracker
from services.tracker.topics import TrackerTopics

log = get_logger(__name__)
SERVICE = "tracker"
# How long a rebalance waits for the inputs still waiting for their outputs (normally a few ms);
# well inside faust's rebalance timeout (60 s) and the session timeout.
SETTLE_BEFORE_REVOCATION_S = 10.0


def register(
    app: Any, topics: TrackerTopics, table: Any, tracker: Tracker, index: TrackerIndex, metrics: TrackerMetrics
) -> PendingStates:
    names = topics.names

    pending = PendingStates(
        send=topics.send,
        store=lambda key, state: tables.store_state(table, key, state),
        defer_ack=lambda message: app.consumer.defer_ack(message),
        ack=lambda message: app.consumer.ack_deferred(message),
        before_rewrite=lambda: refresh_changelog_metadata(app),
    )

    def dead_letter_record(letter: DeadLetter, reason: str) -> Record:
        metrics.dead_letters.labels(reason=reason).inc()
        log.warning(
            "input dead-lettered",
            cause=reason,
            topic=letter.topic,
            partition=letter.partition,
            offset=letter.offset,
            dead_letter_id=letter.dead_letter_id,
        )
        return (names.deadletter, None, dump_event(letter))

    def letter_for(message: Any, rejection: Rejection) -> DeadLetter:
        if rejection.topic is None:
            return dead_letter(SERVICE, message, f"{rejection.reason}: {rejection.message}")
        return DeadLetter.of(
            service=SERVICE,
            topic=rejection.topic,
            partition=rejection.partition or 0,
            offset=rejection.offset or 0,
            key=message.key,
            value=rejection.raw,
            error_type="Rejected",
            error=f"{rejection.reason}: {rejection.message}",
            at=datetime.now(UTC),
        )

    async def reject_input(message: Any, reason: str, exc: BaseException | str) -> None:
        letter = dead_letter(SERVICE, message, exc, cause="internal" if reason == "internal_error" else "input")
        if reason.startswith("invalid_ack") or message.topic == names.acks:
            metrics.acks_rejected.labels(reason=reason).inc()
        await (await topics.send(*dead_letter_record(letter, reason)))

    async def handle(event: Any) -> None:
        message = event.message
        key, topic, now = message.key, message.topic, time.time()
        if key is None:
            await reject_input(message, "key_missing", "message has no key (it must be the report_id)")
            return
        waiting, raw_state = pending.latest(key)  # a state whose outputs are on their way
        if not waiting:
            raw_state = table.get(key)
        track = codec.decode(raw_state) if raw_state is not None else None
        departments = list(track.refs) if track is not None else []

        if topic == names.decisions:
            try:
                decision = RoutingDecision.model_validate_json(message.value)
            except (ValidationError, ValueError) as exc:
                await reject_input(message, "invalid_decision", exc)
                return
            if key != decision.report_id.encode():
                await reject_input(message, "key_mismatch", "message key is not the report_id")
                return
            out = tracker.on_decision(track, decision, message.partition, now)
        elif topic == names.acks:
            try:
                ack = Ack.model_validate_json(message.value)
            except (ValidationError, ValueError) as exc:
                await reject_input(message, "invalid_ack", exc)
                return
            if key != ack.report_id.encode():
                await reject_input(message, "key_mismatch", "message key is not the report_id")
                return
            out = tracker.on_ack(track, ack, now, origin=(topic, message.partition, message.offset, message.value))
        else:  # a Tick: only its key matters (look at this report now)
            out = tracker.on_tick(track, now)

        if out.track is not None and out.track.partition < 0:
            out.track.partition = message.partition
        records = outputs(message, key, out)
        if out.delete:
            state, write = None, raw_state is not None
        elif out.changed and out.track is not None:
            state, write = codec.encode(out.track), True
        else:
            state, write = raw_state, False
        metrics.apply(out.observations)
        kept = None if out.delete else out.track
        index.apply(
            key,
            kept,
            departments + (list(kept.refs) if kept else []),
            None if kept is None else (out.next_check if out.next_check is not None else tracker.next_check(kept)),
        )
        # The outputs are sent; the new state is written, and the input acknowledged, once they are in.
        await pending.hold(key, message, records, state, write)

    def outputs(message: Any, key: bytes, out: Outcome) -> tuple[Record, ...]:
        records: list[Record] = []
        for escalation in out.escalations:
            records.append((names.escalations, key, dump_event(escalation)))
            log.info(
                "referral escalated",
                report_id=escalation.report_id,
                referral_id=escalation.referral_id,
                department=escalation.department,
                level=escalation.level,
                repeat=escalation.repeat,
                target=escalation.target,
                cause=escalation.reason.value,
            )
        if out.status is not None:
            records.append((names.status, key, dump_event(out.status)))
        for rejection in out.rejections:
            metrics.acks_rejected.labels(reason=rejection.reason).inc()
            records.append(dead_letter_record(letter_for(message, rejection), rejection.reason))
        return tuple(records)

    async def on_error(event: Any, exc: Exception) -> None:  # one bad input never stops the tracker
        log.exception(
            "unexpected error; input dead-lettered",
            topic=event.message.topic,
            partition=event.message.partition,
            offset=event.message.offset,
        )
        error_type, error = describe_error(exc)
        await reject_input(event.message, "internal_error", f"{error_type}: {error}")

    async def settle() -> None:
        # faust waits, before it lets partitions go (and at a stop), for every input not yet
        # acknowledged: an input whose outputs cannot be delivered would hold the rebalance for
        # ever. What has not settled in time is dropped, unwritten and unacknowledged; the next
        # owner (perhaps this worker again) handles it from its committed offset.
        if await pending.settle(SETTLE_BEFORE_REVOCATION_S):
            return
        dropped = pending.forget(None, release=app.consumer._unacked_messages.discard)
        log.warning("inputs still waiting for their outputs dropped at a rebalance", inputs=dropped)

    app.settle_hooks.append(settle)
    guarded_agent(app, topics.inputs, name="track-referrals", on_error=on_error)(handle)
    return pending


def register_clock(
    app: Any,
    topics: TrackerTopics,
    table: Any,
    pending: PendingStates,
    tracker: Tracker,
    index: TrackerIndex,
    interval: float,
) -> None:
    names = topics.names

    def owned_partitions() -> frozenset[int] | None:
        if app.rebalancing or not app.tables.recovery.completed.is_set():
            return None
        return frozenset(tp.partition for tp in app.assignor.assigned_actives() if tp.topic == names.decisions)

    @app.timer(interval)
    async def clock() -> None:
        partitions = owned_partitions()
        if partitions is None:
            return
        if partitions != index.partitions:
            started = time.perf_counter()
            count = index.rebuild(pending.overlay(table.items()), partitions, tracker)
            log.info(
                "tracker index rebuilt",
                partitions=sorted(partitions),
                reports=count,
                referrals_open=len(index.outstanding),
                seconds=round(time.perf_counter() - started, 3),
            )
        now = time.time()
        for key, sent in list(index.ticking.items()):
            if now - sent > 30:  # a tick that never came back (lost in a crash): ask again
                index.ticking.pop(key)
                index.due.schedule(key, now)
        for key in index.due.pop_due(now):
            index.ticking[key] = now
            tick = Tick(report_id=key.decode(), at=datetime.fromtimestamp(now, UTC))
            await topics.send(names.tracker_ticks, key, dump_event(tick))
