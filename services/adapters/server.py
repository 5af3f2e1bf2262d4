"""Serving an adapter on a real network: TLS, client certificates, read deadlines, a cap on unfinished requests.

What uvicorn 0.54 does by itself (read in ``uvicorn/protocols/http/h11_impl.py`` and
``uvicorn/server.py`` before writing this):

* its only timer is the keep-alive one, armed *after* a response; a connection that
  never completes its headers is never cut (and the first byte of a request cancels
  the keep-alive timer, so headers sent a byte a second keep a connection for ever);
* nothing bounds the wait for a body: the app's ``receive()`` waits on the socket;
* ``limit_concurrency`` counts idle connections too and answers only once the headers
  have arrived, so it cannot stop a slowloris;
* the TLS handshake runs in ``loop.create_server(ssl=...)`` with asyncio's 60 s
  handshake timeout, before the protocol sees the connection;
* the ASGI scope carries no TLS information (no client certificate).

So :class:`GuardedH11Protocol`, a subclass of uvicorn's h11 protocol, takes the raw TCP
connection and does the rest itself:

* TLS with ``loop.start_tls`` (public asyncio API) inside its own deadline: the
  handshake and the headers together must arrive within ``header_timeout_s``;
  TLS 1.2 or newer only; with ``tls_client_cafile`` a client certificate signed by that
  CA is required, and the verified certificate is handed to the app in the request's
  ``state`` (``intake.PEER_CERT``), where it must match the token's system;
* after the headers, the body must arrive within ``body_timeout_s``; a cut-off request
  gets ``408`` and the connection is closed (the app, whose ``receive()`` then sees a
  disconnect, counts it as ``body_timeout``);
* at most ``max_unfinished_requests`` connections may be in a handshake, awaiting
  headers or body, or awaiting their answer; one more is answered ``503`` at once (or,
  before its TLS handshake, closed at once: it cannot read an answer yet).

Every refusal here is counted in ``cluebus_adapter_rejects_total{reason}``
(``header_timeout``, ``over_capacity``, ``tls_handshake``). With ``plain_http`` the
adapter speaks HTTP without TLS (the same deadlines), and says so in a warning.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from services.adapters.intake import CUT_OFF, PEER_CERT
from services.adapters.metrics import AdapterMetrics
from services.adapters.settings import AdapterSettings
from services.common.logging import get_logger

log = get_logger("cluebus.adapters")

UVICORN_OPTIONS: dict[str, Any] = {
    "log_config": None,
    "access_log": False,
    "server_header": False,
    "timeout_graceful_shutdown": 10,
    "backlog": 2048,
}


CLOSE_GRACE_S = 1.0  # a cut-off connection gets this long to take its 408 before it is aborted


class TLSSettingsError(ValueError):
    """TLS is neither configured nor explicitly turned off."""


def tls_context(settings: AdapterSettings) -> ssl.SSLContext | None:
    """The server's TLS context from the settings (None with ``plain_http``)."""
    if settings.plain_http:
        if settings.tls_certfile or settings.tls_client_cafile:
            raise TLSSettingsError("plain_http and tls_* settings exclude each other; choose one")
        return None
    if settings.tls_certfile is None or settings.tls_keyfile is None:
        raise TLSSettingsError(
            "the adapter serves HTTPS: set CLUEBUS_ADAPTER_TLS_CERTFILE and CLUEBUS_ADAPTER_TLS_KEYFILE "
            "(tls_certfile/tls_keyfile in [adapter]); for local development only, CLUEBUS_ADAPTER_PLAIN_HTTP=true"
        )
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(settings.tls_certfile, settings.tls_keyfile)
    if settings.tls_client_cafile is not None:
        ctx.load_verify_locations(cafile=settings.tls_client_cafile)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


class Guard:
    """What every connection of one server shares: the deadlines, the cap and its count."""

    def __init__(self, settings: AdapterSettings, metrics: AdapterMetrics, tls: ssl.SSLContext | None) -> None:
        self.header_timeout_s = settings.header_timeout_s
        self.body_timeout_s = settings.body_timeout_s
        self.max_unfinished = settings.max_unfinished_requests
        self.retry_after_s = settings.retry_after_s
        self.metrics = metrics
        self.tls = tls
        self.unfinished = 0

    def protocol(self) -> type[GuardedH11Protocol]:
        return type("GuardedH11Protocol", (GuardedH11Protocol,), {"guard": self})


def _answer(status: int, reason: str, message: str, retry_after: int | None = None) -> bytes:
    """A whole HTTP/1.1 response that closes the connection (written without h11's state)."""
    body = json.dumps({"error": reason, "message": message}).encode()
    phrase = {408: "Request Timeout", 503: "Service Unavailable"}[status]
    head = f"HTTP/1.1 {status} {phrase}\r\ncontent-type: application/json\r\nconnection: close\r\n"
    if retry_after is not None:
        head += f"retry-after: {retry_after}\r\n"
    return (head + f"content-length: {len(body)}\r\n\r\n").encode() + body


