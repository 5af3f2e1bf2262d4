"""`cluebus tracker`: run the acknowledgement tracker."""

from __future__ import annotations

import sys

import click

from services.common import settings as cfg


@click.command("tracker")
@click.option("--metrics-port", type=int, default=None, help="Port of /metrics (0: none).")
def tracker_command(metrics_port: int | None) -> None:
    """Run the tracker (a faust worker): acknowledgements, clocks, escalation, metrics."""
    from services.common.streams.worker import run_worker
    from services.tracker.app import create_tracker
    from services.tracker.settings import TrackerSettings

    try:
        service = cfg.load(cfg.ServiceSettings)
        overrides = {"metrics_port": metrics_port} if metrics_port is not None else {}
        tracker = create_tracker(
            cfg.load(cfg.KafkaSettings), cfg.load(cfg.TopicSettings), service, cfg.load(TrackerSettings, **overrides)
        )
    except ValueError as exc:
        click.echo(f"cluebus: error: {exc}", err=True)
        sys.exit(1)
    run_worker(tracker.app, service="tracker", log_level=service.log_level, log_format=service.log_format)


COMMANDS = [tracker_command]
