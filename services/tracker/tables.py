"""The tracker's state: one compact record per report (see services.tracker.state)."""

from __future__ import annotations

from typing import Any


def tracking(app: Any) -> Any:
    """report_id -> ReportTrack bytes (``services/tracker/codec.py``).

    Written only after the event's outputs are acknowledged, and placed by key
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
