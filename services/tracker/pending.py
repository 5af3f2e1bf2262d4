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
  written: a report's states reach the changelog in input order, never ahead of their outputs;
* its offset is acknowledged to the consumer (``SafeAckConsumer.defer_ack``) only once the broker
  has acknowledged that changelog record itself (an input that changed nothing: once its outputs
  are in and the report's earlier inputs written). faust's flush before a commit is not enough:
  its buffer's flush gives up after 0.1 s without progress, and a failed changelog record is
  only logged. A changelog record that failed is written again (the report's latest written
  state, on a compacted topic) until the broker has it;
* the next input of the same report is computed from the latest state held here, not from the
  table, which lags until the outputs are in;
* outputs the producer failed to deliver are sent again, with the outputs of the same report's
  later inputs after them, in order (so that the last status on the compacted status topic stays
  the latest), after each of ``RESEND_PAUSES_S`` and then every 30 s, for as long as it takes:
  the input's offset stays unacknowledged, so no commit passes it and a crash replays it. The
  agent goes on with other reports; a later input of that report is held unsent
  (``holding_back``) and sent after them;
* at most ``limit`` inputs wait here; the agent waits for room beyond that;
* before faust lets partitions go (and at a stop) it waits for every input not yet acknowledged;
  what waits here is given ``settle`` to finish first, and what is left is dropped unwritten and
  unacknowledged (``forget``): the next owner handles it again from the changelog's state, which
  a late write from here must not overwrite.

Process-local, but only a cache of what is not durable yet: a crash loses it together with the
inputs whose offsets were not committed, and replaying them rebuilds it.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

from services.common.logging import get_logger

log = get_logger(__name__)

RESEND_PAUSES_S = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)  # the last one repeats
# A table write that raised, or whose changelog record failed, is tried again after this (seen:
# the producer not yet knowing the changelog topic's partitions; ``before_rewrite`` fetches them).
WRITE_RETRY_S = 0.5

Record = tuple[str, bytes | None, bytes]  # topic, key, value: an output, as sent
Send = Callable[[str, bytes | None, bytes], Awaitable["asyncio.Future[Any]"]]
# Writes a report's state (None: deletes it); the future resolves when its changelog record is in.
Store = Callable[[bytes, bytes | None], "asyncio.Future[Any]"]


