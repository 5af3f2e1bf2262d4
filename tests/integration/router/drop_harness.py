"""The real router or tracker, run as a process, with one of faust's record-dropping windows open.

Used by ``test_uncommitted_partitions.py`` (issue 20). faust drops records that aiokafka has
already handed over (so aiokafka's fetch position is past them) in two places of
``faust.transport.consumer.Consumer.getmany``:

* ``flow``: the consumer's flow was stopped while a fetch was in flight -- what a rebalance
  starting does (``on_rebalance_start`` -> ``stop_flow``). faust drops the whole batch and calls
  ``perform_seek()``, which seeks every partition to its committed offset; aiokafka's
  ``seek_to_committed`` leaves a partition *with no committed offset* where it is, so the
  dropped records are skipped. Recovery later resumes the flow (and seeks once more).
* ``generation``: the consumer generation changed while a batch was being handed out; faust
  breaks off the batch and drops the rest.

And in a third place, after the consumer guard has handed the records on:

* ``handover``: faust's fetch loop (``Consumer._drain_messages``) gives each record to the
  stream with ``wait_first(callback(message), suspend_flow.wait())``: when the stream's buffer
  is full and the flow is suspended, that returns without the record, which is dropped and its
  read offset set. If no seek follows, the fetch goes on behind the dropped records and the
  agent gets the later ones: the 13-15 s stall of issue 17 (hospital:1, offsets 52-262 of
  52-352), which only the guard's watchdog repaired. The window is opened by not passing the
  records from the guard on to faust's fetch loop, which is where faust drops them.

This module forces the chosen window for the first batch that holds records of the service's
input topics (reports for the router, decisions for the tracker), from the test side, by
wrapping the consumer instance's own methods; nothing in the product knows about it. Everything
else is the shipped service: rules, agent, guard, table, producer, real broker.

Run: ``python -m tests.integration.router.drop_harness router|tracker flow|generation
[--auto-offset-reset X]`` with the usual ``CLUEBUS_*`` environment.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from services.common import settings as cfg
from services.common.logging import get_logger
from services.common.streams.worker import run_worker
from services.router.app import create_router
from services.router.settings import RouterSettings
from services.tracker.app import create_tracker
from services.tracker.settings import TrackerSettings

log = get_logger("drop_harness")


INPUTS: set[str] = set()  # the topics whose first batch is dropped


def _report_records(records: dict[Any, list[Any]]) -> dict[Any, list[int]]:
    return {tp: [r.offset for r in recs] for tp, recs in records.items() if tp.topic in INPUTS and recs}


def open_flow_window(router: Any, resume_after_s: float) -> None:
    consumer = router.app.consumer
    original = consumer._getmany
    state = {"done": False}

    async def getmany(active_partitions: Any, timeout: float) -> Any:
        records = await original(active_partitions, timeout)
        if not state["done"]:
            dropped = _report_records(records)
            if dropped:
                state["done"] = True
                # A rebalance starts while this fetch is in flight: faust stops the flow.
                consumer.stop_flow()
                log.warning(
                    "fault injected",
                    window="flow",
                    dropped={f"{tp.topic}:{tp.partition}": offs for tp, offs in dropped.items()},
                )
                asyncio.get_running_loop().call_later(resume_after_s, lambda: asyncio.ensure_future(recover()))
        return records

    async def recover() -> None:
        # What faust's recovery does when the rebalance ends (tables/recovery.py).
        await consumer.perform_seek()
        consumer.resume_flow()
        log.warning("fault recovered", window="flow")

    consumer._getmany = getmany


def open_generation_window(router: Any) -> None:
    app = router.app
    consumer = app.consumer
    scheduler = consumer.scheduler
    state = {"done": False}

    class ChangingGeneration:
        def iterate(self, records: Any) -> Any:
            if not state["done"]:
                dropped = _report_records(records)
                if dropped:
                    state["done"] = True
                    log.warning(
                        "fault injected",
                        window="generation",
                        dropped={f"{tp.topic}:{tp.partition}": offs for tp, offs in dropped.items()},
                    )
                    # The generation moves on before the first record is handed out.
                    app.consumer_generation_id = app.consumer_generation_id + 1
            return scheduler.iterate(records)

    consumer.scheduler = ChangingGeneration()


def open_handover_window(service: Any) -> None:
    """Of the first fetch that holds input records, the first half of the records of its fullest
    partition are handed over by the guard and dropped before the stream, with no seek after;
    the rest of the fetch goes on. Records are taken from the guard one at a time, as faust's
    fetch loop takes them."""
    consumer = service.app.consumer
    fetch = consumer._getmany  # below the guard: chooses what to drop
    guarded_getmany = consumer.getmany  # the guard's: what it yields counts as handed over
    plan: dict[str, Any] = {"drop": None}

    async def fetch_and_choose(active_partitions: Any, timeout: float) -> Any:
        records = await fetch(active_partitions, timeout)
        if plan["drop"] is None:
            mine = {tp: offsets for tp, offsets in _report_records(records).items() if len(offsets) >= 2}
            if mine:
                tp, offsets = max(mine.items(), key=lambda item: len(item[1]))
                plan["drop"] = {(tp, offset) for offset in offsets[: len(offsets) // 2]}
                log.warning(
                    "fault injected",
                    window="handover",
                    dropped={f"{tp.topic}:{tp.partition}": offsets[: len(offsets) // 2]},
                )
        return records

    async def getmany(timeout: float) -> Any:
        async for tp, message in guarded_getmany(timeout):
            drop = plan["drop"]
            if drop and (tp, message.offset) in drop:
                drop.discard((tp, message.offset))  # once: a fetch after a seek is not dropped
                continue
            yield tp, message

    consumer._getmany = fetch_and_choose
    consumer.getmany = getmany


def forget_changelog_metadata(service: Any) -> None:
    """The producer does not know a table's changelog topic when the first write comes.

    A table write partitions eagerly from the producer's metadata (``key_partition``): the
    first one drops the changelog topic from the aiokafka producer's cluster metadata first,
    as when the topic was created moments before faust started and no metadata request has
    included it yet (seen once: the tracker dead-lettered a decision, TypeError).
    """
    producer = service.app.producer
    original = producer.key_partition
    changelogs = {t.changelog_topic.get_topic_name() for t in service.app.tables.values()}
    state = {"done": False}

    def key_partition(topic: str, key: bytes) -> Any:
        if not state["done"] and topic in changelogs:
            state["done"] = True
            producer._producer.client.cluster._partitions.pop(topic, None)
            log.warning("fault injected", window="changelog-metadata", dropped={topic: []})
        return original(topic, key)

    producer.key_partition = key_partition


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("service", choices=["router", "tracker"])
    parser.add_argument("window", choices=["flow", "generation", "handover", "changelog-metadata"])
    parser.add_argument("--auto-offset-reset", default=None, choices=["earliest", "latest"])
    parser.add_argument("--resume-after", type=float, default=1.0)
    args = parser.parse_args()

    service = cfg.load(cfg.ServiceSettings)
    kafka, topics = cfg.load(cfg.KafkaSettings), cfg.load(cfg.TopicSettings)
    if args.service == "router":
        router: Any = create_router(kafka, topics, service, cfg.load(RouterSettings, metrics_port=0))
        INPUTS.update(topics.names.reports())
    else:
        router = create_tracker(kafka, topics, service, cfg.load(TrackerSettings, metrics_port=0))
        INPUTS.add(topics.names.decisions)
    if args.auto_offset_reset is not None:
        router.app.conf.consumer_auto_offset_reset = args.auto_offset_reset
    if args.window == "flow":
        open_flow_window(router, args.resume_after)
    elif args.window == "generation":
        open_generation_window(router)
    elif args.window == "handover":
        open_handover_window(router)
    else:
        forget_changelog_metadata(router)
    run_worker(router.app, service=args.service, log_level=service.log_level, log_format=service.log_format)


if __name__ == "__main__":
    main()
