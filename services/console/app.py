"""The console's FastAPI app: what it holds (:class:`Console`), security headers, sign-in checks, error pages.

The pages themselves are in :mod:`services.console.routes`. Every response gets
headers that keep it in this origin (CSP ``default-src 'none'`` with the one
stylesheet allowed, no framing, no referrer) and pages with personal data are
``Cache-Control: no-store``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.templating import Jinja2Templates

from services.common.logging import get_logger
from services.console import views
from services.console.auth import SESSION_COOKIE, Session, SessionStore, SignInThrottle
from services.console.i18n import DEFAULT_LANG, LANGS, Words
from services.console.metrics import ConsoleMetrics
from services.console.runtime import DepartmentWorker, OversightFeed, Syncer
from services.console.settings import ConsoleSettings
from services.console.users import ConsoleRole, User, UsersFile

HERE = Path(__file__).resolve().parent
LANG_COOKIE = "__Host-cluebus-lang"
log = get_logger("cluebus.console")

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Strict-Transport-Security": "max-age=31536000",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


@dataclass
class Console:
    """Everything the pages need; built by the CLI (or a test) and handed to :func:`create_app`."""

    settings: ConsoleSettings
    rules: Any  # CompiledRules
    users: UsersFile
    workers: dict[str, DepartmentWorker]
    feed: OversightFeed | None
    metrics: ConsoleMetrics = field(default_factory=ConsoleMetrics)
    clock: Callable[[], float] = time.monotonic
    sessions: SessionStore = field(init=False)
    throttle: SignInThrottle = field(init=False)
    zone: tzinfo = field(init=False)
    _syncer: Syncer | None = None

    def __post_init__(self) -> None:
        s = self.settings
        self.sessions = SessionStore(s.idle_timeout_s, s.session_max_s)
        self.throttle = SignInThrottle(s.lockout_failures, s.lockout_s, s.address_failures)
        self.zone = views.zone(s.timezone)
        self.metrics.sessions.set_function(lambda: self.sessions.active(self.clock()))

    def department_names(self) -> dict[str, tuple[str, str]]:
        return {d: (spec.name_zh, spec.name_en) for d, spec in self.rules.departments.items()}

    def start(self) -> None:
        self._syncer = Syncer(list(self.workers.values()), self.settings.sync_interval_s)
        self._syncer.start()
        if self.feed is not None:
            self.feed.start()

    def stop(self) -> None:
        if self._syncer is not None:
            self._syncer.stop()
        if self.feed is not None:
            self.feed.stop()
        for worker in self.workers.values():
            worker.close()


class SignInRequired(Exception):
    """Answered with a redirect to the sign-in page (``why``: idle, ended or none)."""

    def __init__(self, why: str | None = None) -> None:
        self.why = why


class Denied(Exception):
    """Answered with a 403 page; ``key`` is the explanation's text key."""

    def __init__(self, key: str, reason: str) -> None:
        self.key, self.reason = key, reason


def lang_of(request: Request) -> str:
    lang = request.query_params.get("lang") or request.cookies.get(LANG_COOKIE) or DEFAULT_LANG
    return lang if lang in LANGS else DEFAULT_LANG


def words(request: Request) -> Words:
    console: Console = request.app.state.console
    return Words(lang_of(request), console.department_names())


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    console: Console = request.app.state.console
    t = words(request)
    response = request.app.state.templates.TemplateResponse(
        request,
        name,
        {
            "t": t,
            "lang": t.lang,
            "other_lang": "en" if t.lang == "zh" else "zh",
            "now": datetime.now(UTC),
            "zone": console.zone,
            "local_time": lambda when: views.local_time(when, console.zone),
            "span": lambda seconds: views.span(seconds, t.lang),
            "Role": ConsoleRole,
            **context,
        },
        status_code=status_code,
        headers={"Cache-Control": "no-store"},
    )
    if request.query_params.get("lang") in LANGS:
        response.set_cookie(
            LANG_COOKIE, t.lang, max_age=365 * 86400, secure=True, httponly=True, samesite="strict", path="/"
        )
    return response


def signed_in(request: Request, *roles: ConsoleRole) -> tuple[Session, User]:
    """The request's live session and its user, or :class:`SignInRequired` / :class:`Denied`.

    A session ends when it idles out or ages out, and when its user was disabled or
    had the password changed since it began (the users file is re-read when it changes).
    """
    console: Console = request.app.state.console
    token = request.cookies.get(SESSION_COOKIE)
    session, why = console.sessions.get(token, console.clock())
    if session is None:
        raise SignInRequired(why)
    user = console.users.get(session.username)
    if user is None or user.disabled or user.changed_at != session.password_changed_at:
        console.sessions.end(token)
        log.info("session ended: account changed", user=session.username)
        raise SignInRequired("ended")
    if roles and user.role not in roles:
        console.metrics.denied.labels(reason="role").inc()
        raise Denied("error.403_role", "role")
    return session, user


def create_app(console: Console) -> FastAPI:
    from services.console.routes import router

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Iterator[None]:  # type: ignore[misc]
        console.start()
        try:
            yield
        finally:
            console.stop()

    app = FastAPI(title="cluebus console", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.console = console
    app.state.templates = Jinja2Templates(directory=HERE / "templates")
    app.include_router(router)

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Callable[[Request], Any]) -> Response:
        response: Response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @app.exception_handler(SignInRequired)
    async def to_sign_in(request: Request, exc: SignInRequired) -> Response:
        target = "/signin" + (f"?m={exc.why}" if exc.why in ("idle", "ended", "expired") else "")
        response = RedirectResponse(target, status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="strict")
        return response

    @app.exception_handler(Denied)
    async def denied(request: Request, exc: Denied) -> Response:
        return render(request, "error.html", status_code=403, message_key=exc.key, user=None)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        key = "error.404" if exc.status_code == 404 else "error.403_role"
        return render(request, "error.html", status_code=exc.status_code, message_key=key, user=None)

    return app
