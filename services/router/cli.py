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
    from kafka.errors import KafkaError

    from services.common.kafka import KafkaUnavailable
    from services.common.streams.worker import run_worker
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


COMMANDS = [router_command]
