"""Fault injection against the real broker: nothing accepted is lost (issue 7).

Each test prints its counts (sent, accepted, routed, duplicates, lost); run with
``-s`` to see them. Randomness is seeded and the seed is printed, so a failure
can be replayed with ``CLUEBUS_FAULT_SEED``.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from kafka import KafkaProducer

from schemas import Referral, parse_report, referral_id_for
from services.common.settings import KafkaSettings
from services.common.topic_admin import ensure_topics, topic_specs
from services.rules import load_rules

from ..support import REPO, adapter_env, collect, free_port, free_port_pair, many_reports, wait_healthy


def expected_referrals(rules, reports) -> set[str]:  # type: ignore[no-untyped-def]
    return {referral_id_for(r.report_id, p.department) for r in reports for p in rules.plan(r, r.received_at).referrals}


def read_referrals(bootstrap: str, topics: list[str], expected: set[str], timeout: float) -> list[str]:
    messages = collect(
        bootstrap,
        topics,
        done=lambda ms: {Referral.model_validate_json(m.value).referral_id for m in ms} >= expected,
        timeout=timeout,
    )
    return [Referral.model_validate_json(m.value).referral_id for m in messages]


def report_counts(what: str, sent: int, accepted: int, expected: set[str], ids: list[str]) -> None:
    unique = set(ids)
    print(
        f"{what}: sent={sent} accepted={accepted} referrals_expected={len(expected)} routed={len(unique & expected)} "
        f"duplicates={len(ids) - len(unique)} lost={len(expected - unique)} unexpected={len(unique - expected)}"
    )


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_router_killed_20_times_under_steady_load_loses_nothing(
    kafka_bootstrap, bus, services, service_env, rules_file, rng
):
    """SIGKILL at random moments (some while starting, most while routing), 20 times."""
    rules = load_rules(rules_file)
    reports = many_reports(3000)
    stop = threading.Event()
    sent: list = []

    def steady_load() -> None:  # about 10 reports/s until the kills are over
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True)
        try:
            for i in range(0, len(reports), 2):
                if stop.is_set():
                    break
                batch = reports[i : i + 2]
                for r in batch:
                    producer.send(
                        bus.report(r.source.value), key=r.report_id.encode(), value=r.model_dump_json().encode()
                    )
                producer.flush(30)
                sent.extend(batch)
                time.sleep(0.2)
        finally:
            producer.close()

    # A killed member holds its partitions until its session expires: keep sessions short.
    service_env = {**service_env, "CLUEBUS_SESSION_TIMEOUT_S": "3"}
    loader = threading.Thread(target=steady_load, daemon=True)
    loader.start()
    kills = []
    try:
        for n in range(20):
            router = services(f"router-{n:02d}", ["router", "--metrics-port", "0"], service_env)
            if rng.random() < 0.25:
                moment = "starting"
                time.sleep(rng.uniform(0.5, 5.0))
            else:
                moment = "routing"
                try:
                    router.wait_for("report routed", timeout=45)
                except AssertionError:
                    moment = "waiting"  # no partitions yet (the previous member's session still open)
                time.sleep(rng.uniform(0.0, 2.5))
            router.kill()
            kills.append(moment)
    finally:
        stop.set()
        loader.join(timeout=60)
    # After the last kill every report sent must still be routed, by a survivor.
    expected = expected_referrals(rules, sent)
    survivor = services("router-final", ["router", "--metrics-port", "0"], service_env)
    ids = read_referrals(kafka_bootstrap, [bus.referral(d) for d in rules.departments], expected, timeout=180)
    report_counts("router SIGKILL x20", len(sent), len(sent), expected, ids)
    print(f"kill moments: {Counter(kills)}")
    assert len(kills) == 20 and kills.count("routing") >= 5
    assert set(ids) == expected, f"lost {len(expected - set(ids))}; survivor: {survivor.tail(20)}"


# --- intake faults: a report that got a 202 is routed ------------------------------------------

HOSPITAL = json.loads((REPO / "deploy/adapters/examples/hospital.json").read_text())


def body(ref: str) -> dict:
    return {**HOSPITAL, "source_ref": ref}


class Intake:
    """Posts reports concurrently and keeps every receipt (report_id) that came with a 202."""

    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token
        self.sent = 0
        self.accepted: dict[str, str] = {}  # source_ref -> report_id
        self.lock = threading.Lock()

    def post(self, ref: str) -> None:
        with self.lock:
            self.sent += 1
        try:
            answer = httpx.post(
                f"{self.url}/v1/reports", json=body(ref), timeout=10, headers={"Authorization": f"Bearer {self.token}"}
            )
        except httpx.HTTPError:
            return  # no answer: not accepted, the sender retries later (as a real system would)
        if answer.status_code == 202:
            with self.lock:
                self.accepted[ref] = answer.json()["report_id"]

    def run(self, refs: list[str], workers: int = 8) -> None:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(self.post, refs))


def _route_all(kafka: str, bus, rules_file: Path, intake: Intake, what: str) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    from services.common.ids import uuid7

    rules = load_rules(rules_file)
    now = datetime.now(UTC)
    sample = parse_report(
        json.dumps(
            {
                **body("x"),
                "source": "hospital",
                "source_system": "demo-hospital-sys",
                "report_id": uuid7(),
                "received_at": now.isoformat(),
            }
        )
    )
    departments = {p.department for p in rules.plan(sample, now).referrals}
    expected = {referral_id_for(rid, d) for rid in intake.accepted.values() for d in departments}
    ids = read_referrals(kafka, [bus.referral(d) for d in departments], expected, timeout=120)
    report_counts(what, intake.sent, len(intake.accepted), expected, ids)
    assert set(ids) >= expected, f"lost {len(expected - set(ids))} referrals of accepted reports"


def test_adapter_killed_during_intake_loses_no_accepted_report(
    kafka_bootstrap, bus, services, service_env, rules_file, rng
):
    port = free_port()
    env = adapter_env(service_env, port)
    url = f"http://127.0.0.1:{port}"
    services("router", ["router", "--metrics-port", "0"], service_env)
    intake = Intake(url, "demo-hospital-token")
    for round_ in range(3):
        adapter = services(f"adapter-{round_}", ["adapter", "hospital"], env)
        wait_healthy(url, timeout=60)
        refs = [f"kill-{round_}-{i}" for i in range(150)]
        before = len(intake.accepted)
        poster = threading.Thread(target=intake.run, args=(refs,))
        poster.start()
        deadline = time.monotonic() + 10
        while len(intake.accepted) < before + rng.randint(5, 60) and time.monotonic() < deadline:
            time.sleep(0.01)
        adapter.kill()  # mid-stream: requests in flight get no answer
        poster.join()
    services("adapter-final", ["adapter", "hospital"], env)  # drains what the killed ones stored
    wait_healthy(url, timeout=60)
    assert intake.sent > len(intake.accepted) > 0  # some posts really were cut off
    _route_all(kafka_bootstrap, bus, rules_file, intake, "adapter SIGKILL during intake")


def test_broker_stopped_and_restarted_during_intake_loses_no_accepted_report(
    services, service_env, rules_file, topic_settings, tmp_path, rng
):
    from services.devkafka.broker import LocalBroker

    broker = LocalBroker(port=free_port_pair(), run_dir=tmp_path / "broker")
    broker.up()
    router = adapter = None
    try:
        ensure_topics(KafkaSettings(bootstrap=broker.bootstrap), topic_specs(topic_settings, load_rules(rules_file)))
        env = {**service_env, "CLUEBUS_KAFKA_BOOTSTRAP": broker.bootstrap}
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        router = services("router", ["router", "--metrics-port", "0"], env)
        adapter = services("adapter", ["adapter", "hospital"], adapter_env(env, port))
        wait_healthy(url, timeout=60)
        intake = Intake(url, "demo-hospital-token")
        intake.post("warm-up")  # the bus is running and routing before the broker goes
        router.wait_for("report routed", timeout=90)
        poster = threading.Thread(target=intake.run, args=([f"outage-{i}" for i in range(400)], 4))
        poster.start()
        time.sleep(rng.uniform(0.5, 2.0))
        broker.down()  # while reports are arriving and being routed
        time.sleep(rng.uniform(1.0, 3.0))
        broker.up()
        poster.join()
        restarted = router.proc is not None and router.proc.poll() is not None
        if restarted:  # what its supervisor (systemd, compose `restart:`) does
            router = services("router-restarted", ["router", "--metrics-port", "0"], env)
        print(f"router exited during the outage and was restarted: {restarted}")
        assert len(intake.accepted) == intake.sent, "the adapter keeps accepting while Kafka is away"
        _route_all(broker.bootstrap, topic_settings.names, rules_file, intake, "broker restart during intake")
    finally:
        for service in (router, adapter):  # before their broker goes, so they stop cleanly
            if service is not None:
                service.stop()
        broker.down()
