"""`cluebus audit`: the access records of a referral, a report or a person, with the routing decisions.

Beside each access record: what the decision sent that department, of which subjects' roles,
by which grant and for what reason, and what it withheld.

Reads the audit topic and the decisions topic from their beginning to their
current end (a snapshot; nothing is committed). With ``--report`` only the
partition that report's key lives on is read in each topic.
"""

from __future__ import annotations

import json
import time
from typing import Any

import click
from pydantic import ValidationError

from services.common import settings as cfg
from services.common.cli_errors import UserError, friendly


def read_topic(kafka: Any, topic: str, key: str | None = None, timeout_s: float = 30.0) -> list[bytes]:
    """Every record value of ``topic`` (of ``key``'s partition only, when given), up to its end now."""
    from kafka import TopicPartition
    from kafka.partitioner.default import murmur2

    from services.common import kafka as clients

    consumer = clients.consumer(kafka, group_id=None, client_id="cluebus-audit")
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise UserError(f"no partitions of {topic}: run `cluebus topics ensure` (or check this user's ACLs)")
        if key is not None:  # the default partitioner's choice, as the producers made it
            partitions = {(murmur2(key.encode()) & 0x7FFFFFFF) % len(partitions)}
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        values: list[bytes] = []
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < end for tp, end in ends.items()):
            if time.monotonic() > deadline:
                raise UserError(f"reading {topic} took longer than {timeout_s:.0f}s; try again")
            for records in consumer.poll(timeout_ms=500).values():
                values.extend(r.value for r in records if r.value is not None)
        return values
    finally:
        consumer.close()


def _parse(model: Any, values: list[bytes]) -> tuple[list[Any], int]:
    parsed, bad = [], 0
    for value in values:
        try:
            parsed.append(model.model_validate_json(value))
        except (ValidationError, ValueError):
            bad += 1
    return parsed, bad


@click.command("audit")
@click.option("--referral", default=None, help="A referral id (or its first 8+ characters).")
@click.option("--report", default=None, help="A report id: every department's access records of it.")
@click.option("--user", default=None, help="A staff id: every referral this person opened.")
@click.option("--since", default=None, help="Only records from then: an ISO date/time or a span (24h, 7d).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per record, with the fields sent.")
@friendly()
def audit_command(referral: str | None, report: str | None, user: str | None, since: str | None, as_json: bool) -> None:
    """Who opened which referral's personal data, when, and which fields the routing decision sent."""
    from schemas import AccessEvent, RoutingDecision
    from services.audit.query import AuditQuery, AuditQueryError, join, parse_since, select
    from services.common.logging import configure

    configure(level="warning", fmt="console")
    try:
        query = AuditQuery(referral, report, user, parse_since(since) if since else None)
    except AuditQueryError as exc:
        raise UserError(str(exc)) from None
    kafka, names = cfg.load(cfg.KafkaSettings), cfg.load(cfg.TopicSettings).names
    events, bad_events = _parse(AccessEvent, read_topic(kafka, names.access_audit, key=report))
    matching = select(events, query)
    decisions, _ = _parse(RoutingDecision, read_topic(kafka, names.decisions, key=report)) if matching else ([], 0)
    rows = join(matching, [d for d in decisions if d.report_id in {e.report_id for e in matching}])
    if as_json:
        for row in rows:
            click.echo(
                json.dumps(
                    {
                        "access": row.access.model_dump(mode="json"),
                        "sent": None
                        if row.sent is None
                        else {
                            "role": row.sent.role.value,
                            "rule_path": list(row.sent.rule_path),
                            "fields": list(row.sent.fields),
                            "grants": [g.model_dump(mode="json", exclude_none=True) for g in row.grants],
                            "withheld": row.sent.withheld.model_dump(mode="json"),
                            "rules_version": row.decision.rules_version if row.decision else None,
                        },
                        "groups_beyond_grant": list(row.groups_beyond_grant),
                    },
                    sort_keys=True,
                )
            )
    else:
        _print_table(rows)
    if bad_events:
        click.echo(f"{bad_events} unreadable record(s) on {names.access_audit} skipped", err=True)


def _print_table(rows: list[Any]) -> None:
    if not rows:
        click.echo("no access records match")
        return
    click.echo(f"{'WHEN (UTC)':<20}  {'WHO':<16}  {'DEPARTMENT':<18}  {'CHANNEL':<7}  {'REFERRAL':<36}  FIELD GROUPS")
    for row in rows:
        a = row.access
        click.echo(
            f"{_utc(a.at):<20}  "
            f"{a.by:<16}  {a.department:<18}  {a.channel.value:<7}  {a.referral_id:<36}  {', '.join(a.field_groups)}"
        )
    click.echo("\nwhat the routing decisions sent, of whom and why (field names and roles, never values):")
    seen: set[tuple[str, str]] = set()
    for row in rows:
        key = (row.access.report_id, row.access.department)
        if key in seen:
            continue
        seen.add(key)
        head = f"  report {row.access.report_id} -> {row.access.department}"
        if row.sent is None or row.decision is None:
            click.echo(f"{head}: no routing decision found on the decisions topic")
            continue
        click.echo(
            f"{head} ({row.sent.role.value}, rule {'/'.join(row.sent.rule_path)}, rules {row.decision.rules_version}, "
            f"decided {_utc(row.decision.decided_at)}):"
        )
        click.echo(f"      {', '.join(row.sent.fields)}")
        for grant in row.grants:
            click.echo(f"      {grant.describe()}")
        for line in row.sent.withheld.describe():
            click.echo(f"      {line}")
        if not row.grants:
            click.echo("      (decided before grants were recorded: no reasons on this decision)")
        if row.groups_beyond_grant:
            click.echo(f"      WARNING: shown beyond what was sent: {', '.join(row.groups_beyond_grant)}")


def _utc(when: Any) -> str:
    from datetime import UTC

    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


COMMANDS = [audit_command]
