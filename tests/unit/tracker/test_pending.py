"""A report's state is stored, and its input acknowledged, only after the input's outputs are in.

``PendingStates`` over real asyncio futures that the test resolves: the producer's acknowledgement
of each output, and of each changelog record, is in the test's hands, so every window (an output
still out, a later input of the same report acknowledged first, a delivery that failed, a
changelog record that failed, a table write that raised, a rebalance) is driven on purpose.
``events`` is the order in which the table and the consumer were told things.
"""

from __future__ import annotations

import asyncio

import pytest

from services.tracker.pending import PendingStates

A, B = b"report-a", b"report-b"


class Message:
    """A consumed record, as far as ``PendingStates`` reads one."""

    def __init__(self, name: str, partition: int = 0) -> None:
        self.name, self.partition = name, partition

    def __repr__(self) -> str:
        return self.name

    def __eq__(self, other: object) -> bool:
        return self.name == (other.name if isinstance(other, Message) else other)

    def __hash__(self) -> int:
        return hash(self.name)


class Bus:
    """The producer, table and consumer around ``PendingStates``, recording what each was told."""

    def __init__(self, *, limit: int = 1000, fail_writes: int = 0, auto_store: bool = True) -> None:
        self.sent: list[tuple[str, bytes | None, bytes, asyncio.Future[None]]] = []
        self.stores: list[asyncio.Future[None]] = []  # changelog records, in the order written
        self.table: dict[bytes, bytes] = {}
        self.events: list[tuple[str, object]] = []
        self.fail_writes, self.auto_store = fail_writes, auto_store
        self.pending = PendingStates(
            send=self.send,
            store=self.store,
            defer_ack=lambda m: self.events.append(("defer", m)),
            ack=lambda m: self.events.append(("ack", m)),
            before_rewrite=self.refresh,
            limit=limit,
            pauses=(0.01,),
        )

    async def refresh(self) -> None:  # what the tracker does first: fetch the changelog's metadata
        self.events.append(("refresh", None))

    async def send(self, topic: str, key: bytes | None, value: bytes) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.sent.append((topic, key, value, future))
        return future

    def store(self, key: bytes, state: bytes | None) -> asyncio.Future[None]:
        if self.fail_writes:
            self.fail_writes -= 1
            raise TypeError("changelog metadata not known yet")
        if state is None:
            self.table.pop(key, None)
            self.events.append(("delete", key))
        else:
            self.table[key] = state
            self.events.append(("write", state))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.auto_store:
            future.set_result(None)
        self.stores.append(future)
        return future

    async def input(self, key: bytes, message, values: list[bytes], state: bytes | None, write: bool = True):  # type: ignore[no-untyped-def]
        """One input handled as the agent does; the futures of the outputs it sent (none if held back)."""
        records = tuple(("t.status", key, v) for v in values)
        before = len(self.sent)
        await self.pending.hold(key, Message(message) if isinstance(message, str) else message, records, state, write)
        return [future for *_, future in self.sent[before:]]

    def outcomes(self) -> list[tuple[str, object]]:
        """What the table and the consumer were told, after the deferrals."""
        return [e for e in self.events if e[0] != "defer"]

    def told(self, kind: str) -> list[object]:
        return [what for k, what in self.events if k == kind]

    def values_sent(self, key: bytes) -> list[bytes]:
        return [v for _, k, v, _ in self.sent if k == key]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def until(condition, timeout: float = 2.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition() and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.005)


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_an_input_that_changed_nothing_and_sent_nothing_is_left_to_faust():
    async def scenario() -> None:
        bus = Bus()
        await bus.input(A, "tick", [], None, write=False)
        assert bus.events == [] and len(bus.pending) == 0

    run(scenario())


