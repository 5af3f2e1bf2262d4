"""`cluebus router` (the service) and `cluebus rules check|test|explain` (tools for rule authors)."""

from __future__ import annotations

import json
import sys
from datetime import UTC
from pathlib import Path

import click

from services.common import settings as cfg


def _rules_file(path: Path | None) -> Path:
    return path or cfg.load(cfg.ServiceSettings).rules_file


def _load(path: Path | None):  # type: ignore[no-untyped-def]
    from services.rules import RulesError, load_rules

    try:
        return load_rules(_rules_file(path))
    except RulesError as exc:
        for line in exc.lines():
            click.echo(line, err=True)
        sys.exit(1)


@click.command("router")
@click.option("--metrics-port", type=int, default=None, help="Port of /metrics (0: none).")
def router_command(metrics_port: int | None) -> None:
    """Run the router (a faust worker). Stop it with SIGTERM; reload rules with SIGHUP."""
    from kafka.errors import KafkaError

    from services.common.faust_app import run_worker
    from services.common.kafka import KafkaUnavailable
    from services.common.topic_admin import TopicAdminError, ensure_topics, faust_internal_specs, fit_to_cluster
    from services.router.app import create_router
    from services.router.settings import RouterSettings

    try:
        service = cfg.load(cfg.ServiceSettings)
        overrides = {"metrics_port": metrics_port} if metrics_port is not None else {}
        kafka = cfg.load(cfg.KafkaSettings)
        # Replication fitted to the cluster before faust sees it; faust's own topics made the bus's way.
        topics = fit_to_cluster(kafka, cfg.load(cfg.TopicSettings))
        router = create_router(kafka, topics, service, cfg.load(RouterSettings, **overrides))
        for problem in ensure_topics(kafka, faust_internal_specs(router.app, topics)).mismatched:
            click.echo(f"cluebus: warning: {problem}", err=True)
    except (ValueError, KafkaUnavailable, TopicAdminError, KafkaError) as exc:  # one line, no traceback
        click.echo(f"cluebus: error: {exc}", err=True)
        sys.exit(1)
    run_worker(router.app, service="router", log_level=service.log_level, log_format=service.log_format)


@click.group("rules")
def rules_group() -> None:
    """Check, test and explain routing_rules.toml (like amtool)."""


@rules_group.command("check")
@click.argument("file", type=click.Path(path_type=Path), required=False)
def rules_check(file: Path | None) -> None:
    """Validate the rules; print a summary, or each fault with its line and exit 1."""
    rules = _load(file)
    summary = rules.summary()
    click.echo(f"{_rules_file(file)}: OK")
    click.echo(f"  version      {summary['version']}")
    click.echo(f"  departments  {summary['departments']}")
    click.echo(f"  routes       {summary['routes']} (depth {summary['depth']})")
    click.echo(f"  calendars    {', '.join(summary['calendars'])}")


@rules_group.command("test")
@click.argument("cases", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--rules", "file", type=click.Path(path_type=Path), default=None)
def rules_test(cases: Path, file: Path | None) -> None:
    """Run routing cases; print every mismatch; exit 1 on any."""
    from services.rules.cases import run_cases

    rules = _load(file)
    try:
        results = run_cases(rules, cases)
    except ValueError as exc:
        click.echo(f"cluebus: error: {exc}", err=True)
        sys.exit(2)
    failed = [r for r in results if not r.ok]
    for result in results:
        click.echo(f"{'ok  ' if result.ok else 'FAIL'}  {result.name}")
        for problem in result.problems:
            click.echo(f"        {problem}")
    click.echo(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    if failed:
        sys.exit(1)


@rules_group.command("explain")
@click.argument("report", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--rules", "file", type=click.Path(path_type=Path), default=None)
def rules_explain(report: Path, file: Path | None) -> None:
    """Show a report's path through the tree, its recipients and the fields each would get."""
    from pydantic import ValidationError

    from schemas import parse_report
    from services.common.deadletter import describe_error

    rules = _load(file)
    try:
        parsed = parse_report(report.read_bytes())
    except ValidationError as exc:
        click.echo(f"cluebus: error: {report}: {describe_error(exc)[1]}", err=True)
        sys.exit(1)
    plan = rules.plan(parsed, parsed.received_at)
    click.echo(
        f"report {parsed.report_id} ({parsed.source.value}, {parsed.category.value}, "
        f"urgency {parsed.urgency.value}) under rules {rules.version}"
    )
    click.echo("matched routes:" if not plan.result.fallback else "no route matched; the root's fallback applies:")
    for path in plan.result.matched_paths:
        click.echo(f"  {' > '.join(path)}")
    click.echo(f"priority: {plan.result.priority.value}")
    click.echo("recipients:")
    for p in plan.referrals:
        flags = [p.role.value]
        if p.case_owner_required:
            flags.append("case owner required")
        if p.anonymised:
            flags.append("anonymised (adult victim refused consent)")
        click.echo(f"  {p.department:<20} {', '.join(flags)}   via {' > '.join(p.rule_path)}")
        due = ", ".join(f"{stage} {when.astimezone(UTC):%Y-%m-%d %H:%M}Z" for stage, when in p.due.items())
        click.echo(f"      due: {due}")
        click.echo(f"      fields ({len(p.fields)}): {', '.join(p.fields)}")


@click.command("deadletters")
@click.option("--limit", type=int, default=50, show_default=True)
def deadletters_command(limit: int) -> None:
    """List dead letters (ids, topic, offset, error type; never their content)."""
    from schemas import DeadLetter
    from services.common import kafka as clients

    kafka = cfg.load(cfg.KafkaSettings)
    names = cfg.load(cfg.TopicSettings).names
    consumer = clients.consumer(kafka, names.deadletter, group_id=None, consumer_timeout_ms=3000)
    shown = 0
    try:
        for message in consumer:
            try:
                letter = DeadLetter.model_validate_json(message.value)
            except ValueError:
                click.echo(json.dumps({"offset": message.offset, "error": "unreadable dead letter"}))
                continue
            click.echo(json.dumps(letter.summary(), ensure_ascii=False))
            shown += 1
            if shown >= limit:
                break
    finally:
        consumer.close()
    click.echo(f"{shown} dead letters shown", err=True)


COMMANDS = [router_command, rules_group, deadletters_command]
