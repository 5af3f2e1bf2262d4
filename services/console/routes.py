"""The console's pages: sign-in, the department queue, one referral and its actions, supervision, oversight.

Every page checks the session (:func:`signed_in`) and, for a referral, that it is
in the signed-in user's own department's inbox (else 403, whether or not it
exists elsewhere). Every POST checks the session's CSRF token first. Showing a
referral goes through ``DepartmentInbox.show``, which stores the access record
before the page is rendered; actions go through the inbox with ``by`` = the
signed-in user, so every acknowledgement names who did it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from schemas import AccessChannel, DeclineReason, OutcomeCode
from schemas.events import UUID_PATTERN
from schemas.lifecycle import ack_refusal
from services.console import views
from services.console.app import Console, Denied, log, render, signed_in
from services.console.auth import LOGIN_COOKIE, SESSION_COOKIE, new_token, tokens_equal
from services.console.runtime import DepartmentWorker
from services.console.users import ConsoleRole, authenticate
from services.inbox.client import InboxError

router = APIRouter()
WORKERS = (ConsoleRole.staff, ConsoleRole.supervisor, ConsoleRole.joint_meeting)
LANDING = {
    ConsoleRole.staff: "/queue",
    ConsoleRole.supervisor: "/queue",
    ConsoleRole.joint_meeting: "/oversight",
    ConsoleRole.admin: "/admin",
}
STAGE_OF_ACTION = {"accept": "accepted", "decline": "declined", "complete": "completed"}
COOKIE = {"secure": True, "httponly": True, "samesite": "strict", "path": "/"}


def _console(request: Request) -> Console:
    return request.app.state.console


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _check_csrf(request: Request, session: Any, given: str | None) -> None:
    if not tokens_equal(given, session.csrf):
        _console(request).metrics.denied.labels(reason="csrf").inc()
        log.warning("form refused: CSRF token missing or wrong", user=session.username, path=request.url.path)
        raise Denied("error.csrf", "csrf")


def _worker(request: Request, department: str) -> DepartmentWorker | None:
    return _console(request).workers.get(department)


# --- health, sign-in, sign-out ---------------------------------------------------------------------
@router.get("/healthz")
def healthz() -> JSONResponse:
    return JSONResponse({"ok": True})


@router.get("/static/console.css")
def stylesheet() -> Response:
    from services.console.app import HERE

    css = (HERE / "static" / "console.css").read_text(encoding="utf-8")
    return Response(css, media_type="text/css", headers={"Cache-Control": "max-age=3600"})


@router.get("/")
def home(request: Request) -> Response:
    _session, user = signed_in(request)
    return RedirectResponse(LANDING[user.role], status_code=303)


def _sign_in_page(request: Request, status_code: int = 200, message: str | None = None, error: bool = False) -> Any:
    token = new_token()
    response = render(
        request, "signin.html", status_code=status_code, csrf=token, message=message, error=error, user=None
    )
    response.set_cookie(LOGIN_COOKIE, token, max_age=3600, **COOKIE)
    return response


@router.get("/signin")
def sign_in_form(request: Request, m: str | None = None) -> Response:
    message = {
        "idle": "signin.ended_idle",
        "ended": "signin.ended",
        "expired": "signin.ended",
        "out": "signin.signed_out",
    }
    return _sign_in_page(request, message=message.get(m or ""))


@router.post("/signin")
def sign_in(
    request: Request,
    username: str = Form(""),
    password: str = Form(""),  # noqa: S107 - a form field, not a secret
    csrf: str | None = Form(None),
) -> Response:
    console = _console(request)
    now, address = console.clock(), _client(request)
    if not tokens_equal(csrf, request.cookies.get(LOGIN_COOKIE)):
        console.metrics.sign_in_failures.labels(reason="csrf").inc()
        raise Denied("error.csrf", "csrf")
    username = username.strip()
    refusal = console.throttle.refusal(username, address, now)
    if refusal is not None:
        console.metrics.sign_in_failures.labels(reason=refusal).inc()
        log.warning("sign-in refused", reason=refusal)  # the typed name may be a password: not logged
        status = 429 if refusal == "rate_limited" else 423
        response = _sign_in_page(request, status, f"signin.{refusal}", error=True)
        response.headers["Retry-After"] = str(console.throttle.retry_after(username, address, now))
        return response
    user = authenticate(console.users.current(), username, password)
    if user is None:
        locked = console.throttle.failed(username, address, now)
        console.metrics.sign_in_failures.labels(reason="bad_credentials").inc()
        if locked:
            console.metrics.lockouts.inc()
        log.warning("sign-in failed", locked=locked)
        return _sign_in_page(request, 401, "signin.locked" if locked else "signin.failed", error=True)
    console.throttle.succeeded(username)
    token = console.sessions.create(user.username, user.department, user.role.value, user.changed_at, now)
    console.metrics.sign_ins.labels(role=user.role.value).inc()
    log.info("signed in", user=user.username, department=user.department, role=user.role.value)
    response = RedirectResponse(LANDING[user.role], status_code=303)
    response.set_cookie(SESSION_COOKIE, token, max_age=int(console.settings.session_max_s), **COOKIE)
    response.delete_cookie(LOGIN_COOKIE, **COOKIE)
    return response


@router.post("/signout")
def sign_out(request: Request, csrf: str | None = Form(None)) -> Response:
    session, user = signed_in(request)
    _check_csrf(request, session, csrf)
    console = _console(request)
    console.sessions.end(request.cookies.get(SESSION_COOKIE))
    log.info("signed out", user=user.username)
    response = RedirectResponse("/signin?m=out", status_code=303)
    response.delete_cookie(SESSION_COOKIE, **COOKIE)
    return response


# --- the department's queue ------------------------------------------------------------------------
@router.get("/queue")
def queue(request: Request, stage: str = "") -> Response:
    session, user = signed_in(request, *WORKERS)
    worker = _worker(request, user.department)
    stage = stage if stage in views.STAGE_FILTERS else views.OPEN_FILTER
    rows: list[views.QueueRow] = []
    problem = None if worker is not None else "not served by this console"
    if worker is not None:
        try:
            rows = views.queue(worker.call(lambda inbox: inbox.all()), stage, datetime.now(UTC))
        except InboxError as exc:
            problem = str(exc)
        problem = problem or worker.last_error
    return render(
        request, "queue.html", session=session, user=user, rows=rows, stage=stage, filters=views.STAGE_FILTERS,
        problem=problem,
    )  # fmt: skip


# --- one referral ----------------------------------------------------------------------------------
def _own_item(request: Request, user: Any, referral_id: str) -> tuple[DepartmentWorker, Any]:
    """The worker and inbox item of a referral of the user's own department; 403 for any other id."""
    if not re.fullmatch(UUID_PATTERN, referral_id):
        raise Denied("error.404", "malformed")
    worker = _worker(request, user.department)
    item = worker.call(lambda inbox: inbox.store.item(referral_id)) if worker is not None else None
    if worker is None or item is None:
        _console(request).metrics.denied.labels(reason="other_department").inc()
        log.warning("referral refused: not in the user's department", user=user.username, referral_id=referral_id)
        raise Denied("error.403", "other_department")
    return worker, item


