"""`cluebus reconciler` (the service) and `cluebus reconcile` (one pass on demand)."""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from datetime import UTC, datetime

import click

from services.common import settings as cfg
from services.common.cli_errors import friendly


def _since(value: str) -> float:
    """An age (``90m``, ``2h``, ``7d``) or an RFC 3339 time, as epoch seconds."""
    from services.rules.clocks import parse_duration

    try:
        return time.time() - parse_duration(value).total_seconds()
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is neither an age like 2h nor a time like 2026-12-01T08:00:00+08:00"
        ) from None
    if moment.tzinfo is None:
        raise click.BadParameter(f"{value!r} has no UTC offset")
    return moment.timestamp()


@click.command("reconciler")
@click.option("--metrics-port", type=int, default=None, help="Port of /metrics (0: none).")
@friendly()
def reconciler_command(metrics_port: int | None) -> None:
    """Run the reconciler: finds reports without a routing decision and decisions the tracker never took in."""
    from services.common import metrics as bus_metrics
    from services.common.logging import configure
    from services.reconciler.metrics import ReconcilerMetrics
    from services.reconciler.service import Reconciler
    from services.reconciler.settings import ReconcilerSettings

    service = cfg.load(cfg.ServiceSettings)
    overrides = {"metrics_port": metrics_port} if metrics_port is not None else {}
    settings = cfg.load(ReconcilerSettings, **overrides)
    configure(level=service.log_level, fmt=service.log_format, service="reconciler")
    metrics = ReconcilerMetrics()
    if settings.metrics_port:
        bus_metrics.build_info("reconciler")
        bus_metrics.serve(settings.metrics_port, settings.metrics_host)
    reconciler = Reconciler(cfg.load(cfg.KafkaSettings), cfg.load(cfg.TopicSettings), settings, metrics)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        reconciler.run(stop)
    finally:
        reconciler.close()


@click.command("reconcile")
@click.option("--since", "since", default="24h", show_default=True, help="Age (2h, 7d) or RFC 3339 time.")
@click.option("--grace", default=None, help="Unrouted after this age (default: the reconciler's grace_s).")
@click.option("--redrive/--no-redrive", default=False, show_default=True, help="Publish unrouted reports again.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@friendly()
def reconcile_command(since: str, grace: str | None, redrive: bool, fmt: str) -> None:
    """Check once, from --since to now, that reports were routed and decisions tracked; exit 1 if not."""
    from services.common.logging import configure
    from services.reconciler.service import Reconciler
    from services.reconciler.settings import ReconcilerSettings
    from services.rules.clocks import parse_duration

    configure(level="error", fmt="console")  # the findings are printed below; no line per finding twice
    start = _since(since)
    overrides: dict[str, float] = {"horizon_s": max(time.time() - start, 1.0) + 1}
    if grace is not None:
        overrides["grace_s"] = parse_duration(grace).total_seconds()
    settings = cfg.load(ReconcilerSettings, **overrides)
    reconciler = Reconciler(cfg.load(cfg.KafkaSettings), cfg.load(cfg.TopicSettings), settings)
    try:
        reconciler.open(start)
        while not reconciler.caught_up(budget_s=30):
            pass
        found = reconciler.check()
        redriven = reconciler.redrive(found) if redrive and found else 0
    finally:
        reconciler.close()

    def rows(findings):  # type: ignore[no-untyped-def]
        return [
            {
                "report_id": f.record.report_id,
                "source": f.record.source,
                "topic": f.record.topic,
                "partition": f.record.partition,
                "offset": f.record.offset,
                "published_at": datetime.fromtimestamp(f.record.published_ms / 1000, UTC).isoformat(),
                "age_s": round(f.age_s, 1),
            }
            for f in findings
        ]

    unrouted, untracked = rows(found.unrouted), rows(found.untracked)
    summary = {
        "since": datetime.fromtimestamp(start, UTC).isoformat(),
        "routed_or_dead_lettered": reconciler.routing.settled,
        "tracked_or_dead_lettered": reconciler.tracking.settled,
        "within_grace": reconciler.routing.waiting + reconciler.tracking.waiting - len(unrouted) - len(untracked),
        "unrouted": len(unrouted),
        "untracked": len(untracked),
        "redriven": redriven,
    }
    if fmt == "json":
        click.echo(json.dumps({"summary": summary, "unrouted": unrouted, "untracked": untracked}, indent=2))
    else:
        for what, listed in (("unrouted ", unrouted), ("untracked", untracked)):
            for row in listed:
                click.echo(
                    f"{what}  {row['report_id']}  {row['source']:<8}  "
                    f"{row['topic']} p{row['partition']}@{row['offset']}  "
                    f"published {row['published_at']}  ({row['age_s']:.0f}s ago)"
                )
        click.echo(
            f"{summary['routed_or_dead_lettered']} reports routed or dead-lettered, "
            f"{summary['tracked_or_dead_lettered']} decisions tracked, {summary['within_grace']} within the grace "
            f"period, {len(unrouted)} unrouted, {len(untracked)} untracked"
            + (f", {redriven} re-driven" if redrive else "")
        )
    sys.exit(1 if found else 0)


COMMANDS = [reconciler_command, reconcile_command]
