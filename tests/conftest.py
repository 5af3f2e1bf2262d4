"""Shared fixtures: the real Kafka broker and per-test topic namespaces.

The test command (`make test`) starts a broker and exports
``CLUEBUS_TEST_KAFKA`` (host:port). When that variable is set the broker is
*expected*: if it does not answer, the ``kafka`` tests fail, they are not
skipped. Without it (a developer running pytest by hand) the fixture starts
the project's own local broker on port 19092 and leaves it running for the
next run.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.common.settings import KafkaSettings, TopicSettings

REPO = Path(__file__).resolve().parents[1]
TEST_PORT = 19092


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    from services.devkafka.broker import LocalBroker, port_open

    expected = os.environ.get("CLUEBUS_TEST_KAFKA")
    if expected:
        host, _, port = expected.rpartition(":")
        if not port_open(host, int(port), timeout=2.0):
            pytest.fail(
                f"CLUEBUS_TEST_KAFKA={expected} is expected but does not answer; "
                "the test command should have started it (`make test`)",
                pytrace=False,
            )
        return expected
    broker = LocalBroker(port=TEST_PORT)
    broker.up()
    return broker.bootstrap


@pytest.fixture(scope="session")
def kafka_settings(kafka_bootstrap: str) -> KafkaSettings:
    return KafkaSettings(bootstrap=kafka_bootstrap, bootstrap_timeout_ms=10_000)


@pytest.fixture
def topic_settings(request: pytest.FixtureRequest) -> Iterator[TopicSettings]:
    """A fresh topic prefix per test, so tests never see each other's records.

    A test on the broker deletes its topics afterwards: the development broker is kept
    between runs, and ~110 partitions a test once filled it up to its file-handle limit.
    """
    settings = TopicSettings(prefix=f"t{uuid.uuid4().hex[:10]}", partitions=3)
    kafka = request.getfixturevalue("kafka_settings") if "kafka_bootstrap" in request.fixturenames else None
    yield settings
    if kafka is not None:
        from services.common.topic_admin import delete_prefixed_topics

        try:
            delete_prefixed_topics(kafka, settings.prefix, timeout_ms=10_000)
        except Exception:  # noqa: BLE001, S110 - best effort: a fault test may leave the broker down
            pass


@pytest.fixture
def bus_env(kafka_bootstrap: str, topic_settings: TopicSettings) -> Iterator[dict[str, str]]:
    """Environment for service subprocesses under test: broker and topic prefix."""
    env = {
        **os.environ,
        "CLUEBUS_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "CLUEBUS_TOPICS_PREFIX": topic_settings.prefix,
        "CLUEBUS_TOPICS_PARTITIONS": str(topic_settings.partitions),
        "CLUEBUS_LOG_FORMAT": "json",
        "PYTHONUNBUFFERED": "1",
    }
    yield env


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Everything under tests/integration talks to the real broker."""
    for item in items:
        if "integration" in item.path.parts:
            item.add_marker(pytest.mark.kafka)
