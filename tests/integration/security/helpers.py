"""Helpers of the secure-profile tests: a bus on the secure broker, clients as a principal."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from kafka import TopicPartition
from pydantic import SecretStr

from services.common import kafka as clients
from services.common.settings import KafkaSettings, TopicSettings
from services.common.topic_admin import ensure_topics, topic_specs
from services.common.topics import TopicNames
from services.devkafka.secure import SecureLocalBroker
from tests.small_rules import small_rules, small_rules_text

DEPARTMENTS = ("police", "education", "civil_affairs")
REFUSAL_WITHIN_S = 10.0
PARTITIONS = 2


@dataclass
class SecureBus:
    """Topics, principals with passwords, and ACLs under one prefix on the secure broker."""

    broker: SecureLocalBroker
    prefix: str
    rules_file: Path
    secrets_dir: Path

    @property
    def names(self) -> TopicNames:
        return TopicNames(self.prefix)

    @property
    def admin_env(self) -> dict[str, str]:
        """Environment of a cluebus command acting as admin on this bus."""
        return {
            **self.broker.client_env(),
            "CLUEBUS_TOPICS_PREFIX": self.prefix,
            "CLUEBUS_TOPICS_PARTITIONS": str(PARTITIONS),
        }

    def settings(self, user: str, password: str | None = None) -> KafkaSettings:
        if password is not None:
            return self.broker.client_settings().model_copy(
                update={"username": user, "password_file": None, "password": SecretStr(password)}
            )
        if user == "admin":
            return self.broker.client_settings()
        return self.broker.client_settings(user, self.secrets_dir / f"{user}.password")

    def cli(self, *args: str, check: bool = True):  # type: ignore[no-untyped-def]
        from services.cli import main

        result = CliRunner().invoke(main, list(args), env=self.admin_env)
        if check and result.exit_code != 0:
            pytest.fail(f"cluebus {' '.join(args)} failed ({result.exit_code}): {result.output}", pytrace=False)
        return result


def make_bus(broker: SecureLocalBroker, folder: Path, departments=DEPARTMENTS) -> SecureBus:
    folder.mkdir(parents=True, exist_ok=True)
    # Principals are cluster-wide, so every bus on the broker shares their passwords.
    bus = SecureBus(
        broker=broker,
        prefix=f"s{uuid.uuid4().hex[:8]}",
        rules_file=folder / "routing_rules.toml",
        secrets_dir=Path(broker.run_dir) / "principal-secrets",
    )
    bus.rules_file.write_text(small_rules_text(departments))
    topics = TopicSettings(prefix=bus.prefix, partitions=PARTITIONS)
    ensure_topics(bus.settings("admin"), topic_specs(topics, small_rules(departments)))
    bus.cli("acl", "users", "--rules", str(bus.rules_file), "--secrets-dir", str(bus.secrets_dir), "--generate-missing")
    bus.cli("acl", "apply", "--rules", str(bus.rules_file))
    return bus


def refused(errors, fn, *args):
    """Run ``fn`` and return the error it raised, which must be one of ``errors`` and quick."""
    start = time.monotonic()
    with pytest.raises(errors) as info:
        fn(*args)
    elapsed = time.monotonic() - start
    assert elapsed < REFUSAL_WITHIN_S, f"refused only after {elapsed:.1f}s: that is a timeout"
    return info.value


def produce(settings, topic, value, key=None):
    producer = clients.producer(settings)
    try:
        assert producer.config["enable_idempotence"] is True
        return producer.send(topic, key=key, value=value).get(timeout=15)
    finally:
        producer.close()


def consume_key(settings, topic, group, key, timeout=20.0):
    consumer = clients.consumer(settings, topic, group_id=group)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=1000).values():
                for record in records:
                    if record.key == key:
                        return record.value
        raise AssertionError(f"{key!r} not read from {topic} in {timeout}s")
    finally:
        consumer.close()


def fetch_assigned(settings, topic, group):
    """Read partition 0 of a topic with a group: the offset lookup checks the topic ACL.

    (kafka-python only logs an unauthorized *subscribed* topic and returns nothing;
    an assigned partition raises, as aiokafka does for subscriptions.)
    """
    consumer = clients.consumer(settings, group_id=group)
    try:
        consumer.assign([TopicPartition(topic, 0)])
        return consumer.poll(timeout_ms=5000)
    finally:
        consumer.close()


def fetch_subscribed(settings, topic, group):
    consumer = clients.consumer(settings, topic, group_id=group)
    try:
        return consumer.poll(timeout_ms=5000)
    finally:
        consumer.close()
