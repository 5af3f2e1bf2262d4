"""A report's new state is stored once its outputs are acknowledged, without the agent waiting.

The tracker's agent used to await the broker's acknowledgement of each input's outputs (a status,
escalations, dead letters) before it stored the new state and took the next input: one produce
request per input, each round trip in series, and the state's changelog record in a request of its
own. Measured with ``bench/router_throughput.py`` (3,000 reports, router, tracker and broker on two
cores, 2026-12-03): 517 reports/s with the tracker on, the tracker 1.3 ms of CPU per decision, the
broker 0.48 of a core; with only the wait taken out (nothing else made safe) 658 and 684 reports/s,
0.95 ms per decision, the broker 0.37-0.41 of a core.

Here the outputs go to the producer and the agent goes on. What waits is the input:

* its new state (bytes, encoded when it was computed) is written to the table only when every
  output of the input is acknowledged *and* every earlier input of the same report has been
  stored: a report's states reach the changelog in input order, never ahead of their outputs;
* its offset is acknowledged to the consumer only after that write (``SafeAckConsumer.defer_ack``):
  faust's commit flushes the producer, the changelog record with it, before it commits, so a
  committed offset never covers an input whose outputs or state could still be lost;
* the next input of the same report is computed from the latest state held here, not from the
  table, which lags until the outputs are in;
* outputs the producer failed to deliver are sent again, with the outputs of the same report's
  later inputs after them, in order (so that the last status on the compacted status topic stays
  the latest), after each of ``RESEND_PAUSES_S`` and then every 30 s, for as long as it takes:
  the input's offset stays unacknowledged, so no commit passes it and a crash replays it.
  Inputs of that report wait for it (``ready``); others go on;
* at most ``limit`` inputs wait here; the agent waits for room beyond that;
* what still waits when its partition is revoked is dropped, unwritten (``forget``).

Process-local, but only a cache of what is not durable yet: a crash loses it together with the
inputs whose offsets were not committed, and replaying them rebuilds it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

from services.common.logging import get_logger

log = get_logger(__name__)

RESEND_PAUSES_S = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)  # the last one repeats
# A table write that raised is tried again after this (seen: the producer not yet knowing the
# changelog topic's partitions; ``before_rewrite`` fetches them).
WRITE_RETRY_S = 0.5

Record = tuple[str, bytes | None, bytes]  # topic, key, value: an output, as sent
Send = Callable[[str, bytes | None, bytes], Awaitable["asyncio.Future[Any]"]]


async def _nothing() -> None:
    return None


@dataclass(slots=True)
class _Input:
    message: Any
    records: tuple[Record, ...]
    state: bytes | None  # the report's state after this input (None: none, deleted)
    write: bool  # whether the input changed it: write (or delete) it in the table
    left: int = 0  # outputs not yet acknowledged
    failed: bool = False
    attempt: int = 0  # callbacks of an earlier attempt's futures are ignored


class PendingStates:
    """Inputs whose outputs are on their way, and the state each leaves its report in."""

    def __init__(
        self,
        *,
        send: Send,
        write: Callable[[bytes, bytes], None],
        delete: Callable[[bytes], None],
        defer_ack: Callable[[Any], None],
        ack: Callable[[Any], Any],
        before_rewrite: Callable[[], Awaitable[None]] | None = None,
        limit: int = 1000,
        pauses: tuple[float, ...] = RESEND_PAUSES_S,
    ) -> None:
        """``before_rewrite`` runs before a table write that raised is tried again (the tracker
        refreshes the producer's metadata of its changelog topic)."""
        self._send, self._write, self._delete = send, write, delete
        self._before_rewrite = before_rewrite or _nothing
        self._defer_ack, self._ack = defer_ack, ack
        self._limit, self._pauses = limit, pauses
        self._queues: dict[bytes, deque[_Input]] = {}
        self._latest: dict[bytes, bytes | None] = {}
        self._resending: dict[bytes, asyncio.Task[None]] = {}
        self._rewriting: dict[bytes, asyncio.Task[None]] = {}
        self._waiting = 0
        self._room = asyncio.Event()
        self._room.set()

    def __len__(self) -> int:
        """Inputs waiting here (their outputs unacknowledged, or an earlier input of theirs)."""
        return self._waiting

    def latest(self, key: bytes) -> tuple[bool, bytes | None]:
        """``(True, state)`` if an input of ``key`` waits here (its state after it; None: none), else ``(False, None)``.

        Bytes, decoded afresh by each input: a handler tried again must not start from a state
        that its failed attempt had half changed.
        """
        if key in self._latest:
            return True, self._latest[key]
        return False, None

    def overlay(self, items: Iterable[tuple[bytes, bytes]]) -> Iterator[tuple[bytes, bytes]]:
        """The table's ``(key, state)`` items as they will be: waiting states instead, deleted ones left out.

        What the clock's index is rebuilt from: the table alone lags by the states still waiting here.
        """
        latest = self._latest
        for key, raw in items:
            if key not in latest:
                yield key, raw
        for key, raw in list(latest.items()):
            if raw is not None:
                yield key, raw

    def forget(self, partitions: Iterable[int]) -> int:
        """Drop what still waits for inputs of ``partitions`` (revoked); how many inputs.

        faust waits for every unacknowledged input and flushes the producer before it hands a
        partition on, so this is only ever what could not be delivered in time. Their offsets
        were never committed: the partition's next owner handles them again from the changelog's
        state, which a late write of an old state from here must not overwrite.
        """
        gone = set(partitions)
        dropped = 0
        for key, queue in list(self._queues.items()):
            if queue[0].message.partition not in gone:
                continue  # a report's inputs are all on one partition number (co-partitioned topics)
            dropped += len(queue)
            del self._queues[key]
            del self._latest[key]
            for tasks in (self._resending, self._rewriting):
                task = tasks.pop(key, None)
                if task is not None:
                    task.cancel()
        self._waiting -= dropped
        if self._waiting < self._limit:
            self._room.set()
        return dropped

    async def ready(self, key: bytes) -> None:
        """Wait while ``key``'s outputs are being sent again: its next input's outputs must follow them."""
        task = self._resending.get(key)
        while task is not None:
            await asyncio.shield(task)
            task = self._resending.get(key)

    async def hold(
        self,
        key: bytes,
        message: Any,
        records: tuple[Record, ...],
        futures: list[Any],
        state: bytes | None,
        write: bool,
    ) -> None:
        """Hold ``message``'s acknowledgement until ``futures`` (its ``records``, sent) are acknowledged.

        ``state`` is the report's state after the input (None: none); with ``write`` it is then
        written (None: deleted) and the message acknowledged, after every earlier input of
        ``key``. Meanwhile the next input of ``key`` starts from it.
        """
        queue = self._queues.get(key)
        if queue is None and not futures:  # nothing to wait for: as if there were no pipeline
            if write:
                self._store(key, state)
            return
        entry = _Input(message, records, state, write)
        if queue is None:
            queue = self._queues[key] = deque()
        queue.append(entry)
        self._latest[key] = state
        self._defer_ack(message)
        self._waiting += 1
        self._watch(key, entry, futures)
        if key in self._resending:  # sent while earlier outputs are sent again: send it again after them
            entry.failed = True
        if self._waiting >= self._limit:
            self._room.clear()
            await self._room.wait()

    # --- deliveries -----------------------------------------------------------------------------
    def _store(self, key: bytes, state: bytes | None) -> None:
        if state is None:
            self._delete(key)
        else:
            self._write(key, state)

    def _watch(self, key: bytes, entry: _Input, futures: list[Any]) -> None:
        entry.left, entry.failed = len(futures), False
        if not futures:
            self._drain(key)
            return
        for future in futures:
            future.add_done_callback(partial(self._delivered, key, entry, entry.attempt))

    def _delivered(self, key: bytes, entry: _Input, attempt: int, future: Any) -> None:
        if attempt != entry.attempt:
            return  # a future of an attempt that was sent again since
        entry.left -= 1
        if future.cancelled() or future.exception() is not None:
            entry.failed = True
        if entry.left:
            return
        if entry.failed:
            if key not in self._resending:
                self._resending[key] = asyncio.ensure_future(self._send_again(key))
            return
        if key not in self._resending:
            self._drain(key)

    def _drain(self, key: bytes) -> None:
        """Store and acknowledge ``key``'s inputs from the oldest on, while their outputs are in."""
        queue = self._queues.get(key)
        while queue and queue[0].left == 0 and not queue[0].failed:
            entry = queue[0]
            try:
                if entry.write:
                    self._store(key, entry.state)
            except Exception as exc:  # noqa: BLE001 - the input stays unacknowledged; try again
                if key not in self._rewriting:
                    log.warning(
                        "tracker state not stored yet; trying again", report_id=key.decode(), error=type(exc).__name__
                    )
                    self._rewriting[key] = asyncio.ensure_future(self._write_again(key))
                return
            queue.popleft()
            self._ack(entry.message)
            self._waiting -= 1
        if queue is not None and not queue:
            del self._queues[key]
            del self._latest[key]
        if self._waiting < self._limit:
            self._room.set()

    async def _write_again(self, key: bytes) -> None:
        try:
            await self._before_rewrite()
            await asyncio.sleep(WRITE_RETRY_S)
        finally:
            self._rewriting.pop(key, None)
        self._drain(key)

    async def _send_again(self, key: bytes) -> None:
        round_ = 0
        try:
            while self._first_failed(key) is not None:
                pause = self._pauses[min(round_, len(self._pauses) - 1)]
                log.error(
                    "tracker outputs not acknowledged by the broker; sending them again",
                    report_id=key.decode(),
                    round=round_ + 1,
                    pause_s=pause,
                )
                await asyncio.sleep(pause)
                first = self._first_failed(key)
                if first is None:
                    break
                # the failed input and every later one of the report, in their order
                entries = list(self._queues[key])[first:]
                sent = []
                for entry in entries:
                    entry.attempt += 1  # its earlier futures' callbacks are ignored from now on
                    entry.failed = True  # until these outputs are acknowledged
                    try:
                        futures = [await self._send(topic, k, value) for topic, k, value in entry.records]
                    except Exception as exc:  # noqa: BLE001 - it and the later ones go in the next round
                        log.warning("tracker outputs not handed to the producer", error=type(exc).__name__)
                        break
                    sent.append((entry, futures))
                for entry, futures in sent:
                    if futures:
                        await asyncio.wait(futures)
                    entry.left = 0
                    entry.failed = any(f.cancelled() or f.exception() is not None for f in futures)
                round_ += 1
        finally:
            self._resending.pop(key, None)
        self._drain(key)

    def _first_failed(self, key: bytes) -> int | None:
        return next((i for i, e in enumerate(self._queues.get(key, ())) if e.failed), None)
