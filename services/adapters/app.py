"""The HTTP intake of one source: FastAPI app factory and the adapter's runtime.

Endpoints (OpenAPI at ``/openapi.json``, docs at ``/docs``)::

    POST /v1/reports            one submission (application/json)      202 receipt
    POST /v1/reports/batch      JSON lines or CSV, one answer per row  200 per-row results
    GET  /v1/reports/{id}       the receipt and, once routed, the status per department
    GET  /healthz               alive (writer and relay threads running)
    GET  /readyz                Kafka reachable and the outbox not stuck
    GET  /metrics               Prometheus

Order of checks on an intake request: credentials (401/403), content type
(415), body size (413, counted while reading), JSON and schema (422), outbox
backlog (503 + Retry-After). A ``202`` is sent only after the report is
committed (fsynced) to the outbox.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
import traceback
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from pydantic import BaseModel, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from schemas import (
    REPORT_MODELS,
    SCHEMA_VERSION,
    SUBMISSION_MODELS,
    ReportStatus,
    Source,
    dump_event,
    field_paths,
)
from services.adapters.auth import AuthError, Credential, TokenStore
from services.adapters.batch import (
    CSV_TYPES,
    NDJSON_TYPES,
    BatchError,
    TooManyRows,
    parse_csv,
    parse_ndjson,
)
from services.adapters.errors import ClientError, field_errors
from services.adapters.metrics import AdapterMetrics
from services.adapters.outbox import BacklogFull, Intake, Outbox, OutboxError, Pending, Receipt
from services.adapters.relay import RELAY_PRODUCER_OPTIONS, Relay
from services.adapters.settings import AdapterSettings
from services.adapters.status import StatusFollower
from services.common import kafka as kafka_clients
from services.common.ids import uuid7
from services.common.logging import get_logger
from services.common.metrics import exposition
from services.common.settings import KafkaSettings, TopicSettings

log = get_logger("cluebus.adapters")

UUID7 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,128}$")
_LOCATOR = re.compile(r"^(body|row|request|header\.[A-Za-z0-9-]+|line\.\d+)$")
JSON_TYPES = frozenset({"application/json"})


# -- response models (for the OpenAPI document) --------------------------------------------------
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
    errors: list[FieldProblem] = []


class RowResult(BaseModel):
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


class ReportStateOut(BaseModel):
    report_id: str
    source_ref: str
    received_at: str
    published: bool = Field(description="The report is on the sector's Kafka topic.")
    published_at: str | None
    status: dict[str, Any] | None = Field(
        description="The router's latest status (seq, updated_at, departments), once it has routed the report."
    )


_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (401, 403, 413, 415, 422, 503)}


def _iso_ms(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- the runtime ---------------------------------------------------------------------------------
class AdapterRuntime:
    """Outbox, relay, status follower and pruner of one source's adapter."""

    def __init__(
        self,
        source: Source | str,
        settings: AdapterSettings,
        *,
        kafka_settings: KafkaSettings,
        topic_settings: TopicSettings,
        state_dir: Path = Path(".run/state"),
        tokens: TokenStore | None = None,
        producer_factory: Any = None,
        consumer_factory: Any = None,
        enable_relay: bool = True,
        enable_status: bool | None = None,
    ) -> None:
        self.source = Source(source)
        self.settings = settings
        self.kafka_settings = kafka_settings
        self.topic = topic_settings.names.report(self.source.value)
        self.status_topic = topic_settings.names.status
        self.outbox_path = settings.resolved_outbox_dir(self.source, state_dir) / "outbox.sqlite3"
        if tokens is None:
            if settings.tokens_file is None:
                raise ValueError(
                    "no tokens file: set CLUEBUS_ADAPTER_TOKENS_FILE (or tokens_file in "
                    "[adapter]); "
                    "see deploy/adapters/tokens.example.toml"
                )
            tokens = TokenStore(settings.tokens_file)
        self.tokens = tokens
        if not any(c.source == self.source for c in tokens.credentials):
            log.warning("no departmental system of this source in the tokens file", source=self.source.value)
        self.metrics = AdapterMetrics(self.source.value)
        self.model = SUBMISSION_MODELS[self.source]
        self.report_model = REPORT_MODELS[self.source]
        self.client_id = f"{kafka_settings.client_id}-adapter-{self.source.value}"
        self.producer_factory = producer_factory or self._default_producer
        self.consumer_factory = consumer_factory or self._default_consumer
        self.enable_relay = enable_relay
        self.enable_status = settings.status_enabled if enable_status is None else enable_status
        self.outbox: Outbox | None = None
        self.relay: Relay | None = None
        self.status: StatusFollower | None = None
        self._stop = threading.Event()
        self._pruner: threading.Thread | None = None
        self.log_context = {"service": f"adapter-{self.source.value}"}

    def _default_producer(self) -> Any:
        return kafka_clients.producer(
            self.kafka_settings,
            client_id=self.client_id,
            linger_ms=self.settings.relay_linger_ms,
            **RELAY_PRODUCER_OPTIONS,
        )

    def _default_consumer(self) -> Any:
        return kafka_clients.consumer(self.kafka_settings, group_id=None, client_id=f"{self.client_id}-status")

    # lifecycle
    def start(self) -> None:
        s = self.settings
        self.outbox = Outbox(
            self.outbox_path,
            backlog_limit=s.backlog_limit,
            commit_max_rows=s.commit_max_rows,
            commit_linger_ms=s.commit_linger_ms,
        )
        commit_rows = self.metrics.commit_rows.labels(source=self.source.value)
        self.outbox.on_commit = commit_rows.observe
        self.metrics.bind_state(
            backlog=lambda: self.outbox.backlog if self.outbox else 0,
            oldest_unsent_s=self._oldest_unsent_s,
            kafka_up=lambda: 1.0 if self.relay is not None and self.relay.kafka_up else 0.0,
        )
        if self.enable_relay:
            self.relay = Relay(
                self.outbox,
                self.topic,
                self.producer_factory,
                batch_size=s.relay_batch_size,
                backoff_max_s=s.relay_backoff_max_s,
                on_published=self._published,
                gather_ms=s.relay_linger_ms,
                log_context=self.log_context,
            ).start()
        if self.enable_status:
            stored = self.metrics.statuses.labels(source=self.source.value)
            self.status = StatusFollower(
                self.outbox,
                self.status_topic,
                self.source,
                self.consumer_factory,
                on_stored=stored.inc,
                backoff_max_s=s.relay_backoff_max_s,
                log_context=self.log_context,
            ).start()
        self._pruner = threading.Thread(target=self._prune_loop, name="outbox-pruner", daemon=True)
        self._pruner.start()
        log.info(
            "adapter started",
            source=self.source.value,
            topic=self.topic,
            outbox=str(self.outbox_path),
            backlog=self.outbox.backlog,
        )

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self.status is not None:
            self.status.stop()
        if self.relay is not None:
            self.relay.stop(timeout)
        if self.outbox is not None:
            self.outbox.close()
        log.info("adapter stopped", source=self.source.value)

    def _oldest_unsent_s(self) -> float:
        try:
            return self.outbox.oldest_unsent_age_s() if self.outbox else 0.0
        except Exception:  # noqa: BLE001 - a scrape must not fail
            return 0.0

    def _published(self, rows: list[Pending], sent_ms: int) -> None:
        hist = self.metrics.publish_latency.labels(source=self.source.value)
        for row in rows:
            hist.observe(max(0.0, (sent_ms - row.created_ms) / 1000.0))
        self.metrics.published.labels(source=self.source.value).inc(len(rows))

    def prune_once(self) -> tuple[int, int]:
        assert self.outbox is not None
        now = self.outbox.clock_ms()
        return self.outbox.prune(
            sent_before_ms=now - int(self.settings.sent_retention_s * 1000),
            receipts_before_ms=now - int(self.settings.receipt_retention_s * 1000),
        ).result()

    def _prune_loop(self) -> None:
        structlog.contextvars.bind_contextvars(**self.log_context)
        wait = min(5.0, self.settings.prune_interval_s)  # soon after start, then every interval
        while not self._stop.wait(wait):
            wait = self.settings.prune_interval_s
            try:
                outbox, receipts = self.prune_once()
                if outbox or receipts:
                    log.info("outbox pruned", reports=outbox, receipts=receipts)
            except Exception as exc:  # noqa: BLE001 - try again next time
                log.warning("outbox pruning failed", error_type=type(exc).__name__)

    # health
    def health(self) -> dict[str, bool]:
        return {
            "outbox_writer": self.outbox is not None and self.outbox.alive,
            "relay": not self.enable_relay or (self.relay is not None and self.relay.alive),
        }

    def readiness(self) -> dict[str, Any]:
        alive = self.health()
        age = self._oldest_unsent_s()
        backlog = self.outbox.backlog if self.outbox else 0
        checks = {
            **alive,
            "kafka": self.relay is not None and self.relay.kafka_up,
            "outbox_not_stuck": age < self.settings.stuck_after_s,
            "backlog_below_limit": backlog < self.settings.backlog_limit,
        }
        return {
            "ready": all(checks.values()),
            "checks": checks,
            "backlog": backlog,
            "oldest_unsent_seconds": round(age, 3),
        }

    # intake
    def authenticate(self, request: Request) -> Credential:
        try:
            cred = self.tokens.authenticate(request.headers.get("authorization"), self.source)
        except AuthError as exc:
            headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
            raise ClientError(exc.status, exc.reason, exc.message, headers=headers) from None
        structlog.contextvars.bind_contextvars(source_system=cred.source_system)
        return cred

    def build_intake(self, body: bytes, cred: Credential, idempotency_key: str | None) -> Intake:
        """Validate one submission and turn it into the exact event bytes to publish."""
        try:
            submission = self.model.model_validate_json(body)
        except ValidationError as exc:
            problems = field_errors(exc)
            raise ClientError(
                422, "invalid", f"the report is not valid ({len(problems)} problem(s))", problems
            ) from None
        report_id = uuid7()
        received = datetime.now(UTC)
        try:
            payload = dump_event(self.stamp(submission, report_id, cred.source_system, received))
        except (ValidationError, ValueError) as exc:
            problems = (
                field_errors(exc)
                if isinstance(exc, ValidationError)
                else [{"field": "body", "reason": "the report cannot be encoded"}]
            )
            raise ClientError(422, "invalid", "the report is not valid", problems) from None
        if len(payload) > self.settings.max_event_bytes:
            raise ClientError(
                413,
                "payload_too_large",
                f"the report is larger than {self.settings.max_event_bytes} bytes once encoded",
            )
        received_at = received.isoformat().replace("+00:00", "Z")
        return Intake(
            report_id,
            cred.source_system,
            submission.source_ref,
            idempotency_key,
            received_at,
            payload,
        )

    def stamp(self, submission: Any, report_id: str, source_system: str, received_at: datetime) -> Any:
        """The report event: the validated submission plus the envelope.

        Equal, byte for byte once dumped, to ``make_report(...)`` (a test holds this
        for every example), without validating the submission a second time: its
        fields are validated already, and the envelope is ours (a fresh UUIDv7, a
        source_system checked against the schema's pattern when the tokens were
        loaded, an aware UTC time). That halves the CPU an intake costs.
        """
        return self.report_model.model_construct(
            **dict(submission),
            schema_version=SCHEMA_VERSION,
            source=self.source,
            report_id=report_id,
            source_system=source_system,
            received_at=received_at,
        )

    async def store(self, intakes: list[Intake]) -> list[Receipt | OutboxError]:
        assert self.outbox is not None
        try:
            return await self.outbox.submit_async(intakes)
        except OutboxError as exc:
            raise self.unavailable(exc) from None

    def unavailable(self, exc: OutboxError) -> ClientError:
        retry = {"Retry-After": str(self.settings.retry_after_s)}
        if isinstance(exc, BacklogFull):
            return ClientError(503, "backlog_full", "too many reports wait for Kafka; retry later", headers=retry)
        log.error("outbox unavailable", error_type=type(exc).__name__)
        return ClientError(503, "outbox_unavailable", "the report could not be stored; retry later", headers=retry)