def test_with_nothing_out_the_state_is_written_at_once_and_the_input_acknowledged_when_it_is_in():
    async def scenario() -> None:
        bus = Bus(auto_store=False)
        await bus.input(A, "m1", [], b"s1")
        assert bus.events == [("defer", "m1"), ("write", b"s1")] and len(bus.pending) == 1
        bus.stores[0].set_result(None)
        await settle()
        assert bus.events[-1] == ("ack", "m1") and len(bus.pending) == 0

    run(scenario())


def test_the_state_waits_for_every_output_and_the_ack_for_the_changelog_record():
    async def scenario() -> None:
        bus = Bus(auto_store=False)
        futures = await bus.input(A, "m1", [b"status", b"escalation"], b"s1")
        assert bus.pending.latest(A) == (True, b"s1")  # the next input of A starts from it
        futures[0].set_result(None)
        await settle()
        assert bus.events == [("defer", "m1")]  # one output still out
        futures[1].set_result(None)
        await settle()
        assert bus.events == [("defer", "m1"), ("write", b"s1")]
        assert bus.pending.latest(A) == (False, None)  # the table has it now
        bus.stores[0].set_result(None)  # the broker has the changelog record
        await settle()
        assert bus.events == [("defer", "m1"), ("write", b"s1"), ("ack", "m1")] and len(bus.pending) == 0

    run(scenario())


def test_a_later_input_acknowledged_first_waits_for_the_earlier_one_of_its_report():
    async def scenario() -> None:
        bus = Bus()
        first = await bus.input(A, "m1", [b"seq0"], b"s1")
        second = await bus.input(A, "m2", [b"seq1"], b"s2")
        other = await bus.input(B, "m3", [b"b-seq0"], b"b1")
        assert bus.pending.latest(A) == (True, b"s2")
        second[0].set_result(None)
        other[0].set_result(None)
        await settle()
        # B is not held up by A; A's second state must not reach the table before its first
        assert bus.table == {B: b"b1"} and bus.told("ack") == ["m3"]
        first[0].set_result(None)
        await settle()
        assert bus.outcomes() == [
            ("write", b"b1"),
            ("ack", "m3"),
            ("write", b"s1"),
            ("write", b"s2"),
            ("ack", "m1"),
            ("ack", "m2"),
        ]
        assert bus.table == {A: b"s2", B: b"b1"}

    run(scenario())


def test_an_input_with_no_outputs_behind_a_waiting_one_is_acknowledged_after_it():
    async def scenario() -> None:
        bus = Bus()
        first = await bus.input(A, "m1", [b"seq0"], b"s1")
        await bus.input(A, "tick", [], b"s1", write=False)  # a tick that changed nothing
        await settle()
        assert bus.told("ack") == []
        first[0].set_result(None)
        await settle()
        # after m1's write; it need not wait for m1's changelog record: it changed nothing, so a
        # replay of m1 alone leaves the report as the tick found it
        assert bus.outcomes() == [("write", b"s1"), ("ack", "tick"), ("ack", "m1")]

    run(scenario())


def test_a_deleted_state_is_deleted_in_its_turn():
    async def scenario() -> None:
        bus = Bus()
        bus.table[A] = b"old"
        first = await bus.input(A, "m1", [b"dead letter"], None)
        assert bus.pending.latest(A) == (True, None)  # the next input finds no state
        first[0].set_result(None)
        await settle()
        assert bus.table == {} and bus.told("delete") == [A] and bus.told("ack") == ["m1"]

    run(scenario())


def test_a_failed_delivery_is_sent_again_with_the_reports_later_outputs_after_it_in_order():
    async def scenario() -> None:
        bus = Bus()
        first = await bus.input(A, "m1", [b"seq0"], b"s1")
        second = await bus.input(A, "m2", [b"seq1"], b"s2")
        second[0].set_result(None)
        first[0].set_exception(RuntimeError("request timed out"))
        await settle()
        assert bus.table == {} and bus.told("ack") == []
        assert bus.pending.holding_back(A) and not bus.pending.holding_back(B)
        await until(lambda: len(bus.sent) >= 4)
        assert bus.values_sent(A) == [b"seq0", b"seq1", b"seq0", b"seq1"]
        assert bus.table == {}  # not before the broker has the outputs sent again
        for *_, future in bus.sent[2:]:
            future.set_result(None)
        await until(lambda: len(bus.told("ack")) == 2)
        assert bus.outcomes() == [
            ("write", b"s1"),
            ("write", b"s2"),
            ("ack", "m1"),
            ("ack", "m2"),
        ]
        assert not bus.pending.holding_back(A)

    run(scenario())


