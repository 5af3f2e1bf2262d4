"""On a real broker, a started cluebus consumer fetches with the bus's wait, not faust's 1,500 ms.

The unit tests (``tests/unit/streams/test_consumer_fetch_wait.py``) see what the consumer is
built with; this one starts it, so it also fails if aiokafka stops building its fetcher from
that setting.
"""

from __future__ import annotations

import asyncio

import pytest

from services.common.streams.app import FETCH_MAX_WAIT_MS, make_app

pytestmark = pytest.mark.kafka


def test_a_started_service_consumer_fetches_with_the_bus_wait(kafka_settings, topic_settings):
    app = make_app("router", kafka_settings, topic_settings)

    async def started_fetcher_wait() -> int:
        consumer = app.consumer._thread._create_worker_consumer(app.transport)
        await consumer.start()
        try:
            return consumer._fetcher._fetch_max_wait_ms
        finally:
            await consumer.stop()

    assert asyncio.run(started_fetcher_wait()) == FETCH_MAX_WAIT_MS
