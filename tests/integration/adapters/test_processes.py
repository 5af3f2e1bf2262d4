"""Adapter processes: SIGKILL after a 202, a broker outage, the sample client."""

from __future__ import annotations

import subprocess
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from schemas import Source
from services.common.settings import KafkaSettings
from services.common.topic_admin import ensure_topics, topic_specs

from ...unit.adapters.support import auth, submission, token_for
from ..support import CLUEBUS, collect, free_port, free_port_pair, wait_until
from .conftest import read_reports


def post(url: str, source: Source, ref: str) -> dict:
    r = httpx.post(f"{url}/v1/reports", json=submission(source, ref), headers=auth(source), timeout=30)
    assert r.status_code == 202, r.text
    return r.json()


def test_reports_accepted_without_kafka_survive_sigkill(start_adapter, adapter_env, kafka_bootstrap, topics):
    """202s while Kafka is unreachable, then SIGKILL: the restarted adapter publishes every one."""
    port = free_port()
    unreachable = {
        **adapter_env,
        "CLUEBUS_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",  # nothing listens there
        "CLUEBUS_KAFKA_BOOTSTRAP_TIMEOUT_MS": "500",
    }
    service, url = start_adapter(Source.hospital, unreachable, port=port, name="adapter-offline")
    receipts = [post(url, Source.hospital, f"kill-{i}") for i in range(10)]
    assert httpx.get(f"{url}/readyz").json()["checks"]["kafka"] is False
    service.kill()
    service, url = start_adapter(Source.hospital, adapter_env, port=port, name="adapter-restarted")
    expected = {r["report_id"] for r in receipts}
    reports = read_reports(kafka_bootstrap, topics.report("hospital"), expected, settle=1.0)
    assert Counter(r.report_id for r in reports) == Counter(expected)  # each exactly once
    # the restarted adapter still knows them: a retry is a duplicate
    assert post(url, Source.hospital, "kill-3") == {**receipts[3], "duplicate": True}


def test_sigkill_right_after_202_with_kafka_up(start_adapter, adapter_env, kafka_bootstrap, topics):
    port = free_port()
    service, url = start_adapter(Source.venue, adapter_env, port=port, name="adapter-venue-1")
    with ThreadPoolExecutor(8) as pool:
        receipts = list(pool.map(lambda i: post(url, Source.venue, f"burst-{i}"), range(40)))
    service.kill()  # at once after the last 202
    start_adapter(Source.venue, adapter_env, port=port, name="adapter-venue-2")
    expected = {r["report_id"] for r in receipts}
    reports = read_reports(kafka_bootstrap, topics.report("venue"), expected)
    assert expected <= {r.report_id for r in reports}


@pytest.mark.slow
def test_broker_outage_keeps_accepting_and_drains_exactly_once(
    start_adapter, adapter_env, topic_settings, tmp_path: Path
):
    from services.devkafka.broker import LocalBroker

    broker = LocalBroker(port=free_port_pair(), run_dir=tmp_path / "broker")
    broker.up()
    try:
        ensure_topics(KafkaSettings(bootstrap=broker.bootstrap), topic_specs(topic_settings))
        env = {**adapter_env, "CLUEBUS_KAFKA_BOOTSTRAP": broker.bootstrap}
        _, url = start_adapter(Source.school, env)
        before = [post(url, Source.school, f"before-{i}") for i in range(5)]
        wait_until(lambda: httpx.get(f"{url}/readyz").json()["backlog"] == 0, 20)

        broker.down()
        during = [post(url, Source.school, f"during-{i}") for i in range(20)]  # still 202
        state = wait_until(lambda: (s := httpx.get(f"{url}/readyz")).status_code == 503 and s.json(), 20)
        assert state["checks"]["kafka"] is False and state["backlog"] == 20
        metrics = httpx.get(f"{url}/metrics").text
        assert 'cluebus_adapter_outbox_backlog{source="school"} 20.0' in metrics
        assert 'cluebus_adapter_kafka_up{source="school"} 0.0' in metrics

        broker.up()
        after = [post(url, Source.school, f"after-{i}") for i in range(5)]
        expected = [r["report_id"] for r in before + during + after]
        reports = read_reports(broker.bootstrap, topic_settings.names.report("school"), set(expected), settle=1.0)
        counts = Counter(r.report_id for r in reports)
        assert counts == Counter(expected), "every accepted report exactly once"
        # drained in order: within each partition, offsets follow the order of acceptance
        messages = collect(
            broker.bootstrap,
            [topic_settings.names.report("school")],
            lambda m: len(m) >= len(expected),
            timeout=30,
        )
        by_partition: dict[int, list[int]] = {}
        for m in sorted(messages, key=lambda m: (m.partition, m.offset)):
            by_partition.setdefault(m.partition, []).append(expected.index(m.key.decode()))
        assert all(v == sorted(v) for v in by_partition.values()), by_partition
        wait_until(lambda: httpx.get(f"{url}/readyz").status_code == 200, 30)
    finally:
        broker.down()


def test_sample_client_sends_and_reads_the_receipt(start_adapter, adapter_env, kafka_bootstrap, topics, tmp_path):
    _, url = start_adapter(Source.labour, adapter_env)
    env = {**adapter_env, "CLUEBUS_SEND_TOKEN": token_for(Source.labour)}
    out = subprocess.run(
        [CLUEBUS, "send", "labour", "--example", "--url", url],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    import json

    receipt = json.loads(out.stdout)
    assert receipt["duplicate"] is False
    example = Path(__file__).resolve().parents[3] / "deploy" / "adapters" / "examples" / "labour.json"
    first = subprocess.run(
        [CLUEBUS, "send", "labour", str(example), "--url", url],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    again = subprocess.run(
        [CLUEBUS, "send", "labour", str(example), "--url", url],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert json.loads(again.stdout) == {**json.loads(first.stdout), "duplicate": True}
    wrong = subprocess.run(
        [CLUEBUS, "send", "labour", str(example), "--url", url, "--token", "nope"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert wrong.returncode == 1 and "unauthorized" in wrong.stdout
    read_reports(kafka_bootstrap, topics.report("labour"), {receipt["report_id"]})
    shown = subprocess.run(
        [CLUEBUS, "adapter", "receipt", "labour", receipt["report_id"], "--url", url],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0 and json.loads(shown.stdout)["published"] is True
