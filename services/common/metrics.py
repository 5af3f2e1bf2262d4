"""Prometheus helpers: one registry per process and a ``/metrics`` endpoint.

Metric names follow Prometheus conventions: the ``cluebus_`` prefix, base
units (seconds, bytes), ``_total`` for counters. Labels carry bounded values
only (source, department, stage, priority, reason codes), never report ids.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Gauge,
    generate_latest,
    start_http_server,
)

PREFIX = "cluebus"

# Latency buckets in seconds, from a few milliseconds (intake, routing) up to
# a month (acknowledgement of a long investigation).
FAST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
ACK_BUCKETS = (
    1,
    10,
    60,
    300,
    900,
    1800,
    3600,
    2 * 3600,
    6 * 3600,
    12 * 3600,
    24 * 3600,
    3 * 24 * 3600,
    7 * 24 * 3600,
    30 * 24 * 3600,
)


def build_info(service: str, registry: CollectorRegistry = REGISTRY) -> Gauge:
    """``cluebus_build_info{service,version} 1``: which code a target runs."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        ver = version("cluebus")
    except PackageNotFoundError:
        ver = "unknown"
    gauge = Gauge(
        f"{PREFIX}_build_info",
        "Build information of the running service.",
        ["service", "version"],
        registry=registry,
    )
    gauge.labels(service=service, version=ver).set(1)
    return gauge


def exposition(registry: CollectorRegistry = REGISTRY) -> tuple[bytes, str]:
    """The text exposition of a registry and its content type, for an HTTP handler."""
    return generate_latest(registry), CONTENT_TYPE_LATEST


def serve(port: int, addr: str = "127.0.0.1", registry: CollectorRegistry = REGISTRY) -> None:
    """Serve ``/metrics`` on a background thread (services without their own HTTP server)."""
    start_http_server(port, addr=addr, registry=registry)