class GuardedH11Protocol(H11Protocol):
    guard: Guard

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._busy = False  # counted in guard.unfinished
        self._made = False  # super().connection_made() ran (after the TLS handshake)
        self._handshake: asyncio.Task[None] | None = None
        self._early: list[bytes] | None = None  # bytes that arrived with the end of the handshake
        self._raw: asyncio.Transport | None = None
        self._headers_of: Any = None  # the request cycle whose headers are complete

    # -- the count of unfinished requests ------------------------------------------------------
    def _begin(self, speaks_http: bool = True) -> bool:
        """Count this connection as unfinished; False when the cap is reached: a 503 where the
        connection speaks HTTP already, else (before a TLS handshake) it is simply closed."""
        guard = self.guard
        if guard.unfinished >= guard.max_unfinished:
            guard.metrics.rejected("over_capacity")
            transport = self.transport or self._raw
            if transport is not None and not transport.is_closing():
                if speaks_http:
                    message = "too many requests in progress; retry later"
                    transport.write(_answer(503, "over_capacity", message, guard.retry_after_s))
                transport.close()
            return False
        guard.unfinished += 1
        self._busy = True
        self._arm(guard.header_timeout_s, "header_timeout")
        return True

    def _release(self) -> None:
        if self._busy:
            self._busy = False
            self.guard.unfinished -= 1
        self._disarm()

    def _arm(self, seconds: float, reason: str) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._timed_out, reason)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _timed_out(self, reason: str) -> None:
        self._deadline = None
        if self._handshake is not None and not self._handshake.done():
            self.guard.metrics.rejected(reason)
            self._handshake.cancel()
            return
        if reason == "header_timeout":
            self.guard.metrics.rejected(reason)
            limit = self.guard.header_timeout_s
        else:
            cycle = self.cycle
            if cycle is None or cycle.response_started:
                return  # the app answers already
            cycle.scope["state"][CUT_OFF] = reason  # the app counts it when its receive() ends
            # Wake the app now: a TLS transport reports the loss only after its close_notify
            # exchange, which a slow client may never answer.
            cycle.disconnected = True
            cycle.message_event.set()
            limit = self.guard.body_timeout_s
        transport = self.transport if self._made else self._raw
        if transport is not None and not transport.is_closing():
            transport.write(_answer(408, reason, f"the request did not arrive within {limit:g} s"))
            transport.close()
            self.loop.call_later(CLOSE_GRACE_S, transport.abort)  # no waiting for the client's goodbye
        self._release()
        log.info("slow request cut off", reason=reason)

    # -- connection ----------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # type: ignore[override]
        assert isinstance(transport, asyncio.Transport)
        self._raw = transport
        if not self._begin(speaks_http=self.guard.tls is None):
            return
        if self.guard.tls is None:
            self._made = True
            super().connection_made(transport)
            return
        transport.pause_reading()  # the handshake's protocol reads, not this one
        self._early = []
        self._handshake = self.loop.create_task(self._start_tls(transport))

    async def _start_tls(self, raw: asyncio.Transport) -> None:
        try:
            tls = await self.loop.start_tls(
                raw, self, self.guard.tls, server_side=True, ssl_handshake_timeout=self.guard.header_timeout_s
            )
        except asyncio.CancelledError:  # the header deadline passed during the handshake
            raw.close()
            self._release()
            return
        except (OSError, ValueError):  # no TLS, an old protocol, no or a wrong client certificate
            self.guard.metrics.rejected("tls_handshake")
            raw.close()
            self._release()
            return
        if tls is None or tls.is_closing():
            self._release()
            return
        peer = tls.get_extra_info("peercert")
        if peer:
            self.app_state = {**self.app_state, PEER_CERT: peer}
        self._made = True
        super().connection_made(tls)
        early, self._early = self._early or [], None
        for data in early:
            self.data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._release()
        if self._handshake is not None and not self._handshake.done():
            self._handshake.cancel()
        if self._made:
            super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._early is not None:
            self._early.append(data)
            return
        if not self._busy and not self._begin():  # the next request on a kept-alive connection
            return
        super().data_received(data)
        self._track()

    def on_response_complete(self) -> None:
        self._release()
        super().on_response_complete()  # may start a pipelined request
        if self.cycle is not self._headers_of and not self.transport.is_closing() and self._begin():
            self._track()

    def _track(self) -> None:
        """Switch the deadline as the request advances: headers done -> body; body done -> none."""
        cycle = self.cycle
        if cycle is None or not self._busy:
            return
        if cycle is not self._headers_of:
            self._headers_of = cycle
            self._arm(self.guard.body_timeout_s, "body_timeout")
        if not cycle.more_body and self._deadline is not None:
            self._disarm()  # the whole request is in; the app answers in its own time


def build_server(
    app: Any, settings: AdapterSettings, metrics: AdapterMetrics, port: int, log_level: str = "info"
) -> uvicorn.Server:
    """uvicorn's server for ``app`` on ``settings.host:port``, with the guarded protocol."""
    tls = tls_context(settings)
    if tls is None:
        log.warning(
            "serving plain HTTP without TLS (plain_http): for local development only; reports carry personal data"
        )
    guard = Guard(settings, metrics, tls)
    config = uvicorn.Config(
        app, host=settings.host, port=port, http=guard.protocol(), log_level=log_level, **UVICORN_OPTIONS
    )
    log.info(
        "adapter listening",
        host=settings.host,
        port=port,
        tls=tls is not None,
        mutual_tls=settings.tls_client_cafile is not None,
    )
    return uvicorn.Server(config)


def serve(app: Any, settings: AdapterSettings, metrics: AdapterMetrics, port: int, log_level: str = "info") -> None:
    """Run until SIGTERM/SIGINT."""
    build_server(app, settings, metrics, port, log_level).run()
