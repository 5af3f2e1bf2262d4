"""The physical limit of this broker for 1 KB events, as the yardstick for the router.

    .venv/bin/python bench/kafka_baseline.py [--events 20000] [--size 1024]

Under a fresh topic prefix (3 partitions) it measures (a) a raw kafka-python
producer (acks=all, idempotent, linger 5 ms, 256 KB batches) and a raw
kafka-python consumer reading the same events back, and (b) a raw aiokafka
consume -> produce passthrough: a consumer group reading the events and an
acks=all idempotent producer writing one output per input, committing each
fetched batch once its outputs are acknowledged (the router's at-least-once
shape without faust). Writes ``bench/results/kafka_baseline.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import json
import os
import platform
import socket
import sys
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "kafka_baseline.json"
DEFAULT_BOOTSTRAP = os.environ.get("CLUEBUS_KAFKA_BOOTSTRAP", "127.0.0.1:19092")
PARTITIONS = 3
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


# -- shared by the bench scripts ----------------------------------------------------------------
_PREFIXES_USED: list[tuple[str, str]] = []


def fresh_prefix(bootstrap: str = DEFAULT_BOOTSTRAP) -> str:
    """A new topic namespace; its topics are deleted when the script ends."""
    prefix = f"b{uuid.uuid4().hex[:10]}"
    _PREFIXES_USED.append((bootstrap, prefix))
    return prefix


@atexit.register
def _delete_bench_topics() -> None:
    # The development broker is kept between runs: a bench leaves no partitions behind.
    from services.common.settings import KafkaSettings
    from services.common.topic_admin import delete_prefixed_topics

    for bootstrap, prefix in _PREFIXES_USED:
        if not kafka_reachable(bootstrap):  # a run without a broker created no topics
            continue
        try:
            delete_prefixed_topics(KafkaSettings(bootstrap=bootstrap), prefix, timeout_ms=10_000)
        except Exception:  # noqa: BLE001, S110 - best effort; the broker may be gone
            pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(port: int, proc: Any, path: str = "/healthz", timeout: float = 30.0) -> None:
    """Until ``http://127.0.0.1:<port><path>`` answers 200; exits if ``proc`` dies first."""
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:  # noqa: S310
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"server on {port} not answering {path} in {timeout}s")


def kafka_reachable(bootstrap: str) -> bool:
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((host, int(port))) == 0


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    try:
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "ram_gib": round(mem_kb / 1024**2, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("kafka-python", "aiokafka", "faust-streaming", "pydantic"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "absent"
    return out


def header(benchmark: str) -> dict[str, Any]:
    """The first keys of every benchmark's JSON: its name, when, on what machine, which versions."""
    return {
        "benchmark": benchmark,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "versions": versions(),
    }


def broker_version(bootstrap: str) -> str:
    from kafka import KafkaAdminClient

    from services.devkafka.broker import KAFKA_VERSION

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        api = ".".join(map(str, admin._client.check_version()))  # what the broker answers to ApiVersions
    finally:
        admin.close()
    return f"API {api} (the local `cluebus kafka` launcher runs Apache Kafka {KAFKA_VERSION})"


def create_topics(bootstrap: str, names: list[str], partitions: int = PARTITIONS) -> None:
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(n, partitions, 1) for n in names])
    finally:
        admin.close()


def pct(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(p * len(sorted_values)))]


# -- (a) raw kafka-python producer and consumer -----------------------------------------------------
def events(n: int, size: int) -> list[tuple[bytes, bytes]]:
    pad = b"x" * size
    return [(f"k{i:08d}".encode(), (f"{i:08d}".encode() + pad)[:size]) for i in range(n)]


def raw_produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        batch_size=256 * 1024,
        max_request_size=4 * 1024 * 1024,
    )
    try:
        producer.send(topic, key=b"warm", value=b"warm").get(30)  # metadata, producer id
        started = time.perf_counter()
        for key, value in records:
            producer.send(topic, key=key, value=value)
        producer.flush(120)
        seconds = time.perf_counter() - started
    finally:
        producer.close()
    return {
        "events": len(records),
        "seconds": round(seconds, 3),
        "events_per_s": round(len(records) / seconds, 1),
        "mb_per_s": round(sum(len(v) for _, v in records) / seconds / 1e6, 2),
    }


