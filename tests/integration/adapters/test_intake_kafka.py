"""Adapters in-process with their real relay and status follower against the real broker."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from schemas import SUBMISSION_MODELS, ReportStatus, Source, referral_id_for
from schemas.examples import load_examples
from services.adapters.app import create_app
from services.adapters.runtime import AdapterRuntime, KafkaClients
from services.adapters.settings import AdapterSettings
from services.common import kafka as clients

from ...unit.adapters.support import ENVELOPE, auth, submission, submissions, system_for
from ..support import wait_until
from .conftest import read_reports


@pytest.fixture
def live(
    kafka_settings, topic_settings, topics, tokens_file: Path, tmp_path: Path
) -> Iterator[Callable[..., TestClient]]:
    opened: list[TestClient] = []

    def make(source: Source | str, outbox: str | None = None, **overrides: object) -> TestClient:
        settings = AdapterSettings(
            tokens_file=tokens_file,
            outbox_dir=tmp_path / (outbox or f"ob-{source}"),
            relay_backoff_max_s=1,
            **overrides,
        )
        kafka = KafkaClients(kafka_settings, source, settings)
        app = create_app(AdapterRuntime(source, settings, kafka=kafka, topic_settings=topic_settings))
        client = TestClient(app)
        client.__enter__()
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


def post(client: TestClient, body: dict, source: Source, **headers: str):
    return client.post("/v1/reports", json=body, headers={**auth(source), **headers})


def post_batch(client: TestClient, rows: list[dict], source: Source) -> set[str]:
    """POST rows as NDJSON to the batch endpoint; the report ids it accepted."""
    r = client.post(
        "/v1/reports/batch",
        content="\n".join(json.dumps(x) for x in rows).encode(),
        headers={"Content-Type": "application/x-ndjson", **auth(source)},
    )
    return {x["report_id"] for x in r.json()["results"] if x["status"] == "accepted"}


@pytest.mark.parametrize("source", list(Source))
def test_post_becomes_a_typed_event_on_the_sector_topic(live, kafka_bootstrap, topics, source):
    client = live(source)
    sent = {}
    for i, body in enumerate(submissions(source)[:2]):
        body = {**body, "source_ref": f"live-{source.value}-{i}"}
        r = post(client, body, source)
        assert r.status_code == 202, r.text
        sent[r.json()["report_id"]] = (body, r.json())
    reports = read_reports(kafka_bootstrap, topics.report(source.value), set(sent))
    assert {r.report_id for r in reports} == set(sent)
    for report in reports:
        body, receipt = sent[report.report_id]
        assert report.source == source and report.source_system == system_for(source)
        assert report.received_at.isoformat().replace("+00:00", "Z") == receipt["received_at"]
        # the event carries exactly the validated submission, plus the envelope
        event = report.model_dump(mode="json")
        expected = SUBMISSION_MODELS[source].model_validate(body).model_dump(mode="json")
        assert {k: v for k, v in event.items() if k not in ENVELOPE} == expected
    # published: the receipts say so, metrics saw the latency, readiness is green. The relay marks
    # rows sent before it observes their latency (relay.py), and the two may go out in two rounds:
    # so wait for both receipts, then for the metric (asserted at once, it failed under load).
    for rid in sent:
        wait_until(lambda rid=rid: client.get(f"/v1/reports/{rid}", headers=auth(source)).json()["published"], 10)
    assert client.get("/readyz").status_code == 200
    count = f'cluebus_adapter_publish_latency_seconds_count{{source="{source.value}"}} 2.0'
    wait_until(lambda: count in client.get("/metrics").text, 10)


def test_same_source_ref_twice_is_one_event(live, kafka_bootstrap, topics):
    client = live(Source.labour)
    body = submission(Source.labour, "twice-1")
    first = post(client, body, Source.labour).json()
    second = post(client, body, Source.labour).json()
    keyed = post(client, submission(Source.labour, "twice-2"), Source.labour, **{"Idempotency-Key": "k1"}).json()
    keyed2 = post(client, submission(Source.labour, "twice-3"), Source.labour, **{"Idempotency-Key": "k1"}).json()
    assert second == {**first, "duplicate": True}
    assert keyed2 == {**keyed, "duplicate": True}
    reports = read_reports(
        kafka_bootstrap,
        topics.report("labour"),
        {first["report_id"], keyed["report_id"]},
        settle=2.0,
    )
    assert sorted(r.report_id for r in reports) == sorted([first["report_id"], keyed["report_id"]])


def test_batch_rows_become_events(live, kafka_bootstrap, topics):
    client = live(Source.marriage)
    rows = [submission(Source.marriage, f"b-{i}") for i in range(4)]
    rows[2]["category"] = "nonsense"
    accepted = post_batch(client, rows, Source.marriage)
    assert len(accepted) == 3
    reports = read_reports(kafka_bootstrap, topics.report("marriage"), accepted)
    assert {r.source_ref for r in reports} == {"b-0", "b-1", "b-3"}


def _status(report_id: str, source: Source, system: str, seq: int) -> bytes:
    data = load_examples("v1", "events")["report-status"]
    departments = [{**d, "referral_id": referral_id_for(report_id, d["department"])} for d in data["departments"]]
    status = ReportStatus.model_validate(
        {
            **data,
            "report_id": report_id,
            "source": source.value,
            "source_system": system,
            "seq": seq,
            "departments": departments,
        }
    )
    return status.model_dump_json().encode()


def test_status_per_department_from_the_status_topic_and_resume(live, kafka_settings, topics):
    client = live(Source.school, outbox="ob-status")
    rid = post(client, submission(Source.school, "st-1"), Source.school).json()["report_id"]
    # A report's statuses follow its publication (the router routes only what the relay sent).
    # Written at once, they once arrived while the relay was still retrying its first send on a
    # fresh topic (NotLeaderForPartitionError), and the view said published=False.
    wait_until(lambda: client.get(f"/v1/reports/{rid}", headers=auth(Source.school)).json()["published"], 20)
    producer = clients.producer(kafka_settings)
    try:
        for seq in (1, 3, 2):  # out of order: the highest seq is kept
            producer.send(
                topics.status,
                key=rid.encode(),
                value=_status(rid, Source.school, system_for(Source.school), seq),
            )
        # a status of another source's report is not this adapter's business
        producer.send(
            topics.status,
            key=b"x",
            value=_status("01890000-0000-7000-8000-0000000000aa", Source.venue, "venue-sys-1", 9),
        )
        producer.send(topics.status, key=b"y", value=b"not a status")
        producer.flush(10)
    finally:
        producer.close()

    def shown():
        body = client.get(f"/v1/reports/{rid}", headers=auth(Source.school)).json()
        return body["status"] and body["status"]["seq"] == 3 and body

    body = wait_until(shown, 20)
    assert body["published"] is True
    assert {d["department"] for d in body["status"]["departments"]} >= {"police", "education"}
    assert all(d["referral_id"] == referral_id_for(rid, d["department"]) for d in body["status"]["departments"])
    rt = client.app.state.adapter
    assert rt.outbox.counts()["statuses"] == 1
    client.__exit__(None, None, None)

    # Restarted on the same outbox: resumes from the stored offsets, reads nothing again.
    again = live(Source.school, outbox="ob-status")
    rt2 = again.app.state.adapter
    wait_until(lambda: rt2.status.ready, 20)
    time.sleep(1.5)  # a few polls
    assert rt2.status.stored == 0 and rt2.status.skipped == 0
    assert again.get(f"/v1/reports/{rid}", headers=auth(Source.school)).json()["status"]["seq"] == 3


def test_a_backlog_goes_out_in_full_producer_batches(live, kafka_bootstrap, topics):
    """A round of reports fills a few large batches, not one 16 KiB batch (and one wake-up
    of the producer's network thread) per handful of reports: that cut the network thread's
    CPU per report by ~40% under the intake benchmark."""
    client = live(Source.hospital)
    rows = [submission(Source.hospital, f"full-{i}") for i in range(300)]
    accepted = post_batch(client, rows, Source.hospital)
    assert len(accepted) == 300
    reports = read_reports(kafka_bootstrap, topics.report("hospital"), accepted)
    assert len(reports) == 300
    metrics = client.app.state.adapter.relay._producer.metrics()["producer-metrics"]
    record_size = metrics["record-size-avg"]
    print(f"record-size-avg={record_size:.0f} batch-size-avg={metrics['batch-size-avg']:.0f}")
    # kafka-python's default 16 KiB batches would hold at most 16384 / record_size records.
    assert metrics["batch-size-avg"] > 2 * 16384, metrics["batch-size-avg"]