def test_while_a_report_is_sent_again_its_next_input_is_held_unsent_and_other_reports_go_on():
    async def scenario() -> None:
        bus = Bus()
        first = await bus.input(A, "m1", [b"seq0"], b"s1")
        first[0].set_exception(RuntimeError("broker away"))
        await settle()
        assert bus.pending.holding_back(A)
        assert await bus.input(A, "m2", [b"seq1"], b"s2") == []  # held back, not sent
        other = await bus.input(B, "m3", [b"b-seq0"], b"b1")  # another report is not held up
        other[0].set_result(None)
        await settle()
        assert bus.told("ack") == ["m3"]
        await until(lambda: len(bus.values_sent(A)) >= 3)
        assert bus.values_sent(A) == [b"seq0", b"seq0", b"seq1"]  # m2's status after m1's, once
        for _, key, _, future in bus.sent:
            if key == A and not future.done():
                future.set_result(None)
        await until(lambda: len(bus.told("ack")) == 3)
        assert bus.told("ack") == ["m3", "m1", "m2"] and bus.table[A] == b"s2"

    run(scenario())


def test_a_delivery_that_fails_again_is_sent_again_until_it_is_in():
    async def scenario() -> None:
        bus = Bus()
        first = await bus.input(A, "m1", [b"seq0"], b"s1")
        first[0].set_exception(RuntimeError("broker away"))
        for attempt in range(3):
            await until(lambda attempt=attempt: len(bus.sent) >= attempt + 2)
            future = bus.sent[-1][3]
            if attempt < 2:
                future.set_exception(RuntimeError("broker away"))
            else:
                future.set_result(None)
            await settle()
        await asyncio.sleep(0.05)
        assert len(bus.sent) == 4 and bus.told("ack") == ["m1"] and bus.table == {A: b"s1"}

    run(scenario())


def test_a_failed_changelog_record_is_written_again_and_only_then_is_the_input_acknowledged(monkeypatch):
    monkeypatch.setattr("services.tracker.pending.WRITE_RETRY_S", 0.01)

    async def scenario() -> None:
        bus = Bus(auto_store=False)
        first = await bus.input(A, "m1", [b"seq0"], b"s1")
        first[0].set_result(None)
        await settle()
        second = await bus.input(A, "m2", [b"seq1"], b"s2")
        second[0].set_result(None)
        await settle()
        assert bus.told("write") == [b"s1", b"s2"]
        bus.stores[0].set_exception(RuntimeError("changelog record not acknowledged"))
        await until(lambda: len(bus.stores) >= 3)
        # the report's latest written state is written again; it covers the failed one
        assert bus.told("write") == [b"s1", b"s2", b"s2"] and bus.told("ack") == []
        bus.stores[2].set_result(None)
        await settle()
        assert bus.told("ack") == ["m1"]  # m2 still waits for its own record
        bus.stores[1].set_result(None)
        await settle()
        assert bus.told("ack") == ["m1", "m2"] and len(bus.pending) == 0

    run(scenario())


def test_a_table_write_that_raises_is_tried_again_and_the_input_acknowledged_only_after_it(monkeypatch):
    monkeypatch.setattr("services.tracker.pending.WRITE_RETRY_S", 0.01)

    async def scenario() -> None:
        bus = Bus(fail_writes=1)
        first = await bus.input(A, "m1", [b"seq0"], b"s1")
        first[0].set_result(None)
        await settle()
        assert bus.told("ack") == []
        await until(lambda: bus.told("ack") == ["m1"])
        assert [k for k, _ in bus.events] == ["defer", "refresh", "write", "ack"]

    run(scenario())