def raw_consume(bootstrap: str, topic: str, expected: int, timeout: float = 120.0) -> dict[str, Any]:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_records=2000,
    )
    count = 0
    started = None
    try:
        deadline = time.monotonic() + timeout
        while count < expected and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                if started is None:
                    started = time.perf_counter()  # from the first record: excludes group-less assignment
                count += len(records)
        seconds = time.perf_counter() - (started or time.perf_counter())
    finally:
        consumer.close()
    return {"events": count, "seconds": round(seconds, 3), "events_per_s": round(count / max(seconds, 1e-9), 1)}


# -- (b) raw aiokafka passthrough ----------------------------------------------------------------
async def _passthrough(
    bootstrap: str, source: str, sink: str, expected: int, timeout: float, group: str
) -> dict[str, Any]:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_records=500,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5, max_batch_size=256 * 1024
    )
    await producer.start()
    await consumer.start()
    count = 0
    started = None
    try:
        deadline = time.monotonic() + timeout
        while count < expected and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            if not batches:
                continue
            if started is None:
                started = time.perf_counter()
            deliveries = []
            for records in batches.values():
                for r in records:
                    deliveries.append(await producer.send(sink, key=r.key, value=r.value))
            await asyncio.gather(*deliveries)  # acknowledged before the inputs are committed
            await consumer.commit()
            count += len(deliveries)
        seconds = time.perf_counter() - (started or time.perf_counter())
    finally:
        await consumer.stop()
        await producer.stop()
    return {"events": count, "seconds": round(seconds, 3), "events_per_s": round(count / max(seconds, 1e-9), 1)}


def passthrough(
    bootstrap: str, n: int, size: int = 1024, prefix: str | None = None, rounds: int = 3, timeout: float = 120.0
) -> dict[str, Any]:
    """Fill a fresh topic with n events, then time an aiokafka consume -> produce over all of them.

    Each round is a new consumer group reading from the start; the median round is reported,
    since one short run is easily disturbed by other work on a small machine.
    """
    prefix = prefix or fresh_prefix(bootstrap)
    source, sink = f"{prefix}.pass.in", f"{prefix}.pass.out"
    create_topics(bootstrap, [source, sink])
    raw_produce(bootstrap, source, events(n, size))
    runs = [asyncio.run(_passthrough(bootstrap, source, sink, n, timeout, f"{source}-pass-{i}")) for i in range(rounds)]
    median = sorted(runs, key=lambda r: r["events_per_s"])[len(runs) // 2]
    return {
        **median,
        "rounds_events_per_s": [r["events_per_s"] for r in runs],
        "event_bytes": size,
        "topics": [source, sink],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--size", type=int, default=1024, help="bytes per event")
    parser.add_argument("--bootstrap", default=DEFAULT_BOOTSTRAP)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if not kafka_reachable(args.bootstrap):
        raise SystemExit(f"no broker at {args.bootstrap}")

    prefix = fresh_prefix(args.bootstrap)
    raw_topic = f"{prefix}.raw"
    create_topics(args.bootstrap, [raw_topic])
    records = events(args.events, args.size)
    produced = raw_produce(args.bootstrap, raw_topic, records)
    consumed = raw_consume(args.bootstrap, raw_topic, args.events)
    passed = passthrough(args.bootstrap, args.events, args.size, prefix)

    report = {
        "benchmark": "kafka_baseline",
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "versions": {**versions(), "kafka_broker": broker_version(args.bootstrap)},
        "settings": {
            "bootstrap": args.bootstrap,
            "prefix": prefix,
            "partitions": PARTITIONS,
            "events": args.events,
            "event_bytes": args.size,
            "producer": "acks=all, idempotent, linger_ms=5, batch 256 KB",
            "passthrough": "aiokafka consumer group -> acks=all idempotent producer, "
            "commit per fetched batch after its outputs are acknowledged; "
            "median of 3 rounds (new consumer group each)",
        },
        "raw_producer": produced,
        "raw_consumer": consumed,
        "aiokafka_passthrough": passed,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{'':26}{'events/s':>12}{'seconds':>10}")
    for label, r in (
        ("kafka-python producer", produced),
        ("kafka-python consumer", consumed),
        ("aiokafka passthrough", passed),
    ):
        print(f"{label:26}{r['events_per_s']:>12}{r['seconds']:>10}")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
