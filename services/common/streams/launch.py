"""Starting a faust service of the bus from the command line (``cluebus router``, ``cluebus tracker``)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from services.common import settings as cfg


def launch(
    service_name: str, create: Callable[[cfg.KafkaSettings, cfg.TopicSettings, cfg.ServiceSettings], Any]
) -> None:
    """Load the settings, fit replication to the cluster, build the service, run it (blocks).

    ``create(kafka, topics, service)`` returns the assembled service (its faust ``app``).
    Replication is fitted to the brokers that answer before faust sees the settings, and
    faust's own topics (table changelogs, the assignor's leader topic) are made the bus's
    way before faust starts. A settings, rules or Kafka fault is one line, no traceback.
    """
    from kafka.errors import KafkaError

    from services.common.kafka import KafkaUnavailable
    from services.common.streams.worker import run_worker
    from services.common.topic_admin import TopicAdminError, ensure_topics, faust_internal_specs, fit_to_cluster

    try:
        service = cfg.load(cfg.ServiceSettings)
        kafka = cfg.load(cfg.KafkaSettings)
        topics = fit_to_cluster(kafka, cfg.load(cfg.TopicSettings))
        built = create(kafka, topics, service)
        for problem in ensure_topics(kafka, faust_internal_specs(built.app, topics)).mismatched:
            click.echo(f"cluebus: warning: {problem}", err=True)
    except (ValueError, KafkaUnavailable, TopicAdminError, KafkaError) as exc:
        click.echo(f"cluebus: error: {exc}", err=True)
        sys.exit(1)
    run_worker(built.app, service=service_name, log_level=service.log_level, log_format=service.log_format)
