"""Past reports read back from Kafka for `cluebus rules diff`, with no side effects on any topic.

The consumer has no group (``group_id=None``): it is assigned every partition of the
topic, commits nothing and joins no group, so no other consumer's position moves and
nothing is written. It reads from the first offset at or after ``since`` (the record
timestamps) or from the beginning, up to the end offsets taken when it started, and
stops there: records appended meanwhile are for the next run.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from kafka import TopicPartition

from services.common import kafka as clients
from services.common.settings import KafkaSettings


class HistoryError(RuntimeError):
    """The topic cannot be read back; the message says why."""


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    value: bytes


def read_topic(
    settings: KafkaSettings,
    topic: str,
    since: datetime | None = None,
    *,
    idle_timeout_s: float = 30.0,
    client_id: str | None = None,
) -> Iterator[Record]:
    """Every record of ``topic`` (from ``since``) up to the end offsets of when this started."""
    consumer = clients.consumer(settings, group_id=None, client_id=client_id or f"{settings.client_id}-rules-diff")
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise HistoryError(f"topic '{topic}' does not exist or is not readable")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        end = consumer.end_offsets(tps)
        if since is None:
            start = consumer.beginning_offsets(tps)
        else:
            found = consumer.offsets_for_times({tp: int(since.timestamp() * 1000) for tp in tps})
            start = {tp: (found[tp].offset if found.get(tp) else end[tp]) for tp in tps}
        for tp in tps:
            consumer.seek(tp, start[tp])
        remaining = {tp for tp in tps if start[tp] < end[tp]}
        last_progress = time.monotonic()
        while remaining:
            batch = consumer.poll(timeout_ms=500)
            for tp, messages in batch.items():
                for message in messages:
                    if message.offset < end[tp]:
                        yield Record(topic, tp.partition, message.offset, message.value)
            if batch:
                last_progress = time.monotonic()
            elif time.monotonic() - last_progress > idle_timeout_s:
                raise HistoryError(f"topic '{topic}': no records for {idle_timeout_s:.0f}s before its end offsets")
            remaining = {tp for tp in remaining if consumer.position(tp) < end[tp]}
    finally:
        consumer.close(autocommit=False)
