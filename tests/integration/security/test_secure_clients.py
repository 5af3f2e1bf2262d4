"""aiokafka and faust authenticate over SASL_SSL and work within the router's grants."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from services.common import kafka as clients

from .helpers import consume_key, make_bus, produce


def test_aiokafka_round_trip_as_router(secure_bus):
    """adapter -> report -> router (aiokafka, idempotent) -> police referral -> police inbox."""
    names, key = secure_bus.names, uuid.uuid4().hex.encode()
    produce(secure_bus.settings("adapter-hospital"), names.report("hospital"), b"report", key)
    credentials = clients.faust_broker_credentials(secure_bus.settings("router"))
    auth = credentials_to_aiokafka_auth(credentials)
    assert auth["security_protocol"] == "SASL_SSL" and auth["sasl_mechanism"] == "SCRAM-SHA-512"

    async def route() -> bytes:
        consumer = AIOKafkaConsumer(
            names.report("hospital"),
            group_id=names.app_id("router"),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            bootstrap_servers=secure_bus.broker.bootstrap,
            **auth,
        )
        producer = AIOKafkaProducer(
            bootstrap_servers=secure_bus.broker.bootstrap, acks="all", enable_idempotence=True, **auth
        )
        await consumer.start()
        await producer.start()
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                for records in (await consumer.getmany(timeout_ms=1000)).values():
                    for record in records:
                        if record.key == key:
                            await producer.send_and_wait(
                                names.referral("police"), key=key, value=b"referral:" + record.value
                            )
                            await consumer.commit()
                            return record.value
            raise AssertionError("the report did not reach the router")
        finally:
            await producer.stop()
            await consumer.stop()

    assert asyncio.run(route()) == b"report"
    police = secure_bus.settings("dept-police")
    got = consume_key(police, names.referral("police"), names.app_id("inbox-police"), key)
    assert got == b"referral:report"


FAUST_APP = textwrap.dedent("""
    from pathlib import Path
    from services.common import settings as cfg
    from services.common.streams.app import make_app

    topics = cfg.load(cfg.TopicSettings)
    names = topics.names
    app = make_app("router", cfg.load(cfg.KafkaSettings), topics, data_dir=Path("faust-data"))
    reports = app.topic(names.report("hospital"), key_serializer="raw", value_serializer="raw")
    referrals = app.topic(names.referral("police"), key_serializer="raw", value_serializer="raw")
    seen = app.Table("seen", default=int)  # a changelog topic <prefix>-router-seen-changelog

    @app.agent(reports)
    async def route(stream):
        async for key, value in stream.items():
            seen[key] += 1
            await referrals.send(key=key, value=b"faust:" + value)
            print(f"ROUTED {key.decode()}", flush=True)

    if __name__ == "__main__":
        app.main()
""")


def test_faust_router_runs_with_only_its_grants(secure_broker, tmp_path):
    """A faust worker as ``router`` creates its internal topics, keeps a table, routes."""
    bus = make_bus(secure_broker, tmp_path / "bus", departments=("police",))
    names, key = bus.names, uuid.uuid4().hex
    produce(bus.settings("adapter-hospital"), names.report("hospital"), b"report", key.encode())
    (tmp_path / "router_app.py").write_text(FAUST_APP)
    env = {
        **os.environ,
        **bus.admin_env,
        "CLUEBUS_KAFKA_USERNAME": "router",
        "CLUEBUS_KAFKA_PASSWORD_FILE": str(bus.secrets_dir / "router.password"),
        "PYTHONPATH": os.pathsep.join(sys.path),
        "PYTHONUNBUFFERED": "1",
    }
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "router_app.py", "worker", "-l", "info"],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while f"ROUTED {key}" not in log.read_text(errors="replace"):
            assert time.monotonic() < deadline, "the faust router did not route in 60s"
            text = log.read_text(errors="replace")
            assert worker.poll() is None and "Crashed" not in text, text[-3000:]
            time.sleep(0.5)
        text = log.read_text(errors="replace")
        assert f"ROUTED {key}" in text, text[-3000:]
        assert "Authenticated as router via SCRAM-SHA-512" in text
        assert "AuthorizationFailed" not in text and "AuthorizationException" not in text
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    admin = clients.admin(bus.settings("admin"))
    try:
        topics = set(admin.list_topics())
    finally:
        admin.close()
    router_id = names.app_id("router")
    assert {f"{router_id}-__assignor-__leader", f"{router_id}-seen-changelog"} <= topics
    got = consume_key(bus.settings("dept-police"), names.referral("police"), names.app_id("inbox-police"), key.encode())
    assert got == b"faust:report"
