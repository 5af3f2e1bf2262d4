"""faust's consumer made safe for at-least-once, and the one way cluebus defines an agent.

faust-streaming 0.15 loses events around rebalances in five ways, all seen here (the first four
with two router workers, the fifth in a chaos run, issue 20):

1. it acknowledges events that it dropped (fetched in an older consumer generation, or queued
   while flow control was suspended);
2. it discards records prefetched before a rebalance and then takes the hole for a compaction
   gap, which it commits as processed;
3. its commit arithmetic treats the committed offset as the last processed one (Kafka's is the
   next to read), and with no committed offset it commits the first run of acknowledged offsets
   whatever came before;
4. after a rebalance a partition can stop being fetched behind its committed offset;
5. when it drops records aiokafka has already handed over (the flow stopped by a starting
   rebalance while a fetch was in flight, or the generation changing mid-batch) it relies on
   ``perform_seek()`` to go back to the committed offset -- but aiokafka's
   ``seek_to_committed`` leaves a partition *with no committed offset* where it is, so the
   fetch goes on after the dropped records: the first records a partition ever held were
   skipped, and (3) committed past them. ``tests/integration/router/test_uncommitted_partitions.py``
   opens both windows on purpose.

For the topics cluebus agents consume (never compacted, never transactional, so offsets are
contiguous) this consumer keeps one **head** per partition -- the next offset that must be
processed: the committed offset, or, for a partition with no committed offset, the first offset
still in the log as the broker reports it (never the first offset that happened to be fetched,
and whatever ``auto_offset_reset`` says) -- and

* accepts an acknowledgement only for an event an agent really received (``guarded_agent``),
  and for one whose agent deferred it (``defer_ack``: the tracker, until the input's outputs
  and state are safe) only when that agent gives it (``ack_deferred``);
* after every ``perform_seek()`` (each rebalance's recovery, and each batch faust drops) seeks
  every partition whose committed offset is missing, or below the log start, to the log start;
* treats any jump in fetched offsets -- between two records, or between the head and the first
  record after a seek -- as records dropped, seeks back to the first missing one, and never
  marks a hole as processed;
* commits a partition only up to the end of the run of acknowledged offsets that starts at its
  head;
* remembers the records it handed on since a partition's last seek, and when an agent receives
  one while records handed on before it never arrived (faust drops what it is handing to a
  stream when its flow is suspended, and no seek need follow), seeks back to the first of them
  at once -- before this, only the watchdog saw it, 15 s later (issue 17);
* seeks a partition back to its head and fetches it again when records wait past it (by the
  broker's end offset) and the head has not moved for ``stall_seconds``.

Events after a replayed one are processed again; the services are idempotent, so the guarantee
is at-least-once with nothing lost. Every intervention is counted in
``cluebus_consumer_guard_interventions_total{kind,topic}``.

About 450 lines for one job: the heads, the seeks after faust's, the hole and hand-over checks
and the commits all read and write the same per-partition state, one invariant kept in one place.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.utils.functional import consecutive_numbers
from prometheus_client import Counter

from services.common.logging import get_logger

log = get_logger(__name__)

# How often the guard had to step in: a steady rise means faust keeps losing partitions after
# rebalances (records are replayed, never lost, but arrive late).
GUARD_INTERVENTIONS = Counter(
    "cluebus_consumer_guard_interventions_total",
    "Times the consumer guard re-fetched records skipped by the fetch (refetch) or handed on and "
    "never received by an agent (handover), unstalled a partition (unstall) or found records "
    "deleted by retention before they were processed (retention_gap), by kind and topic.",
    ["kind", "topic"],
)

HANDLER_RETRIES = Counter(
    "cluebus_agent_handler_retries_total",
    "Times an agent's handler raised on an event and was tried again, by agent.",
    ["agent"],
)

TP = Any  # faust's TP (topic, partition) named tuple


def _intervened(kind: str, tp: TP, event: str, *, error: bool = False, **offsets: int) -> None:
    """Say that the guard stepped in on ``tp`` (ids and offsets only) and count it by ``kind``."""
    (log.error if error else log.warning)(event, topic=tp.topic, partition=tp.partition, **offsets)
    GUARD_INTERVENTIONS.labels(kind=kind, topic=tp.topic).inc()


# An unexpected exception is most often a passing fault (a broker hiccup, the producer not yet
# knowing a table's changelog topic): the handler is tried again after these pauses, about
# 7.5 s in all, before the event is given up as an internal error (a dead letter whose cause is
# "internal", which the reconciler does not count as an outcome).
RETRY_PAUSES_S = (0.5, 1.0, 2.0, 4.0)


@dataclass
class GuardState:
    """What the guard knows of the partitions of guarded topics this worker is assigned."""

    handled: set[tuple[TP, int]] = field(default_factory=set)  # delivered to an agent, not yet acked
    # Received by an agent that acknowledges them itself, later (``defer_ack``): faust's own
    # acknowledgement at the end of the handler is refused for these.
    deferred: set[tuple[TP, int]] = field(default_factory=set)
    next_expected: dict[TP, int] = field(default_factory=dict)  # next offset due from the fetch, since a seek
    log_start: dict[TP, int] = field(default_factory=dict)  # first offset in the log, as the broker said
    head_seen: dict[TP, tuple[int, float]] = field(default_factory=dict)  # watchdog: (head, first seen)
    # Records handed to faust since the partition's last seek that no agent has received yet,
    # in offset order (the guard hands over no holes). Kept as the message objects: a record
    # fetched again after a seek is another object, so a leftover of an older fetch is known.
    passed: dict[TP, deque[Any]] = field(default_factory=dict)
    # Where the last hand-over seek of each partition fetched from again: the same gap seen again
    # is not sought a second time (see SafeAckConsumer._refetch_dropped).
    handover_from: dict[TP, int] = field(default_factory=dict)
    watchdog: asyncio.Task[None] | None = None
    seeks: set[asyncio.Future[None]] = field(default_factory=set)  # hand-over seeks under way

    def forget(self, tp: TP) -> None:
        self.passed.pop(tp, None)
        self.handover_from.pop(tp, None)
        self.next_expected.pop(tp, None)
        self.log_start.pop(tp, None)
        self.head_seen.pop(tp, None)
        self.handled = {key for key in self.handled if key[0] != tp}
        self.deferred = {key for key in self.deferred if key[0] != tp}


class SafeAckConsumer(faust_aiokafka.Consumer):
    """faust's aiokafka consumer with the guard described in this module's docstring."""

    stall_seconds: float = 15.0

    @property
    def guard(self) -> GuardState:
        state = self.__dict__.get("_cluebus_guard")
        if state is None:
            state = self.__dict__["_cluebus_guard"] = GuardState()
        return state

    @property
    def guarded_topics(self) -> set[str]:
        return getattr(self.app, "guarded_topics", set())

    def head(self, tp: TP) -> int | None:
        """The next offset of ``tp`` that must be processed, or None before it is known."""
        committed = self._committed_offset[tp]
        start = self.guard.log_start.get(tp)
        if committed is None:
            return start
        return committed if start is None else max(committed, start)

    # --- what agents received and acknowledged --------------------------------------------------
    def mark_handled(self, message: Any) -> None:
        tp = message.tp
        guard = self.guard
        guard.handled.add((tp, message.offset))
        passed = guard.passed.get(tp)
        if not passed:
            return
        first = passed[0]
        if first is message:
            passed.popleft()
            return
        # An agent receives a partition's records in the order they were handed over, so the
        # records handed over before this one and never received were dropped on the way.
        at = message.offset - first.offset
        if not (0 < at < len(passed) and passed[at] is message):
            return
        # One seek per gap: if the records go missing again after the seek that was to bring them
        # back, seeking again would repeat whatever dropped them. Seen in a chaos run: a router
        # seeking 34,414 times in 3 minutes, 9 partitions each back to the same offset, logging
        # every time, while the test's reader read nothing. A record that no agent acknowledged
        # stops the commits at it, so the watchdog still fetches it again.
        if guard.handover_from.get(tp) == first.offset:
            for _ in range(at + 1):  # left to the watchdog: go on from this record
                passed.popleft()
            return
        self._refetch_dropped(tp, first.offset, message.offset)

    def _refetch_dropped(self, tp: TP, missing_from: int, got: int) -> None:
        # faust drops records it has taken from the guard when its flow is suspended while it
        # hands them to the stream; if no seek follows, the fetch goes on after them and only
        # the watchdog would notice, stall_seconds later (seen: 13-15 s late, issue 17).
        self.guard.handover_from[tp] = missing_from
        _intervened(
            "handover",
            tp,
            "records handed to the agent never reached it; seeking back",
            missing_from=missing_from,
            got=got,
        )
        self.guard.passed.pop(tp, None)  # what is still queued from this fetch is a leftover now
        task = asyncio.ensure_future(self.seek(tp, missing_from))
        self.guard.seeks.add(task)
        task.add_done_callback(self.guard.seeks.discard)

    def _start_watchdog(self) -> None:
        # From the first assignment on, not from the first event: when faust drops the first
        # batch a partition ever held and nothing arrives after it, no fetch shows the hole and
        # no event is ever handled; only the watchdog sees the head stay behind the log end.
        if self.guard.watchdog is None:
            self.guard.watchdog = asyncio.ensure_future(self._watch_stalls())

    def defer_ack(self, message: Any) -> None:
        """The agent acknowledges ``message`` itself, with ``ack_deferred``, once its effects are safe.

        Until then no commit covers its offset: faust's acknowledgement when the handler returns
        is refused, and the commits stop at it (the tracker stores a report's state only after
        its outputs are acknowledged, and acknowledges the input after that).
        """
        key = (message.tp, message.offset)
        self.guard.handled.discard(key)
        self.guard.deferred.add(key)

    def ack_deferred(self, message: Any) -> bool:
        """Acknowledge a message whose acknowledgement was deferred (see ``defer_ack``)."""
        key = (message.tp, message.offset)
        self.guard.deferred.discard(key)
        self.guard.handled.add(key)
        return self.ack(message)

    def ack(self, message: Any) -> bool:
        if message.topic not in self.guarded_topics:
            return super().ack(message)
        handled = self.guard.handled
        key = (message.tp, message.offset)
        if key in self.guard.deferred:
            return False  # the agent acknowledges it itself, later
        if key not in handled:
            log.debug(
                "ack refused for an event no agent received",
                topic=message.topic,
                partition=message.partition,
                offset=message.offset,
            )
            return False
        handled.discard(key)
        return super().ack(message)

    # --- fetching: no record may be skipped ---------------------------------------------------
    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Any]]:
        guard, guarded, read_offsets = self.guard, self.guarded_topics, self._read_offset
        sought: set[TP] = set()  # sought back during this batch: the rest of its records are stale
        async for tp, message in super().getmany(timeout):
            if tp.topic in guarded:
                if tp in sought:
                    continue
                offset = message.offset
                after_seek = tp not in guard.next_expected
                expected = self.head(tp) if after_seek else guard.next_expected[tp]
                if expected is not None and offset > expected and after_seek:
                    expected = await self._head_still_in_log(tp, expected)
                if expected is not None and offset > expected:
                    _intervened("refetch", tp, "fetch skipped records; seeking back", missing_from=expected, got=offset)
                    await self.seek(tp, expected)
                    sought.add(tp)
                    continue
                guard.next_expected[tp] = offset + 1
                # faust's fetch loop drops, as read already, a record below its read offset of the
                # partition (``_drain_messages``; faust's own seek lowers that offset): such a
                # record is not handed to an agent, and its absence is no hand-over fault.
                read = read_offsets.get(tp)
                if read is None or offset >= read:
                    passed = guard.passed.get(tp)
                    if passed is None:
                        passed = guard.passed[tp] = deque()
                    passed.append(message)
            yield tp, message

    async def _head_still_in_log(self, tp: TP, head: int) -> int:
        """``head``, or the log start when retention deleted the records from ``head`` on."""
        start = (await self.earliest_offsets(tp)).get(tp)
        if start is None or start <= head:
            return head
        self._records_deleted_by_retention(tp, head, start)
        return start

    def _records_deleted_by_retention(self, tp: TP, head: int, start: int) -> None:
        # Not a loss the bus can repair: the records are gone from the log. Say so loudly
        # (counts only) and go on from the log start instead of stalling forever.
        _intervened(
            "retention_gap",
            tp,
            "records deleted by retention before they were processed",
            error=True,
            first_missing=head,
            log_start=start,
            missing=start - head,
        )
        self.guard.log_start[tp] = start

    async def seek(self, partition: TP, offset: int) -> None:
        self.guard.next_expected[partition] = offset
        self.guard.passed.pop(partition, None)
        await super().seek(partition, offset)

    async def perform_seek(self) -> None:
        """faust seeks to the committed offsets; then every partition without one goes to its head."""
        self.guard.next_expected.clear()
        self.guard.passed.clear()
        self.guard.handover_from.clear()
        await super().perform_seek()
        await self.seek_to_heads()
        await refresh_changelog_metadata(self.app)
        self._start_watchdog()

    async def seek_to_heads(self) -> None:
        tps = [tp for tp in self.assignment() if tp.topic in self.guarded_topics]
        if not tps:
            return
        starts = await self.earliest_offsets(*tps)
        log.info("guarded partitions positioned at their heads", partitions=len(tps))
        for tp in tps:
            start = starts.get(tp)
            if start is None:
                continue
            committed = self._committed_offset[tp]
            if committed is not None and committed < start:
                self._records_deleted_by_retention(tp, committed, start)
            self.guard.log_start[tp] = start
            if committed is None or committed < start:
                # aiokafka's seek_to_committed left this partition wherever its fetch was.
                await self.seek(tp, start)

    async def wait_empty(self) -> None:
        """faust's wait for every event not yet acknowledged (at a rebalance, at a stop), after the
        app's ``settle_hooks``: an agent that defers acknowledgements settles or drops them first."""
        for hook in getattr(self.app, "settle_hooks", ()):
            await hook()
        await super().wait_empty()

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        for tp in revoked:
            self.guard.forget(tp)
        await super().on_partitions_revoked(revoked)

    # --- committing: never past a record that was not processed -------------------------------
    async def _add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        if tp.topic in self.guarded_topics:
            return  # contiguous topics have no gaps: a hole is records not yet processed
        await super()._add_gap(tp, offset_from, offset_to)

    def _new_offset(self, tp: TP) -> int | None:
        """The offset to commit: one past the run of acknowledged offsets that starts at the head."""
        if tp.topic not in self.guarded_topics:
            return super()._new_offset(tp)
        acked = self._acked[tp]
        head = self.head(tp)
        if not acked or head is None:
            return None
        acked.sort()
        stale = 0
        while stale < len(acked) and acked[stale] < head:  # replays of what is committed already
            stale += 1
        if stale:
            self._acked_index[tp].difference_update(acked[:stale])
            del acked[:stale]
        if not acked or acked[0] != head:
            return None  # the head itself was not processed yet
        run = next(consecutive_numbers(acked))
        del acked[: len(run)]
        self._acked_index[tp].difference_update(run)
        return run[-1] + 1

    async def _commit(self, offsets: Any) -> bool:
        log.debug("committing offsets", offsets={f"{tp.topic}:{tp.partition}": o for tp, o in offsets.items()})
        return await super()._commit(offsets)

    # --- the stall watchdog --------------------------------------------------------------------
    async def _watch_stalls(self) -> None:
        seen = self.guard.head_seen
        while not self.should_stop:
            await asyncio.sleep(self.stall_seconds / 5)
            if self.app.rebalancing or not self.app.flow_control.is_active():
                seen.clear()
                continue
            try:
                await self._unstall(seen)
            except Exception as exc:  # noqa: BLE001 - the watchdog must outlive a broker hiccup
                log.debug("stall check skipped", error=type(exc).__name__)

    async def _unstall(self, seen: dict[TP, tuple[int, float]]) -> None:
        tps = [tp for tp in self.assignment() if tp.topic in self.guarded_topics]
        if not tps:
            return
        # Ask the broker: a partition that is never fetched has no high-water mark in the
        # consumer, and one never committed has no committed offset; both can stall.
        ends = await self.highwaters(*tps)
        unknown = [tp for tp in tps if self.head(tp) is None]
        starts = await self.earliest_offsets(*unknown) if unknown else {}
        now = time.monotonic()
        for tp in tps:
            head = self.head(tp)
            position = head if head is not None else starts.get(tp)
            end = ends.get(tp)
            if position is None or end is None or position >= end:
                seen.pop(tp, None)
                continue
            last = seen.get(tp)
            if last is None or last[0] != position:
                seen[tp] = (position, now)
            elif now - last[1] > self.stall_seconds:
                _intervened(
                    "unstall",
                    tp,
                    "partition stalled at its committed offset; seeking back",
                    committed=position,
                    highwater=end,
                )
                seen[tp] = (position, now)
                # faust drops a partition from its fetch set while its buffer is full and may
                # never add it back after a rebalance; fetch it again unless faust paused it.
                self._buffered_partitions.discard(tp)
                if tp not in self._paused_partitions:
                    self._get_active_partitions().add(tp)
                await self.seek(tp, position)


