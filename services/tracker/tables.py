"""The tracker's state: one compact record per report (see services.tracker.state)."""

from __future__ import annotations

from typing import Any


def tracking(app: Any) -> Any:
    """report_id -> ReportTrack bytes (``services/tracker/codec.py``).

    Written only after the event's outputs are acknowledged (``store_state``), and placed by key
    (``use_partitioner``), the same murmur2 partitioning as the input topics.
    """
    return app.Table(
        "tracking",
        default=None,
        key_type=bytes,
        value_type=bytes,
        use_partitioner=True,
        help="Acknowledgement state per report.",
    )


def store_state(table: Any, key: bytes, state: bytes | None) -> Any:
    """Write ``key``'s state (None: delete it); the future resolves when its changelog record is in.

    What ``table[key] = state`` and ``del table[key]`` do (this table has no TTL and no window),
    keeping the changelog record's future, which faust drops: the tracker acknowledges an input
    only once the broker has its state.
    """
    if state is None:
        future = table.send_changelog(table.partition_for_key(key), key, None, value_serializer="raw")
        table.data.pop(key, None)
    else:
        future = table.send_changelog(table.partition_for_key(key), key, state)
        table.data[key] = state
    return future
