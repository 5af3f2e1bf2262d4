"""``cluebus console``: serve the web console over HTTPS; ``cluebus console user ...``: manage its users.

Passwords are read from a hidden prompt (twice) or, for scripts, from standard
input with ``--password-stdin``; never from an argument, which other users of
the machine could read in the process list.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from services.common import settings as cfg
from services.common.cli_errors import UserError, friendly

SYSTEM_USER = "cluebus-console"  # the automatic ``received`` acks of the console's sync


def _users_file() -> Any:
    from services.console.settings import ConsoleSettings
    from services.console.users import UsersFile

    service = cfg.load(cfg.ServiceSettings)
    return UsersFile(cfg.load(ConsoleSettings).users_path(service.state_dir))


def build_console(departments: str | None = None) -> Any:
    """The :class:`Console` of the configured bus: one inbox worker per department and the oversight feed."""
    from services.acl.model import CONSOLE, department_principal
    from services.common import kafka as clients
    from services.console.app import Console
    from services.console.runtime import DepartmentWorker, OversightFeed
    from services.console.settings import ConsoleSettings
    from services.console.users import UsersFile
    from services.inbox.client import DepartmentInbox
    from services.inbox.store import inbox_store_path
    from services.rules import load_rules

    service = cfg.load(cfg.ServiceSettings)
    settings = cfg.load(ConsoleSettings, **({"departments": departments} if departments is not None else {}))
    kafka, topics = cfg.load(cfg.KafkaSettings), cfg.load(cfg.TopicSettings)
    rules = load_rules(service.rules_file)

    def inbox_of(department: str) -> Any:
        return lambda: DepartmentInbox(
            settings.kafka_for(kafka, department_principal(department)),
            topics,
            rules,
            department,
            store=inbox_store_path(service.state_dir, department),
            user=SYSTEM_USER,
        )

    workers = {
        d: DepartmentWorker(d, inbox_of(d), settings.sync_interval_s)
        for d in settings.department_list(list(rules.departments))
    }
    feed = OversightFeed(
        lambda: clients.consumer(settings.kafka_for(kafka, CONSOLE), group_id=None, client_id="cluebus-console"),
        topics.names.escalations,
        topics.names.status,
    )
    return Console(settings, rules, UsersFile(settings.users_path(service.state_dir)), workers, feed)


@click.group("console", invoke_without_command=True)
@click.option("--host", default=None, help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="HTTPS port (default 8443).")
@click.option("--departments", default=None, help="Comma-separated departments to serve (default: all).")
@click.option(
    "--dev-tls",
    is_flag=True,
    help="Serve a certificate from a fresh local CA (kept in <state_dir>/console-tls) instead of cert/key settings.",
)
@click.pass_context
def console_group(
    ctx: click.Context, host: str | None, port: int | None, departments: str | None, dev_tls: bool
) -> None:
    """The web console: departments work their referrals in a browser (HTTPS). `user` manages accounts."""
    if ctx.invoked_subcommand is not None:
        return
    _serve(host, port, departments, dev_tls)


def _serve(host: str | None, port: int | None, departments: str | None, dev_tls: bool) -> None:
    import uvicorn

    from services.common.logging import configure, get_logger
    from services.common.metrics import serve
    from services.console.app import create_app
    from services.console.settings import dev_certificate

    try:
        service = cfg.load(cfg.ServiceSettings)
        configure(service.log_level, service.log_format, service="console")
        console = build_console(departments)
        settings = console.settings
        if dev_tls:
            cert, key, ca = dev_certificate(service.state_dir / "console-tls")
        elif settings.cert_file and settings.key_file:
            cert, key, ca = settings.cert_file, settings.key_file, None
        else:
            raise ValueError(
                "the console serves HTTPS only: set CLUEBUS_CONSOLE_CERT_FILE and CLUEBUS_CONSOLE_KEY_FILE "
                "(or [console] cert_file/key_file), or use --dev-tls on a development machine"
            )
        for path in (cert, key):
            if not Path(path).is_file():
                raise ValueError(f"{path}: no such file")
        if not console.users.current():
            click.echo(
                f"cluebus console: no users yet in {console.users.path}; add one with `cluebus console user add`",
                err=True,
            )
    except (ValueError, OSError) as exc:
        click.echo(f"cluebus console: error: {exc}", err=True)
        sys.exit(1)
    bind_host = host or settings.host
    bind_port = settings.port if port is None else port
    if settings.metrics_port:
        serve(settings.metrics_port, registry=console.metrics.registry)
    log = get_logger("cluebus.console")
    log.info(
        "console listening",
        url=f"https://{bind_host}:{bind_port}/",
        departments=len(console.workers),
        ca=str(ca) if ca else None,
    )
    uvicorn.run(
        create_app(console),
        host=bind_host,
        port=bind_port,
        ssl_certfile=str(cert),
        ssl_keyfile=str(key),
        log_config=None,
        access_log=False,  # our own lines say who did what; an access log would add addresses and paths
        server_header=False,
    )


# --- users --------------------------------------------------------------------------------------
@console_group.group("user")
def user_group() -> None:
    """Console accounts: add, disable, passwd, list (a TOML file with scrypt hashes, mode 0600)."""


def _password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\n")
        if not password:
            raise UserError("no password on standard input")
        return password
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


def _known_department(department: str) -> None:
    from services.rules import load_rules

    known = load_rules(cfg.load(cfg.ServiceSettings).rules_file).departments
    if department not in known:
        raise UserError(f"unknown department {department!r}; the rules name: {', '.join(sorted(known))}")


@user_group.command("add")
@click.argument("username")
@click.option("--department", required=True, help="Department id from the rules (police, education, ...).")
@click.option(
    "--role",
    type=click.Choice(["staff", "supervisor", "joint_meeting", "admin"]),
    default="staff",
    show_default=True,
)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input (one line).")
@friendly()
def user_add(username: str, department: str, role: str, password_stdin: bool) -> None:
    """Add an account (a staff id, not a name)."""
    from services.console.users import UsersError

    _known_department(department)
    try:
        user = _users_file().add(username, department, role, _password(password_stdin))
    except UsersError as exc:
        raise UserError(str(exc)) from None
    click.echo(f"added {user.username} ({user.department}, {user.role.value})")


@user_group.command("disable")
@click.argument("username")
@friendly()
def user_disable(username: str) -> None:
    """Disable an account; its sessions end at their next request."""
    from services.console.users import UsersError

    try:
        _users_file().disable(username)
    except UsersError as exc:
        raise UserError(str(exc)) from None
    click.echo(f"disabled {username}")


@user_group.command("passwd")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input (one line).")
@friendly()
def user_passwd(username: str, password_stdin: bool) -> None:
    """Set a new password (and enable the account); its sessions end at their next request."""
    from services.console.users import UsersError

    try:
        _users_file().passwd(username, _password(password_stdin))
    except UsersError as exc:
        raise UserError(str(exc)) from None
    click.echo(f"password changed for {username}")


@user_group.command("list")
@friendly()
def user_list() -> None:
    """The accounts: staff id, department, role, enabled (never a hash)."""
    users = _users_file().load()
    for user in sorted(users.values(), key=lambda u: (u.department, u.username)):
        click.echo(
            f"{user.username:<24} {user.department:<20} {user.role.value:<14} {'disabled' if user.disabled else ''}"
        )


COMMANDS = [console_group]
