"""Who may read and write what on the secure broker, observed with real clients.

Every refusal must be an authorization or authentication error that arrives at
once, not a timeout.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
import uuid

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka import errors as aio_errors
from aiokafka.conn import create_conn
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from kafka import KafkaAdminClient
from kafka.errors import (
    GroupAuthorizationFailedError,
    KafkaError,
    TopicAuthorizationFailedError,
)

from schemas.enums import Source
from services.common import kafka as clients
from services.common.kafka import KafkaUnavailable

from .helpers import consume_key, fetch_assigned, fetch_subscribed, produce, refused

SOURCES = [s.value for s in Source]


# --- departments -------------------------------------------------------------------------------
def test_police_reads_its_own_referrals(secure_bus):
    names, key = secure_bus.names, uuid.uuid4().hex.encode()
    produce(secure_bus.settings("router"), names.referral("police"), b"to police", key)
    police = secure_bus.settings("dept-police")
    got = consume_key(police, names.referral("police"), names.app_id("inbox-police"), key)
    assert got == b"to police"
    produce(police, names.acks, b"received", key)  # and acknowledges


def test_police_cannot_read_education_referrals(secure_bus):
    names, police = secure_bus.names, secure_bus.settings("dept-police")
    education = names.referral("education")
    refused(TopicAuthorizationFailedError, fetch_assigned, police, education, names.app_id("inbox-police"))
    # Nor through the education inbox's group.
    refused(GroupAuthorizationFailedError, fetch_subscribed, police, education, names.app_id("inbox-education"))


def test_police_cannot_read_education_referrals_with_aiokafka(secure_bus):
    names = secure_bus.names
    credentials = clients.faust_broker_credentials(secure_bus.settings("dept-police"))
    auth = credentials_to_aiokafka_auth(credentials)

    async def subscribe():
        consumer = AIOKafkaConsumer(
            names.referral("education"),
            group_id=names.app_id("inbox-police"),
            bootstrap_servers=secure_bus.broker.bootstrap,
            **auth,
        )
        await consumer.start()
        try:
            await asyncio.wait_for(consumer.getmany(timeout_ms=3000), 8)
        finally:
            await consumer.stop()

    refused(aio_errors.TopicAuthorizationFailedError, asyncio.run, subscribe())


@pytest.mark.parametrize("source", SOURCES)
def test_police_cannot_read_reports(secure_bus, source):
    names = secure_bus.names
    refused(
        TopicAuthorizationFailedError,
        fetch_assigned,
        secure_bus.settings("dept-police"),
        names.report(source),
        names.app_id("inbox-police"),
    )


def test_departments_cannot_write_referrals_or_reports(secure_bus):
    names, police = secure_bus.names, secure_bus.settings("dept-police")
    for topic in (
        names.referral("education"),
        names.referral("police"),
        names.report("school"),
        names.decisions,
        names.status,
    ):
        refused(TopicAuthorizationFailedError, produce, police, topic, b"forged")


# --- adapters ----------------------------------------------------------------------------------
def test_adapter_writes_its_own_report_topic_idempotently(secure_bus):
    # Only WRITE on its topic: enough for Kafka 4.1 to grant the idempotent producer an id.
    meta = produce(secure_bus.settings("adapter-school"), secure_bus.names.report("school"), b"r")
    assert meta.offset >= 0


def test_adapter_cannot_write_another_sectors_topic(secure_bus):
    names, school = secure_bus.names, secure_bus.settings("adapter-school")
    for source in set(SOURCES) - {"school"}:
        refused(TopicAuthorizationFailedError, produce, school, names.report(source), b"forged")
    refused(TopicAuthorizationFailedError, produce, school, names.referral("police"), b"forged")


def test_adapter_cannot_read_reports_or_referrals(secure_bus):
    names, school = secure_bus.names, secure_bus.settings("adapter-school")
    group = names.app_id("adapter-school-status")
    for topic in (names.report("school"), names.referral("education")):
        refused(TopicAuthorizationFailedError, fetch_assigned, school, topic, group)


# --- unauthenticated clients ----------------------------------------------------------------------
def _request(api_key: int, version: int, body: bytes = b"") -> bytes:
    client_id = b"probe"
    message = struct.pack(">hhih", api_key, version, 7, len(client_id)) + client_id + body
    return struct.pack(">i", len(message)) + message


def _answer(sock) -> bytes:
    try:
        return sock.recv(4096)
    except (ConnectionResetError, ssl.SSLError):
        return b""


def test_plaintext_client_gets_no_kafka_answer(secure_bus):
    host, port = secure_bus.broker.host, secure_bus.broker.port
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(_request(18, 0))  # ApiVersions v0, in clear
        answer = _answer(sock)
    # A TLS alert (record type 21) or a closed connection; never a Kafka response.
    assert answer == b"" or answer[0] == 21, answer[:16]
    refused(
        KafkaError,
        lambda: KafkaAdminClient(
            bootstrap_servers=secure_bus.broker.bootstrap, bootstrap_timeout_ms=2000
        ).list_topics(),
    )


def test_tls_without_sasl_is_refused(secure_bus):
    context = ssl.create_default_context(cafile=str(secure_bus.broker.ca_file))
    host, port = secure_bus.broker.host, secure_bus.broker.port
    with (
        socket.create_connection((host, port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=host) as sock,
    ):
        sock.sendall(_request(3, 0, struct.pack(">i", 0)))  # Metadata before authenticating
        assert _answer(sock) == b""  # the broker hangs up


@pytest.mark.parametrize("user", ["dept-police", "admin", "nobody"])
def test_wrong_password_is_refused(secure_bus, user):
    settings = secure_bus.settings(user, password="not-the-password-" + "x" * 16)
    auth = credentials_to_aiokafka_auth(clients.faust_broker_credentials(settings))

    async def connect():
        conn = await create_conn(secure_bus.broker.host, secure_bus.broker.port, **auth)
        conn.close()

    error = refused(aio_errors.SaslAuthenticationFailed, asyncio.run, connect())
    assert "invalid credentials" in str(error)
    # kafka-python sees only a hang-up; cluebus's message says what may be wrong.
    message = str(refused(KafkaUnavailable, clients.admin, settings.model_copy(update={"bootstrap_timeout_ms": 2000})))
    assert f"refused user '{user}'" in message
