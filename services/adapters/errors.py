"""Client errors as uniform JSON bodies that name each reason, never echoing submitted values.

Every rejection looks like::

    {"error": "invalid", "message": "the report is not valid (2 problems)",
     "errors": [{"field": "subjects.0.age", "reason": "Input should be a valid integer"}]}
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError

_FIELD_IN_MESSAGE = re.compile(r"\(field '([^']+)'\)")
_FIELD_PREFIX = re.compile(r"^([a-z_][a-z0-9_]*(?:\.[a-z0-9_]+)*): ")
_PREFIXES = ("Value error, ", "Assertion failed, ")


class ClientError(Exception):
    """A request the adapter refuses, with its HTTP status and a reason code."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.errors = errors or []
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.error, "message": self.message}
        if self.errors:
            out["errors"] = self.errors
        return out


def field_errors(exc: ValidationError, prefix: str = "") -> list[dict[str, str]]:
    """``[{field, reason}]`` for each error: dotted paths, messages without the input values."""
    out: list[dict[str, str]] = []
    for err in exc.errors(include_url=False, include_input=False, include_context=False):
        reason = str(err.get("msg", "invalid"))
        for p in _PREFIXES:
            if reason.startswith(p):
                reason = reason[len(p) :]
        path = ".".join(str(part) for part in err.get("loc", ()))
        if not path:
            # Whole-model checks name their field in the message (DNA keys, cross-field rules).
            match = _FIELD_IN_MESSAGE.search(reason) or _FIELD_PREFIX.match(reason)
            path = match.group(1) if match else "body"
        if err.get("type") == "json_invalid":
            path = "body"
        out.append({"field": f"{prefix}{path}", "reason": reason})
    return out
