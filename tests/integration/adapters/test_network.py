"""The adapter on a real socket: TLS, mutual TLS, slow clients, the cap, rate limits (no Kafka needed).

Each test serves one hospital adapter (relay off) with uvicorn and the guarded protocol
in a thread, with certificates from the local CA, and talks to it as a client would.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from schemas import Source
from services.adapters.app import create_app
from services.adapters.runtime import AdapterRuntime
from services.adapters.server import build_server
from services.adapters.settings import AdapterSettings
from services.adapters.tls_dev import DevTLS, make_dev_tls
from services.common.settings import TopicSettings

from ...unit.adapters.fakes import NoKafka
from ...unit.adapters.support import auth, submission, system_for
from ..support import free_port

H = Source.hospital


@pytest.fixture(scope="module")
def tls(tmp_path_factory) -> DevTLS:
    return make_dev_tls(tmp_path_factory.mktemp("tls"), [system_for(H, 1), system_for(H, 2)])


@pytest.fixture(scope="module")
def stranger(tmp_path_factory) -> DevTLS:
    """Certificates from another CA, for the same system name."""
    return make_dev_tls(tmp_path_factory.mktemp("other-ca"), [system_for(H, 1)])


class Served:
    def __init__(self, url: str, port: int, app: Any, tls: DevTLS | None) -> None:
        self.url, self.port, self.app, self.tls = url, port, app, tls

    def rejects(self, reason: str) -> float:
        return self.app.state.adapter.metrics.rejects.labels(source="hospital", reason=reason)._value.get()

    def client(self, system: int | None = None, **kw: Any) -> httpx.Client:
        cert = self.tls.client(system_for(H, system)) if system else None
        verify = ssl.create_default_context(cafile=self.tls.ca) if self.tls else False
        if cert:
            verify.load_cert_chain(*cert)
        return httpx.Client(base_url=self.url, verify=verify, timeout=10, **kw)

    def raw(self, system: int | None = 1) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        if self.tls is None:
            return sock
        ctx = ssl.create_default_context(cafile=self.tls.ca)
        if system:
            ctx.load_cert_chain(*self.tls.client(system_for(H, system)))
        return ctx.wrap_socket(sock, server_hostname="localhost")


@pytest.fixture
def serve(tmp_path: Path, tokens_file: Path) -> Iterator[Callable[..., Served]]:
    servers: list[tuple[Any, threading.Thread]] = []

    def start(tls: DevTLS | None, mutual: bool = False, **overrides: Any) -> Served:
        tls_settings: dict[str, Any] = {"plain_http": True}
        if tls is not None:
            tls_settings = {"tls_certfile": tls.cert, "tls_keyfile": tls.key}
            if mutual:
                tls_settings["tls_client_cafile"] = tls.ca
        settings = AdapterSettings(
            tokens_file=tokens_file, outbox_dir=tmp_path / f"ob-{len(servers)}", **tls_settings, **overrides
        )
        app = create_app(AdapterRuntime(H, settings, kafka=NoKafka(), topic_settings=TopicSettings(prefix="net")))
        port = free_port()
        server = build_server(app, settings, app.state.adapter.metrics, port, log_level="warning")
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        servers.append((server, thread))
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "the adapter did not start"
            time.sleep(0.02)
        scheme = "https" if tls else "http"
        return Served(f"{scheme}://localhost:{port}", port, app, tls)

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(15)


def post(client: httpx.Client, ref: str, system: int = 1) -> httpx.Response:
    return client.post("/v1/reports", json=submission(H, ref), headers=auth(H, system))


# -- TLS --------------------------------------------------------------------------------------------
def test_https_serves_and_plain_http_is_refused(serve, tls):
    adapter = serve(tls)
    with adapter.client() as client:
        assert post(client, "tls-1").status_code == 202
    with pytest.raises(httpx.HTTPError):
        httpx.post(f"http://127.0.0.1:{adapter.port}/v1/reports", json=submission(H, "plain"), headers=auth(H))
    deadline = time.monotonic() + 5  # the server notes the failed handshake after the client gave up
    while adapter.rejects("tls_handshake") < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert adapter.rejects("tls_handshake") >= 1
    old = ssl.create_default_context(cafile=tls.ca)
    old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises((ssl.SSLError, OSError)):
        old.wrap_socket(socket.create_connection(("127.0.0.1", adapter.port), timeout=5), server_hostname="localhost")
    assert adapter.app.state.adapter.outbox.backlog == 1


def test_mutual_tls_binds_the_certificate_to_the_tokens_system(serve, tls, stranger):
    adapter = serve(tls, mutual=True)
    with adapter.client(system=1) as client:
        assert post(client, "mtls-1").status_code == 202
        other = post(client, "mtls-2", system=2)  # system 2's token over system 1's certificate
        assert other.status_code == 403 and other.json()["error"] == "certificate_mismatch"
        assert system_for(H, 2) not in other.text
    with adapter.client() as client, pytest.raises(httpx.HTTPError):  # no client certificate
        post(client, "mtls-3")
    foreign = ssl.create_default_context(cafile=tls.ca)
    foreign.load_cert_chain(*stranger.client(system_for(H, 1)))  # right name, another CA
    with httpx.Client(base_url=adapter.url, verify=foreign, timeout=10) as client, pytest.raises(httpx.HTTPError):
        post(client, "mtls-4")
    assert adapter.rejects("certificate_mismatch") == 1
    assert adapter.app.state.adapter.outbox.backlog == 1


def test_no_tls_settings_is_an_error_unless_plain_http_is_asked_for(tokens_file):
    from services.adapters.server import TLSSettingsError, tls_context

    with pytest.raises(TLSSettingsError, match="PLAIN_HTTP"):
        tls_context(AdapterSettings(tokens_file=tokens_file))
    assert tls_context(AdapterSettings(tokens_file=tokens_file, plain_http=True)) is None


# -- slow clients -----------------------------------------------------------------------------------
def _closed_after(sock: socket.socket, pieces: list[tuple[bytes, float]]) -> tuple[float, bytes]:
    """Seconds until the server answers and closes while ``pieces`` (bytes, then a pause) are
    sent; what it answered.

    Sending and reading happen in this one thread: an ``ssl.SSLSocket`` is not safe to read in
    one thread while another writes to it. An earlier version did that, and with TLS 1.3 (the
    server's session ticket arriving as the reader waited) the writer's headers sometimes
    never left: the server rightly answered ``header_timeout`` to a client that only seemed to
    have sent them (seen in two full runs and in about one of six runs of this test alone).
    """
    started = time.monotonic()
    answer = b""
    sock.settimeout(0.05)

    def answered_within(seconds: float) -> bool:
        nonlocal answer
        end = time.monotonic() + seconds
        while True:
            try:
                chunk = sock.recv(4096)
            except TimeoutError:
                chunk = None
            except (OSError, ssl.SSLError):
                return True
            if chunk == b"":
                return True
            if chunk:
                answer += chunk
            if time.monotonic() >= end:
                return False

    for data, pause in pieces:
        try:
            sock.sendall(data)
        except (OSError, ssl.SSLError):
            break
        if answered_within(pause):
            return time.monotonic() - started, answer
    answered_within(60.0)
    return time.monotonic() - started, answer


_SLOW_HEADERS = [
    (bytes([byte]), 0.1)
    for byte in b"POST /v1/reports HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
]


def _slow_body() -> list[tuple[bytes, float]]:
    head = "POST /v1/reports HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
    head += f"Authorization: {auth(H)['Authorization']}\r\nContent-Length: 1000\r\n\r\n"
    return [(head.encode() + b'{"source_r', 60.0)]  # 10 of the 1,000 bytes announced, then nothing


@pytest.mark.parametrize("secure", [True, False], ids=["tls", "plain"])
def test_slow_header_and_slow_body_are_cut_off_while_normal_posts_go_on(serve, tls, secure):
    adapter = serve(tls if secure else None, header_timeout_s=1.5, body_timeout_s=1.5)
    with ThreadPoolExecutor(4) as pool, adapter.client() as client:
        slow_header = pool.submit(_closed_after, adapter.raw(), _SLOW_HEADERS)
        slow_body = pool.submit(_closed_after, adapter.raw(), _slow_body())
        statuses = []
        while not (slow_header.done() and slow_body.done()):
            statuses.append(post(client, f"during-{secure}-{len(statuses)}").status_code)
            time.sleep(0.05)
        (header_s, header_answer), (body_s, body_answer) = slow_header.result(), slow_body.result()
    print(f"cut off after {header_s:.2f} s (headers) and {body_s:.2f} s (body); {len(statuses)} posts meanwhile")
    assert 1.0 <= header_s < 3.5 and b" 408 " in header_answer and b"header_timeout" in header_answer
    assert 1.0 <= body_s < 3.5 and b" 408 " in body_answer and b"body_timeout" in body_answer
    assert statuses and set(statuses) == {202}
    assert adapter.rejects("header_timeout") == 1 and adapter.rejects("body_timeout") == 1


def test_plain_http_over_the_cap_gets_503(serve):
    adapter = serve(None, max_unfinished_requests=4, header_timeout_s=3)
    held = [adapter.raw() for _ in range(4)]
    time.sleep(0.3)
    extra = adapter.raw()
    answer = extra.recv(4096)
    assert b" 503 " in answer and b"over_capacity" in answer and b"retry-after" in answer.lower()
    for sock in held + [extra]:
        sock.close()


def test_unfinished_requests_are_capped(serve, tls):
    adapter = serve(tls, max_unfinished_requests=8, header_timeout_s=3, body_timeout_s=3)
    held = [adapter.raw() for _ in range(8)]
    for sock in held:
        sock.send(b"POST /v1/reports HTTP/1.1\r\n")  # and nothing more
    time.sleep(0.3)
    with pytest.raises(OSError):  # before its TLS handshake, one more is closed at once
        adapter.raw().recv(1)
    assert adapter.rejects("over_capacity") == 1
    time.sleep(3.5)  # the held ones are cut off; capacity comes back
    with adapter.client() as client:
        assert post(client, "after-cap").status_code == 202
    for sock in held:
        sock.close()


# -- rate limits --------------------------------------------------------------------------------------
def test_a_burst_of_bad_tokens_gets_429(serve, tls):
    adapter = serve(tls, auth_failure_burst=20, auth_failures_per_minute=6)
    with adapter.client() as client:
        answers = [
            client.post("/v1/reports", json={}, headers={"Authorization": f"Bearer guess-{i:04d}-xxxxxxxx"})
            for i in range(60)
        ]
        codes = [a.status_code for a in answers]
        assert codes[:20] == [401] * 20 and set(codes[20:]) == {429}
        assert int(answers[-1].headers["retry-after"]) >= 1 and answers[-1].json()["error"] == "auth_throttled"
        # the address is throttled as a whole, a good token included, until the bucket refills
        assert post(client, "after-burst").status_code == 429
    assert adapter.rejects("unauthorized") == 20 and adapter.rejects("auth_throttled") == 41


def test_per_system_rate_limit(serve, tls):
    adapter = serve(tls, burst_per_system=5, rate_per_system=0.5)
    with adapter.client() as client:
        codes = [post(client, f"rate-{i}").status_code for i in range(8)]
        assert codes == [202] * 5 + [429] * 3
        limited = post(client, "rate-9")
        assert limited.json()["error"] == "rate_limited" and int(limited.headers["retry-after"]) >= 1
        assert post(client, "rate-10", system=2).status_code == 202  # another system has its own bucket
    with adapter.client() as client:  # /metrics and /healthz ask for no client certificate
        metrics = client.get("/metrics").text
        health = client.get("/healthz").text
    assert 'cluebus_adapter_rejects_total{reason="rate_limited",source="hospital"} 4.0' in metrics
    assert json.loads(health)["status"] == "ok"
