"""Sending through a cluebus topic does not go round the event loop once the producer runs.

faust's own ``Topic`` awaits a mode ``stampede`` before every record, which yields three times;
each yield let aiokafka ship a produce request of its own (see ``BusTopic``). The app is built
by the factory and never started: no broker is needed to see whether a coroutine suspends.
"""

from __future__ import annotations

import faust
import pytest

from services.common.settings import KafkaSettings, TopicSettings
from services.common.streams.app import BusTopic, make_app


@pytest.fixture
def app():
    return make_app("router", KafkaSettings(bootstrap="127.0.0.1:1"), TopicSettings(prefix="t"))


def steps_until_done(coro) -> tuple[int, object]:  # type: ignore[no-untyped-def]
    """How many times ``coro`` suspends before it returns, and what it returns."""
    steps = 0
    try:
        while True:
            coro.send(None)
            steps += 1
            if steps > 10:
                coro.close()
                raise AssertionError("coroutine did not finish")
    except StopIteration as done:
        return steps, done.value


def test_every_topic_of_a_bus_app_and_its_tables_changelog_is_a_bus_topic(app):
    assert type(app.topic("t.x")) is BusTopic
    table = app.Table("seen", default=None, key_type=bytes, value_type=bytes)
    assert type(table.changelog_topic) is BusTopic


def test_a_running_producer_is_handed_over_without_suspending(app):
    app.producer._started.set()
    assert steps_until_done(app.topic("t.x")._get_producer()) == (0, app.producer)


def test_fausts_own_topic_suspends_three_times_per_record(app):
    # The premise of BusTopic (faust-streaming 0.15.3): if this fails, BusTopic can go.
    app.producer._started.set()
    steps, producer = steps_until_done(faust.Topic(app, topics=["t.x"])._get_producer())
    assert (steps, producer) == (3, app.producer)


def test_the_partitioner_chooses_what_aiokafkas_default_partitioner_chooses(app):
    import random

    from aiokafka.partitioner import DefaultPartitioner

    from services.common.streams.app import KeyHashPartitioner

    chosen = app.conf.producer_partitioner
    assert isinstance(chosen, KeyHashPartitioner)
    small = KeyHashPartitioner(remember=8)  # forgets often: the hash must not depend on what it remembers
    rng = random.Random(7)  # noqa: S311 - test keys, not secrets
    for _ in range(3000):
        key = rng.randbytes(rng.randint(0, 40))
        partitions = list(range(rng.choice([1, 2, 3, 5, 12, 100])))
        expected = DefaultPartitioner()(key, partitions, partitions)
        assert chosen(key, partitions, partitions) == expected
        assert small(key, partitions, partitions) == expected
        assert small(key, partitions, partitions) == expected  # remembered
    assert chosen(None, [0, 1, 2], [1]) == 1  # no key: one of the available partitions