# -- request helpers -----------------------------------------------------------------------------
def _media_type(request: Request) -> tuple[str, str | None]:
    raw = request.headers.get("content-type", "")
    media, _, params = raw.partition(";")
    charset = None
    match = re.search(r"charset\s*=\s*\"?([A-Za-z0-9._-]+)", params, re.I)
    if match:
        charset = match.group(1).lower()
    return media.strip().lower(), charset


def _check_charset(charset: str | None) -> None:
    if charset not in (None, "utf-8", "utf8"):
        raise ClientError(415, "unsupported_media_type", "only UTF-8 is accepted")


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise ClientError(400, "bad_request", "Content-Length is not a number") from None
        if size > limit:
            raise ClientError(413, "payload_too_large", f"the body is larger than {limit} bytes")
    chunks: list[bytes] = []
    total = 0
    try:
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit:
                raise ClientError(413, "payload_too_large", f"the body is larger than {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        raise ClientError(400, "bad_request", "the client went away before the body was read") from None
    return b"".join(chunks)


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not IDEMPOTENCY_KEY.match(key):
        raise ClientError(
            422,
            "invalid",
            "the Idempotency-Key header is not valid",
            [{"field": "header.Idempotency-Key", "reason": "1 to 128 visible ASCII characters"}],
        )
    return key


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode(),
        status,
        headers=headers,
        media_type="application/json",
    )


