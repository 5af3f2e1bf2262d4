"""Turning an unprocessable event into a DeadLetter, without echoing its content."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import ValidationError

from schemas import DeadLetter


def describe_error(exc: BaseException) -> tuple[str, str]:
    """``(error_type, message)`` naming fields and reasons, never the input values."""
    if isinstance(exc, ValidationError):
        parts = [
            f"{'.'.join(str(p) for p in err['loc']) or '(body)'}: {err['msg']}"
            for err in exc.errors(include_url=False, include_input=False, include_context=False)
        ]
        return "ValidationError", "; ".join(parts)[:2000]
    if isinstance(exc, UnicodeDecodeError):
        return "UnicodeDecodeError", "value is not UTF-8 text"
    return type(exc).__name__, str(exc)[:2000]


def dead_letter(
    service: str, message: Any, exc: BaseException | str, *, cause: Literal["input", "internal"] = "input"
) -> DeadLetter:
    """A DeadLetter for a consumed message (faust or kafka-python record); ``cause`` as in DeadLetter."""
    if isinstance(exc, str):
        error_type, error = "Rejected", exc
    else:
        error_type, error = describe_error(exc)
    key = message.key
    value = message.value
    return DeadLetter.of(
        service=service,
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=key if isinstance(key, bytes | None) else str(key).encode(),
        value=value if isinstance(value, bytes) else str(value).encode(),
        error_type=error_type,
        error=error,
        cause=cause,
        at=datetime.now(UTC),
    )
