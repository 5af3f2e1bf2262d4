"""Refusals as uniform JSON bodies that name each reason, never echoing submitted values.

Every rejection looks like::

    {"error": "invalid", "message": "the report is not valid (2 problems)",
     "errors": [{"field": "subjects.0.age", "reason": "Input should be a valid integer"}]}

:func:`install_error_handlers` gives an app the handlers that turn every exception into
such a body (and a fault into a 500 that says nothing of the request).
"""

from __future__ import annotations

import re
import traceback
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.adapters.metrics import AdapterMetrics
from services.adapters.responses import ErrorOut, FieldProblem
from services.common.logging import get_logger

log = get_logger("cluebus.adapters")

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
    # The input is read for one count below and never copied into the answer.
    for err in exc.errors(include_url=False):
        if _counted_after_items_failed(err):
            continue
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


def _counted_after_items_failed(err: Any) -> bool:
    """A too-short list whose items were there but failed validation.

    pydantic counts only the items that validated: one invalid subject also yields
    "subjects: should have at least 1 item after validation, not 0", a problem the sender
    did not make; the item's own error says what is wrong.
    """
    if err.get("type") != "too_short":
        return False
    sent, wanted = err.get("input"), (err.get("ctx") or {}).get("min_length")
    return isinstance(sent, list | tuple) and isinstance(wanted, int) and len(sent) >= wanted


# -- the app's exception handlers: every rejection names its reason ------------------------------
_LOCATOR = re.compile(r"^(body|row|request|header\.[A-Za-z0-9-]+|line\.\d+)$")


def loggable_fields(errors: list[dict[str, str]], known_paths: frozenset[str]) -> list[str]:
    """Field paths for the log: schema paths and locators only. A key the client invented
    is shown as '(unknown field)', since its name is free text that may be personal."""
    out = []
    for error in errors[:20]:
        field = error.get("field", "")
        generic = ".".join(p for p in field.split(".") if not p.isdigit())
        out.append(field if generic in known_paths or _LOCATOR.match(field) else "(unknown field)")
    return out


def error_reply(body: ErrorOut, status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(body.model_dump_json(exclude_unset=True), status, headers=headers, media_type="application/json")


def install_error_handlers(app: FastAPI, metrics: AdapterMetrics, known_paths: frozenset[str]) -> None:
    """Refusals as :class:`ErrorOut` bodies, counted by reason; faults as a 500 without details."""

    def intake_path(request: Request) -> bool:
        return request.method == "POST" and request.url.path.startswith("/v1/reports")

    @app.exception_handler(ClientError)
    async def _client_error(request: Request, exc: ClientError) -> Response:
        metrics.rejected(exc.error)
        if intake_path(request):
            metrics.received("rejected")
        log.info(
            "request refused",
            status=exc.status,
            error=exc.error,
            path=request.url.path,
            fields=loggable_fields(exc.errors, known_paths),
        )
        return error_reply(ErrorOut.model_validate(exc.body()), exc.status, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_request")
        body = ErrorOut(error=code, message=str(exc.detail))
        return error_reply(body, exc.status_code, dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def _request_invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = [
            FieldProblem(
                field=".".join(str(p) for p in e.get("loc", ())) or "request",
                reason=str(e.get("msg", "invalid")),
            )
            for e in exc.errors()
        ]
        return error_reply(ErrorOut(error="invalid", message="the request is not valid", errors=problems), 422)

    @app.exception_handler(Exception)
    async def _server_fault(request: Request, exc: Exception) -> Response:
        # Type and code locations only: an exception message may quote submitted data.
        frames = [f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno}" for f in traceback.extract_tb(exc.__traceback__)]
        log.error(
            "internal error",
            error_type=type(exc).__name__,
            path=request.url.path,
            frames=frames[-8:],
        )
        body = ErrorOut(error="internal", message="internal error; the report was not accepted")
        return error_reply(body, 500)
