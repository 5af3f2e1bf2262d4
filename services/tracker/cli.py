"""`cluebus tracker`: run the acknowledgement tracker."""

from __future__ import annotations

import click

from services.common import settings as cfg


@click.command("tracker")
@click.option("--metrics-port", type=int, default=None, help="Port of /metrics (0: none).")
def tracker_command(metrics_port: int | None) -> None:
    """Run the tracker (a faust worker): acknowledgements, clocks, escalation, metrics."""
    from services.common.streams.launch import launch
    from services.tracker.app import create_tracker
    from services.tracker.settings import TrackerSettings

    overrides = {"metrics_port": metrics_port} if metrics_port is not None else {}
    launch(
        "tracker",
        lambda kafka, topics, service: create_tracker(kafka, topics, service, cfg.load(TrackerSettings, **overrides)),
    )


COMMANDS = [tracker_command]