# -- the app -------------------------------------------------------------------------------------
def create_app(
    source: Source | str,
    settings: AdapterSettings,
    *,
    kafka_settings: KafkaSettings,
    topic_settings: TopicSettings,
    state_dir: Path = Path(".run/state"),
    runtime: AdapterRuntime | None = None,
    **runtime_options: Any,
) -> FastAPI:
    """The FastAPI app of one source's adapter; its lifespan starts and stops the runtime."""
    source = Source(source)
    rt = runtime or AdapterRuntime(
        source,
        settings,
        kafka_settings=kafka_settings,
        topic_settings=topic_settings,
        state_dir=state_dir,
        **runtime_options,
    )
    model = rt.model
    known_paths = field_paths(model)

    def loggable_fields(errors: list[dict[str, str]]) -> list[str]:
        """Field paths for the log: schema paths and locators only. A key the client invented
        is shown as '(unknown field)', since its name is free text that may be personal."""
        out = []
        for error in errors[:20]:
            field = error.get("field", "")
            generic = ".".join(p for p in field.split(".") if not p.isdigit())
            out.append(field if generic in known_paths or _LOCATOR.match(field) else "(unknown field)")
        return out

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        rt.start()
        try:
            yield
        finally:
            await asyncio.to_thread(rt.stop)

    app = FastAPI(
        title=f"cluebus intake adapter: {source.value}",
        version="1",
        description=(
            f"Mandatory reports from {source.value} systems. Authenticate with "
            "`Authorization: Bearer <token>`; the adapter stamps source and source_system from the "
            "token. A 202 means the report is durably stored and will be published to Kafka."
        ),
        lifespan=lifespan,
        redoc_url=None,
        redirect_slashes=False,  # machine clients: a wrong path is a 404 naming it, not a redirect
    )
    app.state.adapter = rt

    # -- errors: every rejection names its reason -------------------------------------------------
    def _intake_path(request: Request) -> bool:
        return request.method == "POST" and request.url.path.startswith("/v1/reports")

    @app.exception_handler(ClientError)
    async def _client_error(request: Request, exc: ClientError) -> Response:
        rt.metrics.rejected(exc.error)
        if _intake_path(request):
            rt.metrics.received("rejected")
        log.info(
            "request refused",
            status=exc.status,
            error=exc.error,
            path=request.url.path,
            fields=loggable_fields(exc.errors),
        )
        return _json(exc.body(), exc.status, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_request")
        body = {"error": code, "message": str(exc.detail)}
        return _json(body, exc.status_code, dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def _request_invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = [
            {
                "field": ".".join(str(p) for p in e.get("loc", ())) or "request",
                "reason": str(e.get("msg", "invalid")),
            }
            for e in exc.errors()
        ]
        return _json({"error": "invalid", "message": "the request is not valid", "errors": problems}, 422)

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
        return _json({"error": "internal", "message": "internal error; the report was not accepted"}, 500)

    # -- intake -----------------------------------------------------------------------------------
    submission_ref = {"$ref": f"#/components/schemas/{model.__name__}"}

    @app.post(
        "/v1/reports",
        status_code=202,
        tags=["intake"],
        summary=f"Submit one {source.value} report",
        responses={202: {"model": ReceiptOut}, **_ERRORS},
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": submission_ref}},
            },
            "parameters": [
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string", "maxLength": 128},
                    "description": "Optional; a retry with the same key gets the original receipt.",
                }
            ],
        },
    )
    async def post_report(request: Request) -> Response:
        # Each request runs in its own asyncio task with its own copy of the log context, so
        # what authenticate() binds ends with the request; nothing needs unbinding first.
        started = time.perf_counter()
        cred = rt.authenticate(request)
        media, charset = _media_type(request)
        if media not in JSON_TYPES and not media.endswith("+json"):
            raise ClientError(415, "unsupported_media_type", "send the report as application/json")
        _check_charset(charset)
        key = _idempotency_key(request)
        body = await _read_body(request, settings.max_body_bytes)
        intake = rt.build_intake(body, cred, key)
        [result] = await rt.store([intake])
        if isinstance(result, OutboxError):
            raise rt.unavailable(result)
        rt.metrics.received("duplicate" if result.duplicate else "accepted")
        log.info("report accepted", report_id=result.report_id, duplicate=result.duplicate)
        rt.metrics.intake["single"].observe(time.perf_counter() - started)
        return _json(
            {
                "report_id": result.report_id,
                "received_at": result.received_at,
                "duplicate": result.duplicate,
            },
            202,
            {"Location": f"/v1/reports/{result.report_id}"},
        )

    @app.post(
        "/v1/reports/batch",
        tags=["intake"],
        response_model=BatchOut,
        summary="Submit many reports (JSON lines or CSV); each row is answered on its own",
        responses=_ERRORS,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/x-ndjson": {
                        "schema": {"type": "string"},
                        "example": "{...one submission...}\n{...another...}\n",
                    },
                    "text/csv": {
                        "schema": {"type": "string"},
                        "example": "source_ref,reported_at,category,...\n",
                    },
                },
            }
        },
    )
    async def post_batch(request: Request) -> Response:
        started = time.perf_counter()
        cred = rt.authenticate(request)
        media, charset = _media_type(request)
        if media not in NDJSON_TYPES and media not in CSV_TYPES:
            raise ClientError(
                415,
                "unsupported_media_type",
                "send application/x-ndjson (one JSON report per line) or text/csv",
            )
        _check_charset(charset)
        body = await _read_body(request, settings.max_batch_bytes)

        def prepare() -> tuple[list[dict[str, Any] | None], list[Intake], list[int], list[int]]:
            try:
                if media in NDJSON_TYPES:
                    rows = parse_ndjson(body, settings.max_batch_rows)
                else:
                    rows = parse_csv(body, model, settings.max_batch_rows)
            except TooManyRows as exc:
                raise ClientError(413, "too_many_rows", str(exc)) from None
            except BatchError as exc:
                raise ClientError(422, "invalid", str(exc), exc.errors) from None
            if not rows:
                raise ClientError(
                    422,
                    "invalid",
                    "the batch has no rows",
                    [{"field": "body", "reason": "no rows"}],
                )
            results: list[dict[str, Any] | None] = []
            intakes: list[Intake] = []
            where: list[int] = []
            numbers: list[int] = []
            for row in rows:
                numbers.append(row.row)
                if row.errors is not None or row.body is None:
                    results.append(
                        {
                            "row": row.row,
                            "status": "rejected",
                            "error": "invalid",
                            "errors": row.errors or [],
                        }
                    )
                    continue
                try:
                    intakes.append(rt.build_intake(row.body, cred, None))
                except ClientError as exc:
                    results.append(
                        {
                            "row": row.row,
                            "status": "rejected",
                            "error": exc.error,
                            "errors": exc.errors or [{"field": "body", "reason": exc.message}],
                        }
                    )
                    continue
                where.append(len(results))
                results.append(None)
            return results, intakes, where, numbers

        results, intakes, where, numbers = await asyncio.to_thread(prepare)
        stored = await rt.store(intakes) if intakes else []
        for index, outcome in zip(where, stored, strict=True):
            row = numbers[index]
            if isinstance(outcome, Receipt):
                results[index] = {
                    "row": row,
                    "status": "duplicate" if outcome.duplicate else "accepted",
                    "report_id": outcome.report_id,
                    "received_at": outcome.received_at,
                }
                log.info(
                    "report accepted",
                    report_id=outcome.report_id,
                    row=row,
                    duplicate=outcome.duplicate,
                )
            else:
                refusal = rt.unavailable(outcome)
                results[index] = {
                    "row": row,
                    "status": "rejected",
                    "error": refusal.error,
                    "errors": [{"field": "row", "reason": refusal.message}],
                    "retryable": True,
                }
        tally = {"accepted": 0, "duplicate": 0, "rejected": 0}
        for item in results:
            assert item is not None
            tally[item["status"]] += 1
            if item["status"] == "rejected":
                rt.metrics.rejected(item["error"])
        for outcome_name, count in tally.items():
            if count:
                rt.metrics.received(outcome_name, count)
        log.info("batch answered", rows=len(results), **{k: v for k, v in tally.items()})
        rt.metrics.intake["batch"].observe(time.perf_counter() - started)
        return _json(
            {
                "accepted": tally["accepted"],
                "duplicates": tally["duplicate"],
                "rejected": tally["rejected"],
                "results": results,
            }
        )

    @app.get(
        "/v1/reports/{report_id}",
        tags=["intake"],
        response_model=ReportStateOut,
        summary="The receipt of a report and where it stands per department",
        responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}, 404: {"model": ErrorOut}},
    )
    async def get_report(report_id: str, request: Request) -> Response:
        cred = rt.authenticate(request)
        not_found = ClientError(404, "not_found", "no report with this id from this system")
        if not UUID7.match(report_id):
            raise not_found
        assert rt.outbox is not None
        view = rt.outbox.receipt(report_id)
        if view is None or view.source_system != cred.source_system:
            raise not_found
        status = None
        if view.status is not None:
            parsed = ReportStatus.model_validate_json(view.status)
            status = {
                "seq": parsed.seq,
                "updated_at": parsed.updated_at.isoformat(),
                "departments": [d.model_dump(mode="json") for d in parsed.departments],
            }
        return _json(
            {
                "report_id": view.report_id,
                "source_ref": view.source_ref,
                "received_at": view.received_at,
                "published": view.published,
                "published_at": _iso_ms(view.published_ms),
                "status": status,
            }
        )

    # -- operations -------------------------------------------------------------------------------
    @app.get("/healthz", tags=["operations"], summary="Alive")
    async def healthz() -> Response:
        checks = rt.health()
        ok = all(checks.values())
        return _json({"status": "ok" if ok else "failing", "checks": checks}, 200 if ok else 503)

    @app.get("/readyz", tags=["operations"], summary="Kafka reachable and the outbox not stuck")
    async def readyz() -> Response:
        state = rt.readiness()
        return _json(state, 200 if state["ready"] else 503)

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics")
    async def metrics() -> Response:
        data, content_type = exposition(rt.metrics.registry)
        return Response(data, media_type=content_type)

    # -- OpenAPI: the submission schema and bearer auth -------------------------------------------
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components = doc.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
        components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        for path, ops in doc.get("paths", {}).items():
            if path.startswith("/v1/"):
                for op in ops.values():
                    op["security"] = [{"bearer": []}]
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
    return app