def _failed(future: Any) -> bool:
    return bool(future.cancelled() or future.exception() is not None)


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
    """Inputs whose outputs or state are on their way, and the state each leaves its report in."""

    def __init__(
        self,
        *,
        send: Send,
        store: Store,
        defer_ack: Callable[[Any], None],
        ack: Callable[[Any], Any],
        before_rewrite: Callable[[], Awaitable[None]],
        limit: int = 1000,
        pauses: tuple[float, ...] = RESEND_PAUSES_S,
    ) -> None:
        """``before_rewrite`` runs before a table write that failed is tried again (the tracker
        refreshes the producer's metadata of its changelog topic)."""
        self._send, self._store = send, store
        self._before_rewrite = before_rewrite
        self._defer_ack, self._ack = defer_ack, ack
        self._limit, self._pauses = limit, pauses
        self._queues: dict[bytes, deque[_Input]] = {}  # outputs on their way, per report, in order
        self._latest: dict[bytes, bytes | None] = {}
        # Written, waiting for the changelog record's acknowledgement (or for a rewrite after a failure).
        self._storing: dict[bytes, list[_Input]] = {}
        self._written: dict[bytes, bytes | None] = {}  # the last state written per report, while storing
        self._unstored: dict[bytes, list[_Input]] = {}  # their changelog record failed: covered by a rewrite
        self._resending: dict[bytes, asyncio.Task[None]] = {}
        self._rewriting: dict[bytes, asyncio.Task[None]] = {}
        self._waiting = 0
        self._room = asyncio.Event()
        self._room.set()

    def __len__(self) -> int:
        """Inputs not yet acknowledged to the consumer by this."""
        return self._waiting

    def latest(self, key: bytes) -> tuple[bool, bytes | None]:
        """``(True, state)`` if an input of ``key`` waits for its outputs (its state after it; None: none).

        Otherwise ``(False, None)``: the table has the latest state. Bytes, decoded afresh by
        each input: a handler tried again must not start from a state that its failed attempt
        had half changed.
        """
        if key in self._latest:
            return True, self._latest[key]
        return False, None

    def holding_back(self, key: bytes) -> bool:
        """Whether ``key``'s outputs are being sent again: hold the next input's outputs, unsent, until after them."""
        return key in self._resending

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

    async def settle(self, timeout: float) -> bool:
        """Wait until nothing waits here, at most ``timeout`` seconds; whether that happened."""
        deadline = time.monotonic() + timeout
        while self._waiting and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return not self._waiting

    def forget(self, partitions: Iterable[int] | None, release: Callable[[Any], None] | None = None) -> int:
        """Drop what waits for inputs of ``partitions`` (None: all; revoked); how many inputs.

        Their offsets were never committed: the partition's next owner handles them again from
        the changelog's state. Each dropped message is given to ``release`` (the tracker takes it
        out of faust's unacknowledged set, which a rebalance otherwise waits on for ever).
        """
        gone = None if partitions is None else set(partitions)
        dropped: list[_Input] = []
        keys = {*self._queues, *self._storing, *self._unstored}
        for key in keys:
            entries = [*self._queues.get(key, ()), *self._storing.get(key, ()), *self._unstored.get(key, ())]
            if not entries or (gone is not None and entries[0].message.partition not in gone):
                continue  # a report's inputs are all on one partition number (co-partitioned topics)
            dropped.extend(entries)
            for table in (self._queues, self._latest, self._storing, self._written, self._unstored):
                table.pop(key, None)
            for tasks in (self._resending, self._rewriting):
                task = tasks.pop(key, None)
                if task is not None:
                    task.cancel()
        for entry in dropped:
            entry.attempt += 1  # late callbacks of its futures change nothing
            if release is not None:
                release(entry.message)
        self._waiting -= len(dropped)
        self._make_room()
        return len(dropped)

    async def hold(
        self, key: bytes, message: Any, records: tuple[Record, ...], state: bytes | None, write: bool
    ) -> None:
        """Send ``records`` (``message``'s outputs) and hold its acknowledgement until they are in.

        ``state`` is the report's state after the input (None: none); with ``write`` it is then
        written (None: deleted), after every earlier input of ``key``, and the message
        acknowledged once that is in. Meanwhile the next input of ``key`` starts from it. While
        ``key``'s outputs are being sent again (``holding_back``) the records are held unsent,
        and that task sends them after those.
        """
        futures = None if key in self._resending else [await self._send(topic, k, v) for topic, k, v in records]
        queue = self._queues.get(key)
        if queue is None and not futures and futures is not None and not write:
            return  # nothing to wait for: faust acknowledges it as usual
        entry = _Input(message, records, state, write)
        if queue is None:
            queue = self._queues[key] = deque()
        queue.append(entry)
        self._latest[key] = state
        self._defer_ack(message)
        self._waiting += 1
        if futures is None or key in self._resending:
            # after the outputs being sent again: sent (again) by that task, in order
            entry.failed = True
            self._start_resend(key)  # if it ended between the agent's look and now
        else:
            self._watch(key, entry, futures)
        if self._waiting >= self._limit:
            self._room.clear()
            await self._room.wait()

    # --- deliveries -----------------------------------------------------------------------------
    def _watch(self, key: bytes, entry: _Input, futures: list[Any]) -> None:
        entry.left, entry.failed = len(futures), False
        if not futures:
            self._drain(key)
            return
        for future in futures:
            future.add_done_callback(partial(self._delivered, key, entry, entry.attempt))

    def _delivered(self, key: bytes, entry: _Input, attempt: int, future: Any) -> None:
        if attempt != entry.attempt:
            return  # a future of an attempt that was sent again since, or of a dropped input
        entry.left -= 1
        if _failed(future):
            entry.failed = True
        if entry.left:
            return
        if entry.failed:
            self._start_resend(key)
            return
        if key not in self._resending:
            self._drain(key)

    def _drain(self, key: bytes) -> None:
        """Write and acknowledge ``key``'s inputs from the oldest on, while their outputs are in."""
        queue = self._queues.get(key)
        while queue and queue[0].left == 0 and not queue[0].failed:
            entry = queue[0]
            if entry.write:
                try:
                    stored = self._store(key, entry.state)
                except Exception as exc:  # noqa: BLE001 - the input stays unacknowledged; try again
                    self._write_failed(key, exc)
                    return
                queue.popleft()
                self._written[key] = entry.state
                self._storing.setdefault(key, []).append(entry)
                stored.add_done_callback(partial(self._stored, key, entry, entry.attempt))
            else:
                queue.popleft()
                self._acknowledge(entry)
        if queue is not None and not queue:
            del self._queues[key]
            del self._latest[key]

    def _stored(self, key: bytes, entry: _Input, attempt: int, future: Any) -> None:
        if attempt != entry.attempt:
            return  # dropped since
        storing = self._storing.get(key, [])
        if entry in storing:
            storing.remove(entry)
        if _failed(future):
            self._unstored.setdefault(key, []).append(entry)
            self._write_failed(key, future.exception() if not future.cancelled() else "cancelled")
        else:
            self._acknowledge(entry)
        self._forget_written(key)

    def _acknowledge(self, entry: _Input) -> None:
        self._waiting -= 1
        try:
            self._ack(entry.message)
        finally:
            self._make_room()

    def _forget_written(self, key: bytes) -> None:
        if not self._storing.get(key) and not self._unstored.get(key) and key not in self._rewriting:
            self._storing.pop(key, None)
            self._unstored.pop(key, None)
            self._written.pop(key, None)

    def _make_room(self) -> None:
        if self._waiting < self._limit:
            self._room.set()

    def _write_failed(self, key: bytes, error: Any) -> None:
        if key not in self._rewriting:
            log.warning(
                "tracker state not stored yet; trying again",
                report_id=key.decode(),
                error=error if isinstance(error, str) else type(error).__name__,
            )
            task = self._rewriting[key] = asyncio.ensure_future(self._write_again(key))
            task.add_done_callback(partial(self._task_ended, self._rewriting, key))

    async def _write_again(self, key: bytes) -> None:
        """Write the report's latest state again until its changelog record is in."""
        round_ = 0
        while True:
            await asyncio.sleep(WRITE_RETRY_S if round_ == 0 else self._pauses[min(round_, len(self._pauses) - 1)])
            round_ += 1
            try:
                await self._before_rewrite()
                covered = self._unstored.pop(key, [])
                if covered:  # the latest state written covers theirs (it came after): write it again
                    stored = self._store(key, self._written.get(key))
                    await asyncio.wait([stored])
                    if _failed(stored):
                        self._unstored.setdefault(key, [])[:0] = covered
                        continue
                    for entry in covered:
                        self._acknowledge(entry)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - keep trying; the inputs stay unacknowledged
                log.warning(
                    "tracker state not stored yet; trying again", report_id=key.decode(), error=type(exc).__name__
                )
                continue
            break
        self._rewriting.pop(key, None)
        self._forget_written(key)
        self._drain(key)  # a write that raised left the queue's head waiting

    def _start_resend(self, key: bytes) -> None:
        if key not in self._resending:
            task = self._resending[key] = asyncio.ensure_future(self._send_again(key))
            task.add_done_callback(partial(self._task_ended, self._resending, key))

    async def _send_again(self, key: bytes) -> None:
        round_ = 0
        while self._first_failed(key) is not None:
            pause = self._pauses[min(round_, len(self._pauses) - 1)]
            log.error(
                "tracker outputs not acknowledged by the broker; sending them again",
                report_id=key.decode(),
                round=round_ + 1,
                pause_s=pause,
            )
            round_ += 1
            await asyncio.sleep(pause)
            try:
                await self._send_round(key)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the entries stay failed: the next round sends them
                log.warning("tracker outputs not sent again yet", report_id=key.decode(), error=type(exc).__name__)
        if self._resending.get(key) is asyncio.current_task():
            del self._resending[key]
        self._drain(key)

    async def _send_round(self, key: bytes) -> None:
        first = self._first_failed(key)
        if first is None:
            return
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
            entry.failed = any(_failed(f) for f in futures)

    def _first_failed(self, key: bytes) -> int | None:
        return next((i for i, e in enumerate(self._queues.get(key, ())) if e.failed), None)

    @staticmethod
    def _task_ended(tasks: dict[bytes, asyncio.Task[None]], key: bytes, task: asyncio.Task[None]) -> None:
        if tasks.get(key) is task:
            del tasks[key]
        if not task.cancelled() and task.exception() is not None:
            log.error("tracker retry task failed", report_id=key.decode(), error=type(task.exception()).__name__)
