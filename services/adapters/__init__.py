"""Intake adapters: one small HTTP service per reporting sector.

Each adapter authenticates a departmental system by its API token, validates
the sector's report, writes it to a local durable outbox (SQLite, WAL, fsync on
commit) *before* answering ``202``, and a relay thread publishes the outbox to
the sector's Kafka topic. See ``services/adapters/README.md``.
"""

from schemas import Source

DEFAULT_PORTS: dict[Source, int] = {
    Source.hospital: 8101,
    Source.school: 8102,
    Source.labour: 8103,
    Source.marriage: 8104,
    Source.venue: 8105,
}
