"""The HTTP intake of one source: the FastAPI app factory.

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

Where things are: the runtime (outbox and threads) in ``runtime.py``; authentication,
validation and stamping in ``intake.py``; the routes in ``routes.py``; the reply models
and the time format in ``responses.py``; refusals and their handlers in ``errors.py``;
the OpenAPI additions in ``openapi.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from schemas import field_paths
from services.adapters.auth import TokenStore
from services.adapters.errors import install_error_handlers
from services.adapters.intake import SubmissionIntake
from services.adapters.openapi import install_openapi
from services.adapters.routes import add_intake_routes, add_operations_routes
from services.adapters.runtime import AdapterRuntime


def create_app(rt: AdapterRuntime, *, tokens: TokenStore | None = None) -> FastAPI:
    """The FastAPI app of one source's adapter over its runtime; its lifespan starts and stops it.

    ``app.state.adapter`` is the :class:`AdapterRuntime`, ``app.state.intake`` the
    :class:`SubmissionIntake` (tokens from ``settings.tokens_file`` unless given).
    """
    source = rt.source
    intake = SubmissionIntake(source, rt.settings, tokens)

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
    app.state.intake = intake
    install_error_handlers(app, rt.metrics, field_paths(intake.model))
    add_intake_routes(app, rt, intake)
    add_operations_routes(app, rt)
    install_openapi(app, intake.model, source)
    return app
