"""``cluebus deadletters``: list what could not be processed (ids, topic, offset, error type; never content)."""

from __future__ import annotations

import json

import click

from services.common import settings as cfg


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


COMMANDS = [deadletters_command]
