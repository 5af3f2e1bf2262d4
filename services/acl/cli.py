"""``cluebus acl plan|apply|users``: the bus's principals and ACLs as code.

``plan`` prints the ACLs derived from the routing rules' departments and the
services, without contacting Kafka (``--diff`` compares them with the broker).
``apply`` makes the broker's cluebus ACLs equal to the plan, removing those no
longer derived; running it twice changes nothing. ``users`` sets each
principal's SCRAM-SHA-512 credential from secrets outside the repository (see
:mod:`services.acl.users`). ``apply`` and ``users`` act as the admin given by
``CLUEBUS_KAFKA_*`` (``cluebus kafka up --profile secure`` prints them).
"""

from __future__ import annotations

from pathlib import Path

import click

from services.common import settings as cfg
from services.common.cli_errors import UserError, friendly


def _friendly(func):  # type: ignore[no-untyped-def]
    from services.acl.kafka_acls import AclError

    return friendly(AclError)(func)


_rules_option = click.option(
    "--rules",
    "rules_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Routing rules file whose departments get principals (default: CLUEBUS_RULES_FILE).",
)


def _rules(rules_file: Path | None):  # type: ignore[no-untyped-def]
    from services.rules import load_rules

    return load_rules(rules_file or cfg.load(cfg.ServiceSettings).rules_file)


def _desired(rules_file: Path | None):  # type: ignore[no-untyped-def]
    from services.acl.model import derive_grants, unmanaged

    prefix = cfg.load(cfg.TopicSettings).prefix
    rules = _rules(rules_file)
    departments = sorted(rules.departments)
    desired = derive_grants(prefix, rules)
    for grant in unmanaged(desired, prefix):
        click.echo(
            f"warning: {grant.name} is outside the prefix {prefix!r}: its ACLs are added "
            "but never removed automatically",
            err=True,
        )
    return prefix, departments, desired


def _admin():  # type: ignore[no-untyped-def]
    from services.common.kafka import admin

    return admin(cfg.load(cfg.KafkaSettings), client_id="cluebus-acl")


def _summary(added: int, removed: int, unchanged: int) -> str:
    return f"{added} to add, {removed} to remove, {unchanged} unchanged"


@click.group("acl")
def acl() -> None:
    """Principals, ACLs and SCRAM credentials of the bus (secure profile)."""


@acl.command("plan")
@_rules_option
@click.option(
    "--diff",
    "against_broker",
    is_flag=True,
    help="Compare with the broker: + to add, - to remove (needs admin access).",
)
@click.option("--why", is_flag=True, help="Add a column saying why each ACL exists.")
@_friendly
def acl_plan(rules_file: Path | None, against_broker: bool, why: bool) -> None:
    """Print the ACLs derived from the rules and the services (a table, sorted)."""
    from services.acl.model import render_table

    prefix, departments, desired = _desired(rules_file)
    if not against_broker:
        click.echo(render_table(desired, why=why))
        click.echo(f"\n{len(desired)} ACLs for prefix {prefix!r}, {len(departments)} departments")
        return
    from services.acl.kafka_acls import plan_against

    client = _admin()
    try:
        changes = plan_against(client, desired, prefix)
    finally:
        client.close()
    marks = {**{g: "+" for g in changes.to_add}, **{g: "-" for g in changes.to_remove}}
    click.echo(render_table([*changes.unchanged, *changes.to_add, *changes.to_remove], marks=marks, why=why))
    click.echo("\n" + _summary(len(changes.to_add), len(changes.to_remove), len(changes.unchanged)))


@acl.command("apply")
@_rules_option
@click.option("--dry-run", is_flag=True, help="Only say what would change.")
@_friendly
def acl_apply(rules_file: Path | None, dry_run: bool) -> None:
    """Make the broker's cluebus ACLs equal the plan: add, then remove what is no longer derived."""
    from services.acl.kafka_acls import apply, plan_against
    from services.acl.model import render_table

    prefix, _departments, desired = _desired(rules_file)
    client = _admin()
    try:
        if dry_run:
            changes = plan_against(client, desired, prefix)
            added, removed, unchanged = changes.to_add, changes.to_remove, changes.unchanged
        else:
            result = apply(client, desired, prefix)
            added, removed, unchanged = result.added, result.removed, result.unchanged
    finally:
        client.close()
    if added or removed:
        marks = {**{g: "+" for g in added}, **{g: "-" for g in removed}}
        click.echo(render_table([*added, *removed], marks=marks))
    verb = "would change" if dry_run else "applied"
    click.echo(f"{verb}: {len(added)} added, {len(removed)} removed, {len(unchanged)} unchanged")


@acl.command("users")
@_rules_option
@click.option(
    "--secrets-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Folder of <principal>.password files (default: CLUEBUS_ACL_SECRETS_DIR).",
)
@click.option(
    "--principal",
    "only",
    multiple=True,
    help="Only these principals (repeatable); default: every principal of the bus.",
)
@click.option(
    "--generate-missing",
    is_flag=True,
    help="Write a random password (0600) into the secrets folder for each principal without one.",
)
@click.option(
    "--skip-missing", is_flag=True, help="Set the principals that have a secret and list the others instead of failing."
)
@click.option("--prune", is_flag=True, help="Also delete credentials of cluebus-named principals no longer derived.")
@_friendly
def acl_users(
    rules_file: Path | None,
    secrets_dir: Path | None,
    only: tuple[str, ...],
    generate_missing: bool,
    skip_missing: bool,
    prune: bool,
) -> None:
    """Create or replace each principal's SCRAM-SHA-512 credential from its secret."""
    from services.acl.model import all_principals
    from services.acl.users import (
        SecretSource,
        env_name,
        prune_credentials,
        resolve_passwords,
        set_credentials,
    )

    principals = all_principals(_rules(rules_file).departments)
    unknown = sorted(set(only) - set(principals))
    if unknown:
        raise UserError(f"not principals of the bus: {', '.join(unknown)}")
    chosen = sorted(set(only)) if only else principals
    source = SecretSource(directory=secrets_dir)
    passwords, result = resolve_passwords(chosen, source, generate_missing=generate_missing)
    if result.missing and not skip_missing:
        where = f"{source.directory}/<principal>.password or " if source.directory else ""
        raise UserError(
            f"no secret for {', '.join(result.missing)} (looked in {where}"
            f"{env_name('<principal>')}); nothing changed. Use --generate-missing or --skip-missing"
        )
    client = _admin()
    try:
        set_credentials(client, passwords, result)
        if prune:
            prune_credentials(client, principals, result)
    finally:
        client.close()
    for principal in result.generated:
        click.echo(f"generated {source.file_for(principal)}")
    for principal in result.set:
        click.echo(f"set       {principal} (SCRAM-SHA-512)")
    for principal in result.deleted:
        click.echo(f"deleted   {principal}")
    for principal in result.missing:
        click.echo(f"skipped   {principal}: no secret", err=True)
    click.echo(f"{len(result.set)} set, {len(result.deleted)} deleted, {len(result.missing)} skipped")


COMMANDS = [acl]