def _referral_page(
    request: Request, session: Any, user: Any, referral_id: str, status_code: int = 200, **extra: Any
) -> Response:
    console = _console(request)
    worker, _ = _own_item(request, user, referral_id)

    def open_it(inbox: Any) -> tuple[Any, Any, Any]:
        referral = inbox.show(referral_id, by=user.username, channel=AccessChannel.console)
        return referral, inbox.store.item(referral_id), inbox.history(referral_id)

    referral, item, history = worker.call(open_it)
    console.metrics.openings.labels(department=user.department).inc()
    now = datetime.now(UTC)
    return render(
        request,
        "referral.html",
        status_code=status_code,
        session=session,
        user=user,
        referral=referral,
        item=item,
        history=history,
        clocks=views.clocks(item, now),
        route=views.route_steps(console.rules.spec.route, referral.rule_path, user.department),
        tree=views.copy_tree(referral.report),
        owner_required=views.case_owner_required(referral, item),
        owners=sorted(
            u.username for u in console.users.current().values() if u.department == user.department and not u.disabled
        ),
        decline_codes=[c.value for c in DeclineReason],
        outcome_codes=[c.value for c in OutcomeCode],
        **extra,
    )


@router.get("/referrals/{referral_id}")
def referral_page(request: Request, referral_id: str, done: str | None = None) -> Response:
    session, user = signed_in(request, *WORKERS)
    done = done if done in STAGE_OF_ACTION.values() else None
    return _referral_page(request, session, user, referral_id, done=done)


