"""`cluebus rules check|test|explain|coverage|diff|privacy`: the rule authors' and administrators' tools (like amtool).

Each command is a thin shell over a pure module: ``cases`` (test), ``explain``,
``coverage``, ``diff``, ``privacy``; ``history`` reads past reports back from Kafka for ``diff``.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from services.common import settings as cfg

_format_option = click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True, help="Output format."
)
_rules_option = click.option(
    "--rules", "file", type=click.Path(path_type=Path), default=None, help="Rules file (default: the configured one)."
)
_source_option = click.option(
    "--source",
    type=click.Choice(["hospital", "school", "labour", "marriage", "venue"]),
    default=None,
    help="The sector of a submission (what a departmental system posts); not needed for reports or corpus cases.",
)


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


def _fail(message: str, code: int = 2) -> None:
    click.echo(f"cluebus: error: {message}", err=True)
    sys.exit(code)


def _emit(fmt: str, data: dict[str, Any], lines: list[str]) -> None:
    if fmt == "json":
        click.echo(json.dumps(data, ensure_ascii=False, indent=2))
    else:
        for line in lines:
            click.echo(line)


@click.group("rules")
def rules_group() -> None:
    """Check, test, explain, cover and compare routing_rules.toml."""


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
@click.argument("cases", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@_rules_option
@_format_option
def rules_test(cases: tuple[Path, ...], file: Path | None, fmt: str) -> None:
    """Run routing cases (JSON corpus files, TOML facts files, or directories of them); exit 1 on any failure."""
    from services.rules.cases import as_json, describe, run_cases

    rules = _load(file)
    try:
        results = run_cases(rules, list(cases))
    except ValueError as exc:
        _fail(str(exc))
    failed = [r for r in results if not r.ok]
    lines = []
    for result in results:
        lines.append(f"{'ok  ' if result.ok else 'FAIL'}  {describe(result.case)}")
        if not result.ok:
            lines.append(f"        in {result.case.origin}")
        lines.extend(f"        {problem}" for problem in result.problems)
    lines.append(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    data = {"rules_version": rules.version, "passed": len(results) - len(failed), "failed": len(failed)}
    _emit(fmt, {**data, "cases": [as_json(r) for r in results]}, lines)
    if failed:
        sys.exit(1)


@rules_group.command("explain")
@click.argument("report", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_source_option
@_rules_option
@_format_option
def rules_explain(report: Path, source: str | None, file: Path | None, fmt: str) -> None:
    """Show why a report (or submission, or corpus case) goes to each recipient, at its priority."""
    from services.rules.explain import explain, render
    from services.rules.inputs import InputError, read_report

    rules = _load(file)
    try:
        parsed = read_report(report, source)
    except InputError as exc:
        _fail(f"{report}: {exc}", 1)
    explanation = explain(rules, parsed)
    _emit(fmt, explanation, render(explanation))


@rules_group.command("coverage")
@click.option(
    "--cases",
    "case_paths",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="Case files or directories (default: tests/rules).",
)
@_rules_option
@_format_option
def rules_coverage(case_paths: tuple[Path, ...], file: Path | None, fmt: str) -> None:
    """For every category × source and every route, the cases that exercise it; exit 1 if a route has none."""
    from services.rules.cases import run_cases
    from services.rules.coverage import coverage, render

    rules = _load(file)
    paths = list(case_paths) or [Path("tests/rules")]
    if not all(p.exists() for p in paths):
        _fail("no cases: give --cases DIR (tests/rules does not exist here)")
    try:
        cov = coverage(rules, run_cases(rules, paths))
    except ValueError as exc:
        _fail(str(exc))
    lines = render(cov)
    if cov.unexercised:
        lines.append(f"{len(cov.unexercised)} routes are exercised by no case:")
        lines.extend(f"  {' > '.join(path)}" for path in cov.unexercised)
    else:
        lines.append(f"every route ({len(cov.routes)}) is exercised by at least one case")
    _emit(fmt, {"rules_version": rules.version, **cov.as_json()}, lines)
    if cov.unexercised:
        sys.exit(1)


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time") from None
    if when.tzinfo is None:
        raise click.BadParameter("give a UTC offset (e.g. 2026-11-20T00:00:00+08:00)")
    return when


@rules_group.command("diff")
@click.argument("old", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("new", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--reports", "report_paths", multiple=True, type=click.Path(exists=True, path_type=Path))
@click.option("--topic", "topics", multiple=True, help="A reports topic to read back from Kafka (repeatable).")
@click.option("--since", default=None, help="Only reports received (topic: record time) at or after this ISO time.")
@_source_option
@_format_option
def rules_diff(
    old: Path,
    new: Path,
    report_paths: tuple[Path, ...],
    topics: tuple[str, ...],
    since: str | None,
    source: str | None,
    fmt: str,
) -> None:
    """Re-plan stored (--reports DIR) or past (--topic T) reports under OLD and NEW rules; print what changes.

    Reading a topic uses a consumer without a group: no commits, nothing written."""
    from services.rules.diff import diff, render

    if bool(report_paths) == bool(topics):
        _fail("give --reports DIR or --topic T (one of them)")
    when = _since(since)
    old_rules, new_rules = _load(old), _load(new)
    reports = _from_files(list(report_paths), source, when) if report_paths else _from_topics(list(topics), when)
    try:
        result = diff(old_rules, new_rules, reports)
    except RuntimeError as exc:  # the topic cannot be read back
        _fail(str(exc))
    _emit(fmt, result.as_json(), render(result))


@rules_group.command("privacy")
@click.argument("file", type=click.Path(path_type=Path), required=False)
def rules_privacy(file: Path | None) -> None:
    """Who sees what of a report, of whom and why, as Markdown (docs/PRIVACY.md is this output)."""
    from services.rules.privacy import render

    click.echo(render(_load(file)), nl=False)


def _from_files(paths: list[Path], source: str | None, since: datetime | None):  # type: ignore[no-untyped-def]
    from services.rules.inputs import InputError, as_report, json_files, read_json

    for path in json_files(paths):
        try:
            data = read_json(path)
        except InputError as exc:
            yield str(path), str(exc)
            continue
        items = data if isinstance(data, list) else [data]
        for i, item in enumerate(items):
            label = str(path) if len(items) == 1 else f"{path}#{i}"
            try:
                report = as_report(item, source)
            except InputError as exc:
                yield label, str(exc)
                continue
            if since is None or report.received_at >= since:
                yield label, report


def _from_topics(topics: list[str], since: datetime | None):  # type: ignore[no-untyped-def]
    from pydantic import ValidationError

    from schemas import parse_report
    from services.deadletter.letters import describe_error
    from services.rules.history import read_topic

    kafka = cfg.load(cfg.KafkaSettings)
    for topic in topics:
        for record in read_topic(kafka, topic, since):
            where = f"{record.topic}/{record.partition}@{record.offset}"
            try:
                report = parse_report(record.value)
            except ValidationError as exc:
                yield where, f"not a report: {describe_error(exc)[1][:200]}"
                continue
            yield f"{report.report_id} ({where})", report


COMMANDS = [rules_group]
