"""The adapter's HTTP routes: intake, receipts and operations.

Each handler returns its response model (``responses.py``); FastAPI serialises it
against the route's ``response_model``, which is also what the OpenAPI document shows.
Refusals are raised as :class:`ClientError` and answered by ``errors.py``'s handlers.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import FastAPI, Request, Response
from starlette.convertors import Convertor, register_url_convertor

from schemas import ReportStatus
from schemas.report import UUID7_PATTERN
from services.adapters.batch import (
    CSV_TYPES,
    NDJSON_TYPES,
    NO_ROWS,
    BatchError,
    TooManyRows,
    parse_csv,
    parse_ndjson,
)
from services.adapters.errors import ClientError
from services.adapters.intake import JSON_TYPES, SubmissionIntake, check_charset, idempotency_key, media_type, read_body
from services.adapters.outbox import Intake, OutboxError, Receipt
from services.adapters.responses import (
    BatchOut,
    ErrorOut,
    FieldProblem,
    HealthOut,
    ReadyOut,
    ReceiptOut,
    ReportStateOut,
    RowResult,
    StatusOut,
    utc_timestamp,
)
from services.adapters.runtime import AdapterRuntime
from services.common.logging import get_logger
from services.common.metrics import exposition

log = get_logger("cluebus.adapters")


class _ReportId(Convertor[str]):
    """A path segment that is a UUIDv7: any other ``/v1/reports/<x>`` is no report, so the
    router answers 404, and ``GET /v1/reports/batch`` is a 405 (POST only), not a receipt."""

    regex = UUID7_PATTERN.removeprefix("^").removesuffix("$")

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("report_id", _ReportId())
_RETRY_AFTER = {
    "Retry-After": {
        "description": "Whole seconds to wait before retrying.",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    }
}
# The refusals every /v1/ route may answer, as the handlers and errors.py send them.
REFUSALS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "Unreadable request (e.g. a Content-Length that is not a number)."},
    401: {
        "model": ErrorOut,
        "description": "No bearer token, or an unknown one.",
        "headers": {"WWW-Authenticate": {"required": True, "schema": {"type": "string", "const": "Bearer"}}},
    },
    403: {"model": ErrorOut, "description": "A token of another source, or a client certificate of another system."},
    408: {"model": ErrorOut, "description": "The body did not arrive in time; the connection is closed."},
    413: {"model": ErrorOut, "description": "The body, a batch's rows, or the encoded report is too large."},
    415: {"model": ErrorOut, "description": "Unsupported content type or charset (UTF-8 only)."},
    422: {"model": ErrorOut, "description": "Not valid: every problem as {field, reason}."},
    429: {
        "model": ErrorOut,
        "description": "Rate limit of the address or the system, or too many failed authentications.",
        "headers": _RETRY_AFTER,
    },
    503: {
        "model": ErrorOut,
        "description": "The outbox is full (Kafka away) or unavailable, or too many unfinished requests.",
        "headers": _RETRY_AFTER,
    },
}


def add_intake_routes(app: FastAPI, rt: AdapterRuntime, intake: SubmissionIntake) -> None:
    settings = rt.settings
    source = rt.source.value

    @app.post(
        "/v1/reports",
        status_code=202,
        tags=["intake"],
        summary=f"Submit one {source} report",
        response_model=ReceiptOut,
        responses={
            202: {
                "description": "Stored durably (fsynced); it will be published to Kafka.",
                "headers": {
                    "Location": {
                        "description": "The receipt: GET it for the report's status.",
                        "required": True,
                        "schema": {"type": "string", "pattern": f"^/v1/reports/{UUID7_PATTERN[1:]}"},
                    }
                },
            },
            **REFUSALS,
        },
    )
    async def post_report(request: Request, response: Response) -> ReceiptOut:
        # Each request runs in its own asyncio task with its own copy of the log context, so
        # what authenticate() binds ends with the request; nothing needs unbinding first.
        started = time.perf_counter()
        cred = intake.authenticate(request)
        media, charset = media_type(request)
        if media not in JSON_TYPES and not media.endswith("+json"):
            raise ClientError(415, "unsupported_media_type", "send the report as application/json")
        check_charset(charset)
        key = idempotency_key(request)
        body = await read_body(request, settings.max_body_bytes)
        built = intake.build(body, cred, key)
        [result] = await rt.store([built])
        if isinstance(result, OutboxError):
            raise rt.unavailable(result)
        rt.metrics.received("duplicate" if result.duplicate else "accepted")
        log.info("report accepted", report_id=result.report_id, duplicate=result.duplicate)
        rt.metrics.intake["single"].observe(time.perf_counter() - started)
        response.headers["Location"] = f"/v1/reports/{result.report_id}"
        return ReceiptOut(report_id=result.report_id, received_at=result.received_at, duplicate=result.duplicate)

    @app.post(
        "/v1/reports/batch",
        tags=["intake"],
        response_model=BatchOut,
        response_model_exclude_unset=True,
        summary="Submit many reports (JSON lines or CSV); each row is answered on its own",
        responses=REFUSALS,
    )
    async def post_batch(request: Request) -> BatchOut:
        started = time.perf_counter()
        cred = intake.authenticate(request)
        media, charset = media_type(request)
        if media not in NDJSON_TYPES and media not in CSV_TYPES:
            raise ClientError(
                415,
                "unsupported_media_type",
                "send application/x-ndjson (one JSON report per line) or text/csv",
            )
        check_charset(charset)
        body = await read_body(request, settings.max_batch_bytes)

        def prepare() -> tuple[list[RowResult | None], list[Intake], list[int]]:
            """Every row validated and stamped, off the event loop; the outbox comes after."""
            try:
                if media in NDJSON_TYPES:
                    rows = parse_ndjson(body, settings.max_batch_rows)
                else:
                    rows = parse_csv(body, intake.model, settings.max_batch_rows)
            except TooManyRows as exc:
                raise ClientError(413, "too_many_rows", str(exc)) from None
            except BatchError as exc:
                raise ClientError(422, "invalid", str(exc), exc.errors) from None
            if not rows:
                raise ClientError(422, "invalid", "the batch has no rows", [{"field": "body", "reason": NO_ROWS}])
            results: list[RowResult | None] = []
            intakes: list[Intake] = []
            where: list[int] = []
            for row in rows:
                if row.errors is not None or row.body is None:
                    problems = [FieldProblem(**e) for e in row.errors or []]
                    results.append(RowResult(row=row.row, status="rejected", error="invalid", errors=problems))
                    continue
                try:
                    intakes.append(intake.build(row.body, cred, None))
                except ClientError as exc:
                    problems = [FieldProblem(**e) for e in exc.errors or [{"field": "body", "reason": exc.message}]]
                    results.append(RowResult(row=row.row, status="rejected", error=exc.error, errors=problems))
                    continue
                where.append(len(results))
                results.append(RowResult(row=row.row, status="pending"))
            return results, intakes, where

        results, intakes, where = await asyncio.to_thread(prepare)
        stored = await rt.store(intakes) if intakes else []
        for index, outcome in zip(where, stored, strict=True):
            row = results[index].row  # type: ignore[union-attr]
            if isinstance(outcome, Receipt):
                results[index] = RowResult(
                    row=row,
                    status="duplicate" if outcome.duplicate else "accepted",
                    report_id=outcome.report_id,
                    received_at=outcome.received_at,
                )
                log.info("report accepted", report_id=outcome.report_id, row=row, duplicate=outcome.duplicate)
            else:
                refusal = rt.unavailable(outcome)
                results[index] = RowResult(
                    row=row,
                    status="rejected",
                    error=refusal.error,
                    errors=[FieldProblem(field="row", reason=refusal.message)],
                    retryable=True,
                )
        tally = {"accepted": 0, "duplicate": 0, "rejected": 0}
        for item in results:
            assert item is not None
            tally[item.status] += 1
            if item.status == "rejected":
                rt.metrics.rejected(item.error or "invalid")
        for outcome_name, count in tally.items():
            if count:
                rt.metrics.received(outcome_name, count)
        log.info("batch answered", rows=len(results), **tally)
        rt.metrics.intake["batch"].observe(time.perf_counter() - started)
        return BatchOut(
            accepted=tally["accepted"],
            duplicates=tally["duplicate"],
            rejected=tally["rejected"],
            results=[r for r in results if r is not None],
        )

    @app.get(
        "/v1/reports/{report_id:report_id}",
        tags=["intake"],
        response_model=ReportStateOut,
        summary="The receipt of a report and where it stands per department",
        responses={
            **{code: REFUSALS[code] for code in (401, 403, 429)},
            404: {"model": ErrorOut, "description": "No report with this id from this system."},
        },
    )
    async def get_report(report_id: str, request: Request) -> ReportStateOut:
        cred = intake.authenticate(request)
        assert rt.outbox is not None
        view = rt.outbox.receipt(report_id)
        if view is None or view.source_system != cred.source_system:
            raise ClientError(404, "not_found", "no report with this id from this system")
        status = None
        if view.status is not None:
            parsed = ReportStatus.model_validate_json(view.status)
            status = StatusOut(
                seq=parsed.seq,
                updated_at=utc_timestamp(parsed.updated_at),
                departments=[d.model_dump(mode="json") for d in parsed.departments],
            )
        return ReportStateOut(
            report_id=view.report_id,
            source_ref=view.source_ref,
            received_at=view.received_at,
            published=view.published,
            published_at=None if view.published_ms is None else utc_timestamp(view.published_ms),
            status=status,
        )


def add_operations_routes(app: FastAPI, rt: AdapterRuntime) -> None:
    @app.get(
        "/healthz",
        tags=["operations"],
        summary="Alive",
        response_model=HealthOut,
        responses={503: {"model": HealthOut, "description": "A thread has stopped."}},
    )
    async def healthz(response: Response) -> HealthOut:
        checks = rt.health()
        ok = all(checks.values())
        response.status_code = 200 if ok else 503
        return HealthOut(status="ok" if ok else "failing", checks=checks)

    @app.get(
        "/readyz",
        tags=["operations"],
        summary="Kafka reachable and the outbox not stuck",
        response_model=ReadyOut,
        responses={503: {"model": ReadyOut, "description": "Not ready; the checks say why."}},
    )
    async def readyz(response: Response) -> ReadyOut:
        state = ReadyOut(**rt.readiness())
        response.status_code = 200 if state.ready else 503
        return state

    @app.get(
        "/metrics",
        tags=["operations"],
        summary="Prometheus metrics",
        response_class=Response,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Exposition"}},
    )
    async def metrics() -> Response:
        data, content_type = exposition(rt.metrics.registry)
        return Response(data, media_type=content_type)
