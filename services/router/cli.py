"""``cluebus router``: the routing service. The rules tools are ``services/rules/cli.py``; ``cluebus
deadletters`` is ``services/deadletter/cli.py``."""

from __future__ import annotations

import sys

import click

from services.common import settings as cfg


@click.command("router")
@click.option("--metrics-port", type=int, default=None, help="Port of /metrics (0: none).")
def router_command(metrics_port: int | None) -> None:
    """Run the router (a faust worker). Stop it with SIGTERM; reload rules with SIGHUP."""
    from services.common.streams.worker import run_worker
    from services.router.app import create_router
    from services.router.settings import RouterSettings

    try:
        service = cfg.load(cfg.ServiceSettings)
        overrides = {"metrics_port": metrics_port} if metrics_port is not None else {}
        router = create_router(
            cfg.load(cfg.KafkaSettings), cfg.load(cfg.TopicSettings), service, cfg.load(RouterSettings, **overrides)
        )
    except ValueError as exc:  # settings or rules: one line, no traceback
        click.echo(f"cluebus: error: {exc}", err=True)
        sys.exit(1)
    run_worker(router.app, service="router", log_level=service.log_level, log_format=service.log_format)


COMMANDS = [router_command]
