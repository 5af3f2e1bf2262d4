"""The foundation against the real broker: topics as code and durable producers."""

from kafka import KafkaAdminClient

from services.common import kafka as clients
from services.common.settings import TopicSettings
from services.common.topic_admin import delete_prefixed_topics, ensure_topics, topic_specs
from tests.small_rules import small_rules

from .support import wait_until

DEPARTMENTS = small_rules(["police", "education", "civil_affairs"])


def test_topics_ensure_creates_everything_once(kafka_settings, topic_settings: TopicSettings):
    specs = topic_specs(topic_settings, DEPARTMENTS)
    first = ensure_topics(kafka_settings, specs)
    assert sorted(first.created) == sorted(s.name for s in specs)
    second = ensure_topics(kafka_settings, specs)
    assert second.created == [] and sorted(second.existing) == sorted(s.name for s in specs)

    admin = KafkaAdminClient(bootstrap_servers=kafka_settings.servers)
    try:
        described = {t["name"]: t for t in admin.describe_topics([s.name for s in specs])}
        assert all(len(t["partitions"]) == topic_settings.partitions for t in described.values())
    finally:
        admin.close()


def test_partition_count_drift_is_reported_not_changed(kafka_settings, topic_settings):
    specs = topic_specs(topic_settings, DEPARTMENTS)
    ensure_topics(kafka_settings, specs)
    bigger = topic_specs(topic_settings.model_copy(update={"partitions": 5}), DEPARTMENTS)
    result = ensure_topics(kafka_settings, bigger)
    assert len(result.mismatched) == len(specs)
    assert "has 3 partitions, the settings say 5" in result.mismatched[0]


def test_a_throwaway_prefix_is_deleted_and_nothing_else(kafka_settings, topic_settings):
    # The prefix "t1" must not take "t10..." with it, and faust's internal "<prefix>-..." go too.
    mine = topic_settings.prefix
    neighbour = topic_settings.model_copy(update={"prefix": mine + "0"})
    for settings in (topic_settings, neighbour):
        ensure_topics(kafka_settings, topic_specs(settings, DEPARTMENTS))
    admin = clients.admin(kafka_settings)
    try:
        admin.create_topics({f"{mine}-router-tables-changelog": {"num_partitions": 1, "replication_factor": 1}})
        admin.wait_for_topics([f"{mine}-router-tables-changelog"], timeout_ms=30_000)
        deleted = delete_prefixed_topics(kafka_settings, mine)
        assert f"{mine}-router-tables-changelog" in deleted
        assert len(deleted) == len(topic_specs(topic_settings, DEPARTMENTS)) + 1

        def left() -> set[str]:
            return {t for t in admin.list_topics() if t.startswith(mine)}

        wait_until(lambda: left() == {s.name for s in topic_specs(neighbour, DEPARTMENTS)}, 30)
    finally:
        delete_prefixed_topics(kafka_settings, neighbour.prefix)
        admin.close()


def test_producer_is_idempotent_with_acks_all(kafka_settings):
    producer = clients.producer(kafka_settings)
    try:
        assert producer.config["acks"] == -1 or producer.config["acks"] == "all"
        assert producer.config["enable_idempotence"] is True
    finally:
        producer.close()


def test_typed_report_round_trips_through_kafka(kafka_settings, topic_settings):
    """An example report of every source: produced by key, consumed, validated back."""
    import json

    from schemas import parse_report
    from schemas.examples import load_examples

    ensure_topics(kafka_settings, topic_specs(topic_settings, DEPARTMENTS))
    names = topic_settings.names
    sent = {}
    producer = clients.producer(kafka_settings)
    try:
        for data in load_examples("v1", "reports").values():
            report = parse_report(json.dumps(data))
            producer.send(
                names.report(report.source.value),
                key=report.report_id.encode(),
                value=report.model_dump_json().encode(),
            ).get(timeout=10)
            sent[report.report_id] = report
    finally:
        producer.close()
    consumer = clients.consumer(kafka_settings, *names.reports(), group_id=None, consumer_timeout_ms=5000)
    received = {}
    try:
        for message in consumer:
            report = parse_report(message.value)
            assert message.key.decode() == report.report_id
            assert message.topic == names.report(report.source.value)
            received[report.report_id] = report
            if len(received) == len(sent):
                break
    finally:
        consumer.close()
    assert received == sent
