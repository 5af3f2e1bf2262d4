"""Helpers for integration tests: real service processes and reading topics."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer

REPO = Path(__file__).resolve().parents[2]
CLUEBUS = str(REPO / ".venv" / "bin" / "cluebus") if (REPO / ".venv/bin/cluebus").exists() else "cluebus"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_port_pair() -> int:
    """A port whose next port is free too (a private broker's client and controller ports)."""
    return broker_ports(2)


def broker_ports(count: int) -> int:
    """The first of ``count`` consecutive free ports for brokers a test starts itself.

    Taken from ``CLUEBUS_TEST_BROKER_PORTS`` (``first-last``, default 21090-21199), so
    that private brokers stay out of the ports of other brokers on a shared machine, and
    below the kernel's range for outgoing connections (``ip_local_port_range``, 32768-60999
    here): a port in that range can be taken by any client socket between a broker's stop
    and its restart, and a controller that cannot bind its port never becomes ready (seen
    in a full run: the broker-restart fault test at 39097).
    """
    first, _, last = os.environ.get("CLUEBUS_TEST_BROKER_PORTS", "21090-21199").partition("-")
    for start in range(int(first), int(last) - count + 2):
        if all(_port_free(port) for port in range(start, start + count)):
            return start
    raise AssertionError(f"no {count} consecutive free ports in {first}-{last} (CLUEBUS_TEST_BROKER_PORTS)")


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def wait_healthy(url: str, service: Service | None = None, timeout: float = 30.0) -> None:
    """Until ``url``/healthz answers 200; fails at once if the service's process exits."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service is not None and service.proc is not None and service.proc.poll() is not None:
            raise AssertionError(f"{service.name} exited: {service.tail()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} not healthy in {timeout}s" + (f": {service.tail()}" if service else ""))


class Service:
    """A cluebus service run as a real process, its output captured to a file."""

    def __init__(
        self, name: str, args: list[str], env: dict[str, str], log_dir: Path, program: list[str] | None = None
    ) -> None:
        self.name = name
        self.args = args
        self.program = program or [CLUEBUS]  # e.g. [sys.executable, "-m", "tests.…"] for a test-side harness
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Service:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the child's lifetime
        self.proc = subprocess.Popen(
            [*self.program, *self.args], env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        return self

    def lines(self) -> list[dict[str, Any]]:
        out = []
        for raw in self.log_path.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(raw))
            except ValueError:
                out.append({"event": raw, "raw": True})
        return out

    def wait_for(self, pattern: str, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while time.monotonic() < deadline:
            for line in self.lines():
                if regex.search(str(line.get("event", ""))):
                    return line
            if self.proc and self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited ({self.proc.returncode}): {self.tail()}")
            time.sleep(0.2)
        raise AssertionError(f"{self.name}: no log line matching {pattern!r} in {timeout}s: {self.tail()}")

    def tail(self, n: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode if self.proc else None

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, sig)


def produce(bootstrap: str, records: Iterable[tuple[str, bytes | None, bytes]]) -> int:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    count = 0
    try:
        for topic, key, value in records:
            producer.send(topic, key=key, value=value)
            count += 1
        producer.flush(30)
    finally:
        producer.close()
    return count


def collect(
    bootstrap: str,
    topics: list[str],
    done: Callable[[list[Any]], bool],
    timeout: float = 60.0,
) -> list[Any]:
    """Read the topics from the beginning until ``done(messages)`` or the timeout."""
    consumer = KafkaConsumer(
        *topics, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest", enable_auto_commit=False
    )
    messages: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                messages.extend(records)
            if done(messages):
                return messages
    finally:
        consumer.close()
    return messages


def metric_value(port: int, name: str, labels: dict[str, str] | None = None) -> float | None:
    """One sample of a Prometheus exposition served by a service on localhost."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()  # noqa: S310
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in (labels or {}).items()):
                return sample.value
    return None


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except Exception as exc:  # noqa: BLE001 - the service may not be up yet
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met in {timeout}s (last: {last!r})")


def many_reports(n: int, names: tuple[str, ...] = ()) -> list[Any]:
    """``n`` distinct valid reports received now, cycling through the v1 examples (or ``names``)."""
    from datetime import UTC, datetime

    from schemas import parse_report
    from schemas.examples import load_examples
    from services.common.ids import uuid7

    examples = list(load_examples("v1", "reports").values())
    if names:
        examples = [load_examples("v1", "reports")[name] for name in names]
    out = []
    for i in range(n):
        data = dict(examples[i % len(examples)])
        data["report_id"] = uuid7()
        now = datetime.now(UTC)
        data["received_at"] = now.isoformat()  # clocks start now, as for a report just taken in
        data["reported_at"] = min(now, datetime.fromisoformat(data["reported_at"])).isoformat()
        data["source_ref"] = f"load-{i}-{data['report_id'][:8]}"
        out.append(parse_report(json.dumps(data)))
    return out


def adapter_env(service_env: dict[str, str], port: int) -> dict[str, str]:
    """An adapter on ``port`` with the demo tokens, plain HTTP on loopback, and a relay that
    retries within a second."""
    return {
        **service_env,
        "CLUEBUS_ADAPTER_PORT": str(port),
        "CLUEBUS_ADAPTER_RELAY_BACKOFF_MAX_S": "1",
        "CLUEBUS_ADAPTER_TOKENS_FILE": str(REPO / "deploy/adapters/demo-tokens.toml"),
        "CLUEBUS_ADAPTER_PLAIN_HTTP": "true",
    }


def collect_as(settings: Any, topic: str, done: Callable[[list[bytes]], bool], timeout: float = 30.0) -> list[bytes]:
    """The values of ``topic`` read as the principal of ``settings`` (secure profile), until ``done(values)``."""
    from services.common import kafka as clients

    consumer = clients.consumer(settings, topic, group_id=None)
    values: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not done(values):
            for records in consumer.poll(timeout_ms=500).values():
                values.extend(r.value for r in records)
    finally:
        consumer.close()
    return values


def records_held(bootstrap: str, topics: list[str]) -> int:
    """How many records the topics hold, from their offsets (no record read)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    try:
        tps = [TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()]
        ends, starts = consumer.end_offsets(tps), consumer.beginning_offsets(tps)
        return sum(ends[tp] - starts[tp] for tp in tps)
    finally:
        consumer.close()
