"""The consumer guard's commit arithmetic: never past a record that was not processed (issue 20).

Table-driven over the guard's own ``_new_offset`` and ``head`` on a real ``SafeAckConsumer``
(built by the app factory, never started: no broker is needed for the arithmetic).
"""

from __future__ import annotations

import pytest
from faust.types import TP

from services.common.settings import KafkaSettings, TopicSettings
from services.common.streams.app import make_app

TOPIC = "t.reports.school"
tp = TP(TOPIC, 0)


@pytest.fixture
def consumer():
    app = make_app("router", KafkaSettings(bootstrap="127.0.0.1:1"), TopicSettings(prefix="t"))
    app.guarded_topics.add(TOPIC)
    return app.consumer


# committed offset in Kafka (None: never committed), log start from the broker (None: not looked
# up yet), acknowledged offsets -> offset to commit (None: nothing may be committed yet)
CASES = [
    ("never committed, head processed", None, 0, [0, 1, 2], 3),
    ("never committed, the first records were dropped (issue 20)", None, 0, [2, 3, 4], None),
    ("never committed, log start not known yet", None, None, [0, 1], None),
    ("never committed, log starts later", None, 7, [7, 8], 9),
    ("a hole after the head: commit up to it", None, 0, [0, 1, 3, 4], 2),
    ("committed, next processed", 5, 0, [5, 6], 7),
    ("committed, next not processed", 5, 0, [6, 7], None),
    ("committed below the log start (retention)", 3, 10, [10, 11], 12),
    ("replays of committed records are dropped", 5, 0, [3, 4, 5], 6),
]


@pytest.mark.parametrize(
    ("committed", "log_start", "acked", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_commit_only_the_run_that_starts_at_the_head(consumer, committed, log_start, acked, expected):
    consumer._committed_offset[tp] = committed
    if log_start is not None:
        consumer.guard.log_start[tp] = log_start
    consumer._acked[tp] = list(acked)
    consumer._acked_index[tp] = set(acked)
    assert consumer._new_offset(tp) == expected
    if expected is not None:  # what was committed is forgotten; the rest waits for its turn
        assert all(o >= expected for o in consumer._acked[tp])
        assert consumer._acked_index[tp] == set(consumer._acked[tp])


def test_the_head_is_the_committed_offset_or_the_log_start_never_a_fetched_offset(consumer):
    assert consumer.head(tp) is None
    consumer.guard.next_expected[tp] = 2  # what the fetch saw has no say in the head
    assert consumer.head(tp) is None
    consumer.guard.log_start[tp] = 0
    assert consumer.head(tp) == 0
    consumer._committed_offset[tp] = 4
    assert consumer.head(tp) == 4


def test_unguarded_topics_keep_fausts_arithmetic(consumer):
    other = TP("t-router-seen-reports-changelog", 0)
    consumer._acked[other] = [0, 1]
    consumer._acked_index[other] = {0, 1}
    assert consumer._new_offset(other) == 2


class Message:
    """What the guard and faust's ``ack`` read of a consumed record."""

    def __init__(self, offset: int) -> None:
        self.tp, self.topic, self.partition, self.offset, self.acked = tp, TOPIC, 0, offset, False


def test_a_deferred_acknowledgement_holds_the_commit_until_the_agent_gives_it(consumer):
    # The tracker defers an input's acknowledgement until its outputs and new state are safe
    # (services/tracker/pending.py): faust's own ack when the handler returns must not count.
    consumer.app.topics._acking_topics.add(TOPIC)
    consumer._committed_offset[tp] = 0
    first, second = Message(0), Message(1)
    for message in (first, second):
        consumer.mark_handled(message)
    consumer.defer_ack(first)
    assert consumer.ack(first) is False  # faust's, as the handler returns: refused
    assert consumer.ack(second) is True
    assert consumer._new_offset(tp) is None  # offset 0 is not acknowledged: nothing may be committed
    assert consumer.ack_deferred(first) is True
    assert consumer._new_offset(tp) == 2
    assert consumer.ack(first) is False  # a late ack of faust's changes nothing
    assert not consumer.guard.deferred and not consumer.guard.handled


def test_a_deferred_acknowledgement_of_a_revoked_partition_is_forgotten(consumer):
    consumer.guard.deferred.add((tp, 0))
    consumer.guard.forget(tp)
    assert not consumer.guard.deferred


def test_an_ack_deferred_past_a_revocation_still_leaves_faust_nothing_to_wait_for(consumer):
    # faust's rebalance waits until every event it handed on is acknowledged (wait_empty).
    consumer.app.topics._acking_topics.add(TOPIC)
    message = Message(0)
    consumer._unacked_messages.add(message)
    consumer.mark_handled(message)
    consumer.defer_ack(message)
    consumer.guard.forget(tp)  # the partition is revoked while the agent holds the ack
    assert consumer.ack_deferred(message) is True
    assert message.acked and message not in consumer._unacked_messages


def test_the_settle_hooks_run_before_faust_waits_for_unacknowledged_events(consumer, monkeypatch):
    import asyncio

    from faust.transport.drivers import aiokafka as faust_aiokafka

    order: list[str] = []

    async def faust_wait_empty(self):  # type: ignore[no-untyped-def]
        order.append("faust waits")

    async def hook() -> None:
        order.append("hook")

    monkeypatch.setattr(faust_aiokafka.Consumer, "wait_empty", faust_wait_empty)
    consumer.app.settle_hooks.append(hook)
    asyncio.run(consumer.wait_empty())
    assert order == ["hook", "faust waits"]
