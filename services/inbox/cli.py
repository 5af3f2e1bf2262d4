"""``cluebus inbox <department> ...``: a department works its referrals from a terminal.

Every command first syncs (new referrals in, ``received`` sent, queued acks and
access records out) unless ``--offline`` is given. Lists and confirmations print
ids, codes and due times; only ``show`` prints the referral's content, to the
person entitled to it, and it records who opened it (an access record).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import click

from services.common import settings as cfg

USER_ENV = "CLUEBUS_INBOX_USER"


@click.group("inbox")
@click.argument("department")
@click.option(
    "--user", envvar=USER_ENV, default=None, help=f"Your staff id, recorded on every acknowledgement (or {USER_ENV})."
)
@click.option("--offline", is_flag=True, help="Do not contact Kafka; act on the local store only.")
@click.option("--sync-timeout", type=float, default=10.0, show_default=True, help="Seconds to read new referrals.")
@click.pass_context
def inbox_group(ctx: click.Context, department: str, user: str | None, offline: bool, sync_timeout: float) -> None:
    """A department's referral inbox: sync, list, show, accept, decline, complete."""
    ctx.obj = {"department": department, "user": user, "offline": offline, "sync_timeout": sync_timeout}


@contextmanager
def _inbox(ctx: click.Context, *, needs_user: bool = False) -> Iterator[Any]:
    from services.common.kafka import KafkaUnavailable
    from services.common.logging import configure
    from services.inbox.client import DepartmentInbox, InboxError
    from services.inbox.store import inbox_store_path
    from services.rules import load_rules

    o = ctx.obj
    if needs_user and not o["user"]:
        _fail(f"say who you are: --user <staff id> or {USER_ENV}")
    try:
        service = cfg.load(cfg.ServiceSettings)
        configure(level="warning" if service.log_level == "info" else service.log_level, fmt=service.log_format)
        inbox = DepartmentInbox(
            cfg.load(cfg.KafkaSettings),
            cfg.load(cfg.TopicSettings),
            load_rules(service.rules_file),
            o["department"],
            store=inbox_store_path(service.state_dir, o["department"]),
            user=o["user"] or "inbox",
        )
    except (ValueError, InboxError) as exc:
        _fail(str(exc))
    try:
        if not o["offline"]:
            result = inbox.sync(o["sync_timeout"])
            if result.new or result.unreadable:
                click.echo(
                    f"synced: {result.new} new referral(s)"
                    + (f", {result.unreadable} unreadable record(s) skipped" if result.unreadable else ""),
                    err=True,
                )
        yield inbox
    except (InboxError, KafkaUnavailable) as exc:
        _fail(str(exc))
    finally:
        unsent, unsent_access = inbox.unsent_acks(), inbox.unsent_access()
        inbox.close()
        if unsent:
            click.echo(f"{unsent} acknowledgement(s) stored locally, not yet sent; `sync` sends them", err=True)
        if unsent_access:
            click.echo(f"{unsent_access} access record(s) stored locally, not yet sent; `sync` sends them", err=True)


def _fail(message: str) -> None:
    click.echo(f"cluebus inbox: error: {message}", err=True)
    sys.exit(1)


def _due(when: datetime) -> str:
    left = (when - datetime.now(UTC)).total_seconds()
    sign = "overdue " if left < 0 else "in "
    left = abs(left)
    span = f"{left / 86400:.1f}d" if left >= 86400 else f"{left / 3600:.1f}h" if left >= 3600 else f"{left / 60:.0f}m"
    return f"{when.astimezone(UTC):%Y-%m-%d %H:%M}Z ({sign}{span})"


@inbox_group.command("sync")
@click.pass_context
def sync_command(ctx: click.Context) -> None:
    """Read new referrals (acknowledging receipt) and send queued acknowledgements."""
    with _inbox(ctx) as inbox:
        counts = inbox.store.counts()
        click.echo("  ".join(f"{k}={v}" for k, v in sorted(counts.items())))


@inbox_group.command("list")
@click.option("--all", "everything", is_flag=True, help="Include declined and completed referrals.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
def list_command(ctx: click.Context, everything: bool, as_json: bool) -> None:
    """Referrals waiting on this department, most urgent and soonest due first."""
    from schemas import Stage
    from services.inbox.store import dumps

    with _inbox(ctx) as inbox:
        items = inbox.all() if everything else inbox.pending()
        if as_json:
            for item in items:
                click.echo(dumps(item))
            return
        if not items:
            click.echo("no open referrals")
            return
        click.echo(f"{'REFERRAL':<36}  {'PRIORITY':<8}  {'ROLE':<11}  {'STAGE':<9}  {'CATEGORY':<28}  NEXT DUE")
        for item in items:
            due = item.next_due
            owner = "  (case owner required)" if item.case_owner_required and Stage(item.stage).undecided else ""
            click.echo(
                f"{item.referral_id:<36}  {item.priority:<8}  {item.role:<11}  {item.stage:<9}  "
                f"{item.category:<28}  {f'{due[0]} {_due(due[1])}' if due else '-'}{owner}"
            )


@inbox_group.command("show")
@click.argument("referral_id")
@click.pass_context
def show_command(ctx: click.Context, referral_id: str) -> None:
    """One referral in full (what the rules share with this department); records that you opened it."""
    with _inbox(ctx, needs_user=True) as inbox:
        referral = inbox.show(referral_id, by=ctx.obj["user"])
        click.echo(json.dumps(referral.model_dump(mode="json"), indent=2, ensure_ascii=False))


def _action(name: str, run: Callable[[Any, str], Any]) -> Callable[..., None]:
    def confirm(ctx: click.Context, referral_id: str, **_: Any) -> None:
        with _inbox(ctx, needs_user=True) as inbox:
            ack = run(inbox, referral_id)
            click.echo(f"{name} {ack.referral_id} (report {ack.report_id}) by {ack.by}")

    return confirm


@inbox_group.command("accept")
@click.argument("referral_id")
@click.option("--case-owner", default=None, help="Staff id of the case owner (required for some referrals).")
@click.pass_context
def accept_command(ctx: click.Context, referral_id: str, case_owner: str | None) -> None:
    """Take the referral on."""
    _action("accepted", lambda inbox, rid: inbox.accept(inbox.resolve(rid), case_owner=case_owner))(ctx, referral_id)


@inbox_group.command("decline")
@click.argument("referral_id")
@click.option(
    "--reason-code",
    required=True,
    help="not_in_remit, insufficient_information, duplicate, handled_elsewhere or other.",
)
@click.option("--reason", required=True, help="Why, in words (kept out of logs and metrics).")
@click.pass_context
def decline_command(ctx: click.Context, referral_id: str, reason_code: str, reason: str) -> None:
    """Refuse the referral, with a reason (a lead department's decline escalates at once)."""
    _action("declined", lambda inbox, rid: inbox.decline(inbox.resolve(rid), reason_code, reason))(ctx, referral_id)


@inbox_group.command("complete")
@click.argument("referral_id")
@click.option(
    "--outcome-code",
    required=True,
    help="case_opened, referred_on, victim_placed, services_provided, no_concern_found or closed_other.",
)
@click.option("--outcome", required=True, help="What was done, in words (kept out of logs and metrics).")
@click.pass_context
def complete_command(ctx: click.Context, referral_id: str, outcome_code: str, outcome: str) -> None:
    """Close an accepted referral with its outcome."""
    _action("completed", lambda inbox, rid: inbox.complete(inbox.resolve(rid), outcome_code, outcome))(ctx, referral_id)


COMMANDS = [inbox_group]
