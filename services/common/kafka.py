"""kafka-python clients built from :class:`KafkaSettings`, written once.

Every producer of the bus acknowledges only when all in-sync replicas have the
record (``acks="all"``) and is idempotent, so retries never duplicate or
reorder records within a partition.
"""

from __future__ import annotations

import ssl
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.errors import KafkaConnectionError, KafkaTimeoutError

from services.common.settings import KafkaSettings

PRODUCER_DEFAULTS: dict[str, Any] = {
    "acks": "all",
    "enable_idempotence": True,
    # Idempotence keeps order with up to 5 requests in flight per connection.
    "max_in_flight_requests_per_connection": 5,
    "retries": 2**31 - 1,
    "linger_ms": 5,
    "compression_type": None,
}


class KafkaUnavailable(RuntimeError):
    """The configured brokers cannot be reached; the message says what to fix."""


def security_kwargs(settings: KafkaSettings) -> dict[str, Any]:
    """TLS and SASL options in kafka-python's spelling."""
    kwargs: dict[str, Any] = {"security_protocol": settings.security_protocol}
    if settings.uses_ssl:
        kwargs["ssl_context"] = ssl_context(settings)
    if settings.uses_sasl:
        if not settings.username or settings.secret() is None:
            raise ValueError(
                f"CLUEBUS_KAFKA_SECURITY_PROTOCOL={settings.security_protocol} needs "
                "CLUEBUS_KAFKA_USERNAME and CLUEBUS_KAFKA_PASSWORD (or _PASSWORD_FILE)"
            )
        kwargs["sasl_mechanism"] = settings.sasl_mechanism
        kwargs["sasl_plain_username"] = settings.username
        kwargs["sasl_plain_password"] = settings.secret()
    return kwargs


def ssl_context(settings: KafkaSettings) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(settings.ssl_cafile) if settings.ssl_cafile else None)
    ctx.check_hostname = settings.ssl_check_hostname
    return ctx


def common_kwargs(settings: KafkaSettings, client_id: str | None = None) -> dict[str, Any]:
    return {
        "bootstrap_servers": settings.servers,
        "client_id": client_id or settings.client_id,
        "request_timeout_ms": settings.request_timeout_ms,
        "bootstrap_timeout_ms": settings.bootstrap_timeout_ms,
        **security_kwargs(settings),
    }


def _unavailable(settings: KafkaSettings, exc: Exception) -> KafkaUnavailable:
    # kafka-python reports refused credentials and failed TLS handshakes only as a
    # bootstrap timeout, so say that this may be the cause.
    refused = ""
    if settings.uses_sasl:
        refused = (
            f", or it refused user {settings.username!r} ({settings.security_protocol}, "
            f"{settings.sasl_mechanism}: check the password and CLUEBUS_KAFKA_SSL_CAFILE)"
        )
    elif settings.uses_ssl:
        refused = ", or the TLS handshake failed (check CLUEBUS_KAFKA_SSL_CAFILE)"
    return KafkaUnavailable(
        f"cannot reach Kafka at {settings.bootstrap}{refused} ({type(exc).__name__}); "
        "start it with `cluebus kafka up` or set CLUEBUS_KAFKA_BOOTSTRAP to a running cluster"
    )


def producer(settings: KafkaSettings, client_id: str | None = None, **overrides: Any) -> KafkaProducer:
    """An idempotent ``acks=all`` producer; overrides may tune batching, never durability."""
    for key in ("acks", "enable_idempotence"):
        if key in overrides:
            raise ValueError(f"producer option {key!r} is fixed by cluebus")
    try:
        return KafkaProducer(**common_kwargs(settings, client_id), **{**PRODUCER_DEFAULTS, **overrides})
    except (KafkaTimeoutError, KafkaConnectionError) as exc:
        raise _unavailable(settings, exc) from None


def consumer(
    settings: KafkaSettings,
    *topics: str,
    group_id: str | None,
    client_id: str | None = None,
    **overrides: Any,
) -> KafkaConsumer:
    """A consumer that commits only when told to (``enable_auto_commit=False``)."""
    options: dict[str, Any] = {
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        **overrides,
    }
    try:
        return KafkaConsumer(*topics, **common_kwargs(settings, client_id), **options)
    except (KafkaTimeoutError, KafkaConnectionError) as exc:
        raise _unavailable(settings, exc) from None


def admin(settings: KafkaSettings, client_id: str | None = None) -> KafkaAdminClient:
    try:
        return KafkaAdminClient(**common_kwargs(settings, client_id or f"{settings.client_id}-admin"))
    except (KafkaTimeoutError, KafkaConnectionError) as exc:
        raise _unavailable(settings, exc) from None


def faust_broker_credentials(settings: KafkaSettings) -> Any:
    """Credentials object for a faust app (aiokafka) from the same settings."""
    import faust

    if settings.uses_sasl:
        if not settings.username or settings.secret() is None:
            security_kwargs(settings)  # raises the readable error
        return faust.SASLCredentials(
            username=settings.username,
            password=settings.secret(),
            mechanism=settings.sasl_mechanism,
            ssl_context=ssl_context(settings) if settings.uses_ssl else None,
        )
    if settings.uses_ssl:
        return faust.SSLCredentials(ssl_context(settings))
    return None
