"""Settings of an intake adapter (``CLUEBUS_ADAPTER_*`` or ``[adapter]`` in CLUEBUS_CONFIG).

One process serves one source; what differs per source (port, outbox folder)
has a per-source default, so five adapters can share one configuration file.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from schemas import Source
from services.adapters import DEFAULT_PORTS
from services.common.settings import _Settings

MiB = 1024 * 1024


class AdapterSettings(_Settings):
    section: ClassVar[str] = "adapter"
    model_config = SettingsConfigDict(env_prefix="CLUEBUS_ADAPTER_")

    host: str = Field("127.0.0.1", description="Interface to listen on.")
    port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="HTTP port; default per source: hospital 8101, school 8102, labour 8103, "
        "marriage 8104, venue 8105.",
    )
    tokens_file: Path | None = Field(
        None,
        description="TOML file of departmental systems and their token hashes (required).",
    )
    outbox_dir: Path | None = Field(
        None,
        description="Folder of the outbox database; default <CLUEBUS_STATE_DIR>/adapter-<source>/.",
    )
    # TLS ------------------------------------------------------------------------------------
    tls_certfile: Path | None = Field(None, description="PEM certificate chain the adapter serves HTTPS with.")
    tls_keyfile: Path | None = Field(None, description="PEM private key of tls_certfile.")
    tls_client_cafile: Path | None = Field(
        None,
        description="Mutual TLS: every client must present a certificate signed by this CA, whose CN is "
        "its system's client_cert_cn in the tokens file (default: the system id).",
    )
    plain_http: bool = Field(
        False,
        description="Serve plain HTTP without TLS: local development only (logged as a warning).",
    )
    # Slow and abusive clients ------------------------------------------------------------------
    header_timeout_s: float = Field(
        10.0, gt=0, le=300, description="From connect (TLS handshake included) to the end of the headers."
    )
    body_timeout_s: float = Field(
        30.0, gt=0, le=3600, description="From the end of the headers to the end of the body."
    )
    max_unfinished_requests: int = Field(
        256, ge=1, description="Connections awaiting their headers, body or answer at once; beyond it: 503."
    )
    rate_per_address: float = Field(100.0, gt=0, description="Requests per second per client address (sustained).")
    burst_per_address: int = Field(1000, ge=1, description="Requests per client address at once.")
    rate_per_system: float = Field(50.0, gt=0, description="Requests per second per departmental system.")
    burst_per_system: int = Field(500, ge=1, description="Requests per departmental system at once.")
    auth_failures_per_minute: float = Field(
        10.0, gt=0, description="Failed authentications an address may make per minute once its burst is spent."
    )
    auth_failure_burst: int = Field(20, ge=1, description="Failed authentications in a row before throttling.")
    # Request limits -----------------------------------------------------------------------
    max_body_bytes: int = Field(1 * MiB, ge=1024, description="Largest body of POST /v1/reports.")
    max_event_bytes: int = Field(
        1_000_000,
        ge=1024,
        description="Largest published event (must stay below the topic's max.message.bytes).",
    )
    max_batch_bytes: int = Field(16 * MiB, ge=1024, description="Largest body of the batch endpoint.")
    max_batch_rows: int = Field(1000, ge=1, le=100_000, description="Most rows in one batch.")
    # Outbox -----------------------------------------------------------------------------------
    backlog_limit: int = Field(
        100_000,
        ge=1,
        description="Unsent reports kept while Kafka is away; beyond it: 503.",
    )
    retry_after_s: int = Field(10, ge=1, description="Retry-After of a 503.")
    commit_max_rows: int = Field(512, ge=1, description="Most writes in one group commit.")
    commit_linger_ms: float = Field(
        0.0,
        ge=0,
        le=100,
        description="Extra wait for more writes before a commit (0: take what is queued).",
    )
    sent_retention_s: float = Field(
        7 * 24 * 3600,
        ge=0,
        description="How long published reports stay in the outbox.",
    )
    receipt_retention_s: float = Field(
        400 * 24 * 3600,
        ge=0,
        description="How long receipts (ids only) stay; a duplicate is recognised within it.",
    )
    prune_interval_s: float = Field(600.0, gt=0)
    stuck_after_s: float = Field(
        120.0,
        gt=0,
        description="/readyz fails when the oldest unsent report is older than this.",
    )
    # Relay ----------------------------------------------------------------------------------
    relay_batch_size: int = Field(500, ge=1, le=10_000, description="Rows per publish round.")
    # 10 ms made the relay wait at 77 reports/s (rounds end less than 10 ms apart), ~9 ms of a
    # light load's 16 ms median POST -> police referral; at 2 ms the median was 5.5 ms, and the
    # intake benchmark took as many reports/s (1,130-1,204 vs 1,135-1,147, alternating runs).
    relay_linger_ms: int = Field(
        2,
        ge=0,
        le=1000,
        description="How long the relay waits to gather a bigger batch once several rows are "
        "waiting; a lone row is sent at once (also the producer's linger.ms).",
    )
    relay_backoff_max_s: float = Field(10.0, gt=0, description="Longest pause between retries.")
    # Status feedback --------------------------------------------------------------------------
    status_enabled: bool = Field(True, description="Consume the status topic for GET /v1/reports/{id}.")

    def resolved_port(self, source: Source | str) -> int:
        return self.port if self.port is not None else DEFAULT_PORTS[Source(source)]

    def resolved_outbox_dir(self, source: Source | str, state_dir: Path) -> Path:
        return self.outbox_dir if self.outbox_dir is not None else Path(state_dir) / f"adapter-{Source(source).value}"
