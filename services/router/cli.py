"""``cluebus router``: the routing service. The rules tools are ``services/rules/cli.py``; ``cluebus
deadletters`` is ``services/deadletter/cli.py``."""

from __future__ import annotations

import click

from services.common import settings as cfg


@click.command("router")
@click.option("--metrics-port", type=int, default=None, help="Port of /metrics (0: none).")
def router_command(metrics_port: int | None) -> None:
    """Run the router (a faust worker). Stop it with SIGTERM; reload rules with SIGHUP."""
    from services.common.streams.launch import launch
    from services.router.app import create_router
    from services.router.settings import RouterSettings

    overrides = {"metrics_port": metrics_port} if metrics_port is not None else {}
    launch(
        "router",
        lambda kafka, topics, service: create_router(kafka, topics, service, cfg.load(RouterSettings, **overrides)),
    )


COMMANDS = [router_command]
