"""A cluebus service's consumer lets the broker hold an empty fetch ``FETCH_MAX_WAIT_MS``, not 1,500 ms.

Why it matters is in ``services/common/streams/app.py``: under load, a busy partition's next
records waited behind a fetch of the idle partitions for the whole wait. The consumers are
built, never started: no broker is needed to see what they were given.
"""

from __future__ import annotations

import asyncio

from faust.transport.drivers import aiokafka as faust_aiokafka

from services.common.settings import KafkaSettings, TopicSettings
from services.common.streams.app import FETCH_MAX_WAIT_MS, BusConsumerThread, make_app
from services.common.streams.guard import SafeAckConsumer


def worker_consumer_wait(thread_class: type) -> int:
    app = make_app("router", KafkaSettings(bootstrap="127.0.0.1:1"), TopicSettings(prefix="t"))
    thread = thread_class(app.consumer, loop=app.loop, beacon=app.consumer.beacon)

    async def build() -> int:  # aiokafka's consumer wants a running loop to be built in
        consumer = thread._create_worker_consumer(app.transport)
        try:
            return consumer._fetch_max_wait_ms
        finally:
            await consumer._client.close()

    return asyncio.run(build())


def test_the_bus_consumer_is_guarded_and_runs_on_the_bus_thread():
    app = make_app("tracker", KafkaSettings(bootstrap="127.0.0.1:1"), TopicSettings(prefix="t"))
    assert isinstance(app.consumer, SafeAckConsumer)
    assert type(app.consumer._thread) is BusConsumerThread


def test_the_bus_thread_builds_its_consumer_with_the_bus_wait():
    assert FETCH_MAX_WAIT_MS <= 250
    assert worker_consumer_wait(BusConsumerThread) == FETCH_MAX_WAIT_MS


def test_fausts_own_thread_fixes_the_wait_at_1500_ms():
    # The premise of BusConsumerThread (faust-streaming 0.15.3): if this fails, faust has
    # changed how it builds the consumer and the override needs a second look.
    assert worker_consumer_wait(faust_aiokafka.AIOKafkaConsumerThread) == 1500