async def handled_events(stream: Any) -> AsyncIterator[Any]:
    """``stream.events()``, telling the consumer which events an agent really received."""
    consumer = stream.app.consumer
    mark = getattr(consumer, "mark_handled", None)
    async for event in stream.events():
        if mark is not None:
            mark(event.message)
        yield event


Handler = Callable[[Any], Awaitable[None]]


async def refresh_changelog_metadata(app: Any) -> None:
    """Make the producer know the partitions of every table's changelog topic.

    faust partitions a table write eagerly (``eager_partitioning``) from the producer's
    metadata, synchronously: while the producer has not fetched that topic (created moments
    ago, before faust started), ``table[key] = value`` raises ``TypeError: 'NoneType' object is
    not iterable`` from aiokafka's partitioner. Seen in a console test: the tracker
    dead-lettered a decision for it. Called after every ``perform_seek`` (so before the flow
    resumes) and before a handler is tried again.
    """
    producer = getattr(getattr(app, "producer", None), "_producer", None)  # the aiokafka producer
    if producer is None:
        return
    for table in app.tables.values():
        topic = table.changelog_topic.get_topic_name()
        try:
            await asyncio.wait_for(producer.client._wait_on_metadata(topic), timeout=10)
        except Exception as exc:  # noqa: BLE001 - a missing topic shows in the next write's retry
            log.warning("changelog topic metadata not available yet", topic=topic, error=type(exc).__name__)