def test_beyond_the_limit_the_agent_waits_for_room():
    async def scenario() -> None:
        bus = Bus(limit=2)
        first = await bus.input(A, "m1", [b"a"], b"s1")
        second = asyncio.ensure_future(bus.input(B, "m2", [b"b"], b"b1"))  # the second waiting input
        await settle()
        assert not second.done() and len(bus.pending) == 2
        first[0].set_result(None)
        await asyncio.wait_for(second, 1)
        assert len(bus.pending) == 1

    run(scenario())


@pytest.mark.parametrize("cancelled", [True, False])
def test_a_cancelled_or_failed_output_never_lets_the_state_through_before_it_is_sent_again(cancelled):
    async def scenario() -> None:
        bus = Bus()
        first = await bus.input(A, "m1", [b"seq0", b"esc"], b"s1")
        first[0].set_result(None)
        if cancelled:
            first[1].cancel()
        else:
            first[1].set_exception(RuntimeError("x"))
        await settle()
        assert bus.table == {} and bus.told("ack") == []
        await until(lambda: len(bus.sent) >= 4)
        assert bus.values_sent(A) == [b"seq0", b"esc", b"seq0", b"esc"]
        for *_, future in bus.sent[2:]:
            future.set_result(None)
        await until(lambda: bus.told("ack") == ["m1"])
        assert bus.table == {A: b"s1"}

    run(scenario())


def test_the_clocks_index_is_rebuilt_from_the_table_as_it_will_be():
    # Rebuilt from the table alone, the index would miss a report whose decision waits here:
    # no clock would ever look at it (found in review, before any run showed it).
    async def scenario() -> None:
        bus = Bus()
        bus.table.update({A: b"a-old", B: b"b-old", b"report-c": b"c"})
        await bus.input(A, "m1", [b"seq1"], b"a-new")
        await bus.input(B, "m2", [b"dead letter"], None)  # deleted once its output is in
        await bus.input(b"report-d", "m3", [b"seq0"], b"d-new")  # not in the table yet
        assert sorted(bus.pending.overlay(bus.table.items())) == [
            (A, b"a-new"),
            (b"report-c", b"c"),
            (b"report-d", b"d-new"),
        ]

    run(scenario())


def test_what_has_not_settled_before_a_rebalance_is_dropped_unwritten_and_released():
    async def scenario() -> None:
        bus = Bus(auto_store=False)
        on_0, on_1, stored_0 = Message("m0", 0), Message("m1", 1), Message("s0", 0)
        done = await bus.input(b"report-c", stored_0, [], b"c1")  # written, its record not in yet
        first = await bus.input(A, on_0, [b"seq0"], b"a1")
        other = await bus.input(B, on_1, [b"seq0"], b"b1")
        assert done == [] and not await bus.pending.settle(0.05)
        first[0].set_exception(RuntimeError("broker away"))  # A's outputs are being sent again
        await settle()
        released: list[Message] = []
        assert bus.pending.forget({0}, release=released.append) == 2
        assert sorted(m.name for m in released) == ["m0", "s0"]
        assert bus.pending.latest(A) == (False, None) and len(bus.pending) == 1
        assert not bus.pending.holding_back(A)
        await asyncio.sleep(0.05)  # the resend was cancelled: nothing more of A is sent or written
        assert bus.values_sent(A) == [b"seq0"]
        bus.stores[0].set_result(None)  # a late record of a dropped input acknowledges nothing
        other[0].set_result(None)
        await settle()
        assert bus.told("ack") == []  # B's record is not in yet
        bus.stores[-1].set_result(None)
        await settle()
        assert bus.told("ack") == [on_1] and await bus.pending.settle(0.05)
        assert bus.pending.forget(None) == 0

    run(scenario())
