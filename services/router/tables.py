"""The router's state: which reports were already routed (changelogged, partitioned by report id)."""

from __future__ import annotations

from typing import Any


def seen_reports(app: Any) -> Any:
    """report_id -> rules version that routed it. A duplicate report is routed once.

    Keys and values are bytes (``key_type=bytes`` makes faust use the raw codec
    for the changelog too, so recovery reads back exactly what was written).

    A report is marked only once every output of it is acknowledged by the
    broker; the mark is written after the event, so its changelog partition
    comes from the key (``use_partitioner``) with the same murmur2 partitioner
    the adapters use for the report topics, which keeps it co-partitioned.
    """
    return app.Table(
        "seen-reports",
        default=None,
        key_type=bytes,
        value_type=bytes,
        use_partitioner=True,
        help="Reports already routed (for idempotency).",
    )