@router.post("/referrals/{referral_id}/{action}")
def act(
    request: Request,
    referral_id: str,
    action: str,
    csrf: str | None = Form(None),
    case_owner: str = Form(""),
    reason_code: str = Form(""),
    reason: str = Form(""),
    outcome_code: str = Form(""),
    outcome: str = Form(""),
) -> Response:
    session, user = signed_in(request, *WORKERS)
    _check_csrf(request, session, csrf)
    if action not in STAGE_OF_ACTION:
        raise Denied("error.404", "unknown_action")
    console = _console(request)
    worker, item = _own_item(request, user, referral_id)
    stage = STAGE_OF_ACTION[action]
    owner = case_owner.strip() or None
    refusal = ack_refusal(item.stage, stage, case_owner_required=item.case_owner_required, case_owner=owner)
    if refusal is None and item.stage == stage:  # a repeat changes nothing: say it is done
        return RedirectResponse(f"/referrals/{referral_id}?done={stage}", status_code=303)
    problem: tuple[str, str] | None = None
    if refusal is not None:
        problem = (f"refusal.{refusal.reason}", "")
    else:

        def do(inbox: Any) -> Any:
            if action == "accept":
                return inbox.accept(referral_id, case_owner=owner, by=user.username)
            if action == "decline":
                return inbox.decline(referral_id, reason_code, reason, by=user.username)
            return inbox.complete(referral_id, outcome_code, outcome, by=user.username)

        try:
            worker.call(do)
        except InboxError as exc:
            problem = ("refusal.invalid", str(exc).split(" refused: ", 1)[-1])
    if problem is not None:
        console.metrics.actions.labels(department=user.department, action=action, outcome="refused").inc()
        log.info("action refused", user=user.username, referral_id=referral_id, action=action)
        return _referral_page(
            request, session, user, referral_id, status_code=409, refused=problem, failed_action=action
        )
    console.metrics.actions.labels(department=user.department, action=action, outcome="done").inc()
    log.info("action done", user=user.username, department=user.department, referral_id=referral_id, action=action)
    return RedirectResponse(f"/referrals/{referral_id}?done={stage}", status_code=303)


# --- supervision and oversight ---------------------------------------------------------------------
@router.get("/supervisor")
def supervisor(request: Request) -> Response:
    session, user = signed_in(request, ConsoleRole.supervisor)
    console = _console(request)
    worker = _worker(request, user.department)
    now = datetime.now(UTC)
    rows = views.overdue(worker.call(lambda inbox: inbox.all()), now) if worker is not None else []
    escalations = console.feed.escalations_to(user.department) if console.feed is not None else []
    return render(request, "supervisor.html", session=session, user=user, rows=rows, escalations=escalations)


@router.get("/oversight")
def oversight(request: Request) -> Response:
    session, user = signed_in(request, ConsoleRole.joint_meeting)
    feed = _console(request).feed
    return render(
        request,
        "oversight.html",
        session=session,
        user=user,
        counts=feed.counts() if feed else [],
        escalations=feed.escalations_to("joint_meeting") if feed else [],
        feed_error=feed.error if feed else "no feed",
    )


@router.get("/admin")
def admin(request: Request) -> Response:
    session, user = signed_in(request, ConsoleRole.admin)
    rows = []
    for department, worker in sorted(_console(request).workers.items()):
        try:
            counts = worker.call(lambda inbox: inbox.store.counts(), timeout_s=5)
        except Exception as exc:  # noqa: BLE001 - the status page says what is wrong, it does not fail
            counts, worker.last_error = {}, worker.last_error or type(exc).__name__
        stored = sum(v for k, v in counts.items() if k not in ("acks_unsent", "access_unsent"))
        unsent = counts.get("acks_unsent", 0) + counts.get("access_unsent", 0)
        synced = datetime.fromtimestamp(worker.last_sync, UTC) if worker.last_sync else None
        rows.append((department, stored, unsent, synced, worker.last_error))
    return render(request, "admin.html", session=session, user=user, rows=rows)
