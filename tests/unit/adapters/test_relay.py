"""The relay with an in-memory producer: order, acknowledgement before marking, no row skipped."""

from __future__ import annotations

import threading
import time

import pytest

from services.adapters.outbox import Intake, Outbox
from services.adapters.relay import Relay
from services.common.ids import uuid7


class FakeFuture:
    def __init__(self) -> None:
        self.is_done = False
        self.exception: Exception | None = None

    def succeeded(self) -> bool:
        return self.is_done and self.exception is None


class FakeProducer:
    """Acks on flush unless ``down``; ``fail`` keys fail once; ``send_fails_after``: send raises."""

    def __init__(
        self,
        log: list,
        down: threading.Event,
        fail: set[bytes] | None = None,
        send_fails_after: int | None = None,
    ) -> None:
        self.log, self.down, self.fail = log, down, fail or set()
        self.pending: list[tuple[bytes, bytes, FakeFuture]] = []
        self.send_fails_after = send_fails_after
        self.closed = False

    def send(self, topic, value=None, key=None):
        if self.send_fails_after is not None:
            if self.send_fails_after == 0:
                raise TimeoutError("metadata")
            self.send_fails_after -= 1
        fut = FakeFuture()
        self.pending.append((key, value, fut))
        return fut

    def flush(self, timeout=None):
        if self.down.is_set():
            time.sleep(0.01)
            raise TimeoutError("flush")
        for key, _value, fut in self.pending:
            if key in self.fail:
                self.fail.discard(key)
                fut.exception = RuntimeError("broker said no")
            else:
                self.log.append(key.decode())
            fut.is_done = True
        self.pending.clear()

    def close(self, timeout=None):
        self.closed = True


def store(box: Outbox, n: int, prefix: str = "r") -> list[str]:
    entries = [Intake(uuid7(), "sys", f"{prefix}-{i}", None, "t", b"{}") for i in range(n)]
    box.submit(entries).result(5)
    return [e.report_id for e in entries]


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError("condition not met")


@pytest.fixture
def box(tmp_path):
    b = Outbox(tmp_path / "o.sqlite3")
    yield b
    b.close()


def test_publishes_in_order_and_marks_sent(box):
    published: list[str] = []
    down = threading.Event()
    ids = store(box, 25)
    relay = Relay(box, "t", lambda: FakeProducer(published, down), batch_size=7).start()
    try:
        wait_for(lambda: box.backlog == 0)
        assert published == ids
        more = store(box, 3, "s")
        wait_for(lambda: box.backlog == 0)
        assert published == ids + more
        assert relay.kafka_up
    finally:
        relay.stop(1)


def test_a_lone_row_after_a_quiet_spell_goes_at_once_and_load_is_gathered(box):
    published: list[str] = []
    down = threading.Event()
    # A minute of gathering: a lone row that waited for it would miss wait_for's 5 s.
    relay = Relay(box, "t", lambda: FakeProducer(published, down), gather_ms=60_000).start()
    try:
        wait_for(lambda: relay.kafka_up)
        lone = store(box, 1)
        wait_for(lambda: published == lone)
    finally:
        relay.stop(1)
    relay = Relay(box, "t", lambda: FakeProducer(published, down), gather_ms=1_000).start()
    try:
        first = store(box, 3, "a")  # rows queued up: the relay gathers for a second
        wait_for(lambda: relay.rounds == 0 and box.backlog == 3, timeout=0.5)
        second = store(box, 3, "b")
        wait_for(lambda: box.backlog == 0)
        assert published == lone + first + second and relay.rounds == 1
        # Right after a round, even a lone row waits for company: the relay is under load.
        third, fourth = store(box, 1, "c"), store(box, 1, "d")
        wait_for(lambda: box.backlog == 0)
        assert published[-2:] == third + fourth and relay.rounds == 2
    finally:
        relay.stop(1)


def test_nothing_is_marked_before_the_acknowledgement(box):
    published: list[str] = []
    down = threading.Event()
    down.set()
    ids = store(box, 5)
    relay = Relay(box, "t", lambda: FakeProducer(published, down), slow_after_s=0.05).start()
    try:
        wait_for(lambda: relay.rounds >= 1)
        time.sleep(0.2)
        assert box.backlog == 5 and published == []
        wait_for(lambda: not relay.kafka_up)
        down.clear()  # the broker is back: the same round completes
        wait_for(lambda: box.backlog == 0)
        assert published == ids
    finally:
        relay.stop(1)


def test_a_failed_record_is_retried_never_skipped(box):
    published: list[str] = []
    down = threading.Event()
    ids = store(box, 6)
    producers: list[FakeProducer] = []

    def factory():
        p = FakeProducer(published, down, fail={ids[2].encode()} if not producers else None)
        producers.append(p)
        return p

    relay = Relay(box, "t", factory, backoff_max_s=0.05).start()
    try:
        wait_for(lambda: box.backlog == 0)
        assert sorted(published) == sorted(ids) and len(published) == 6
        assert published.count(ids[2]) == 1
        assert len(producers) == 2 and producers[0].closed  # rebuilt after the failure
    finally:
        relay.stop(1)


def test_send_error_midway_waits_for_the_sent_part_then_retries_the_rest(box):
    published: list[str] = []
    down = threading.Event()
    ids = store(box, 6)
    calls = []

    def factory():
        calls.append(1)
        return FakeProducer(published, down, send_fails_after=3 if len(calls) == 1 else None)

    relay = Relay(box, "t", factory, backoff_max_s=0.05).start()
    try:
        wait_for(lambda: box.backlog == 0)
        assert published == ids  # no duplicate, no gap, in order
    finally:
        relay.stop(1)


def test_producer_creation_is_retried_while_kafka_is_down(box):
    published: list[str] = []
    down = threading.Event()
    attempts = []

    def factory():
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionError("no broker")
        return FakeProducer(published, down)

    ids = store(box, 2)
    relay = Relay(box, "t", factory, backoff_max_s=0.05).start()
    try:
        wait_for(lambda: box.backlog == 0)
        assert published == ids and len(attempts) == 3
    finally:
        relay.stop(1)


def test_stop_while_kafka_is_down_leaves_rows_unsent(box):
    published: list[str] = []
    down = threading.Event()
    down.set()
    store(box, 3)
    relay = Relay(box, "t", lambda: FakeProducer(published, down)).start()
    wait_for(lambda: relay.rounds >= 1)
    started = time.monotonic()
    relay.stop(0.2)
    assert time.monotonic() - started < 3
    assert not relay.alive and box.backlog == 3
