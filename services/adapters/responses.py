"""What the adapter answers: one model per reply, and one way to print a time.

The route handlers return these models and FastAPI serialises them against the
route's ``response_model``, so a reply cannot drift from the OpenAPI document. Every
timestamp the API prints goes through :func:`utc_timestamp`: UTC, ISO 8601 with ``Z``,
the same text pydantic writes into the report event (``received_at`` in a receipt is
byte for byte the event's).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field


def utc_timestamp(moment: datetime | int) -> str:
    """``2026-01-01T08:00:00.123456Z``: an aware datetime, or epoch milliseconds, in UTC."""
    if isinstance(moment, int):
        moment = datetime.fromtimestamp(moment / 1000, UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


class ReceiptOut(BaseModel):
    report_id: str = Field(description="UUIDv7 assigned by the adapter.")
    received_at: str = Field(description="When the adapter stored the report (UTC).")
    duplicate: bool = Field(description="True when this source_ref or Idempotency-Key was seen before.")


class FieldProblem(BaseModel):
    field: str = Field(description="Dotted path of the field, 'body', or a header/row locator.")
    reason: str


class ErrorOut(BaseModel):
    error: str = Field(
        description="Reason code: unauthorized, forbidden, unsupported_media_type, "
        "payload_too_large, invalid, backlog_full, not_found, ..."
    )
    message: str
    errors: list[FieldProblem] = Field(default=[], description="Present when there are field problems.")


class RowResult(BaseModel):
    """One row of a batch; the fields that do not apply to its status are left out."""

    row: int
    status: str = Field(description="accepted, duplicate or rejected.")
    report_id: str | None = None
    received_at: str | None = None
    error: str | None = None
    errors: list[FieldProblem] | None = None
    retryable: bool | None = None


class BatchOut(BaseModel):
    accepted: int
    duplicates: int
    rejected: int
    results: list[RowResult]


class StatusOut(BaseModel):
    seq: int
    updated_at: str = Field(description="When the router or tracker last changed it (UTC).")
    departments: list[dict[str, Any]]


class ReportStateOut(BaseModel):
    report_id: str
    source_ref: str
    received_at: str
    published: bool = Field(description="The report is on the sector's Kafka topic.")
    published_at: str | None
    status: StatusOut | None = Field(
        description="The router's latest status (seq, updated_at, departments), once it has routed the report."
    )


class HealthOut(BaseModel):
    status: str = Field(description="ok or failing.")
    checks: dict[str, bool]


class ReadyOut(BaseModel):
    ready: bool
    checks: dict[str, bool]
    backlog: int
    oldest_unsent_seconds: float