def guarded_agent(
    app: Any, topic: Any, *, name: str, on_error: Callable[[Any, Exception], Awaitable[None]]
) -> Callable[[Handler], Any]:
    """Define an agent that handles one event at a time (``concurrency=1``) under the guard.

    ``@guarded_agent(app, topic, name=..., on_error=...)`` on ``async def handle(event)``: the
    topic's names are guarded from the moment the agent is defined (before any partition is
    assigned), and every event the handler is given is marked as received. Handlers refuse bad
    input themselves (a dead letter whose cause is the input); an exception that escapes a
    handler is unexpected, so the handler is tried again after each of ``RETRY_PAUSES_S``
    (handlers are idempotent: their outputs carry deterministic ids and their state is written
    last), and only then goes to ``on_error(event, exc)`` so one bad event never blocks the
    rest. This is the only way cluebus defines an agent, so none can go unguarded.
    """
    app.guarded_topics.update(getattr(topic, "topics", ()))

    def define(handle: Handler) -> Any:
        async def agent(stream: Any) -> None:
            async for event in handled_events(stream):
                await _handle_with_retries(app, name, handle, event, on_error)

        agent.__name__ = agent.__qualname__ = handle.__name__
        return app.agent(topic, name=name, concurrency=1)(agent)

    return define


async def _handle_with_retries(
    app: Any, name: str, handle: Handler, event: Any, on_error: Callable[[Any, Exception], Awaitable[None]]
) -> None:
    for attempt, pause in enumerate((*RETRY_PAUSES_S, None), start=1):
        try:
            await handle(event)
            return
        except Exception as exc:  # one bad event never blocks the rest
            if pause is None:
                await on_error(event, exc)
                return
            HANDLER_RETRIES.labels(agent=name).inc()
            message = event.message
            log.warning(
                "handler failed; trying again",
                agent=name,
                topic=message.topic,
                partition=message.partition,
                offset=message.offset,
                attempt=attempt,
                error_type=type(exc).__name__,
            )
            await refresh_changelog_metadata(app)
            await asyncio.sleep(pause)
