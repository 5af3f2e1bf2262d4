"""The ``cluebus`` command. Each subsystem contributes its own command group."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from services.common import settings as cfg
from services.common.cli_errors import friendly


def _friendly(func):  # type: ignore[no-untyped-def]
    from services.devkafka.broker import LauncherError

    return friendly(LauncherError)(func)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cluebus")
def main() -> None:
    """cluebus: routes mandatory reports of trafficking and harm to minors to the departments
    that must act, and tracks every department's acknowledgement."""


# --- local Kafka -------------------------------------------------------------------------
@main.group()
def kafka() -> None:
    """Run a local single-node Apache Kafka (KRaft) for development and tests."""


def _broker(port: int, run_dir: Path | None):  # type: ignore[no-untyped-def]
    from services.devkafka.broker import LocalBroker

    kwargs = {"port": port}
    if run_dir is not None:
        kwargs["run_dir"] = run_dir
    return LocalBroker(**kwargs)


_port_option = click.option("--port", type=int, default=9092, show_default=True, help="Broker port.")
_run_dir_option = click.option(
    "--run-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder for the broker's data, log and pid (default: .run/ in the checkout).",
)


@kafka.command("up")
@_port_option
@_run_dir_option
@_friendly
def kafka_up(port: int, run_dir: Path | None) -> None:
    """Start the broker (or reuse the running one) and wait until it answers."""
    import os

    if os.environ.get("CLUEBUS_KAFKA_BOOTSTRAP"):
        from services.common.kafka import admin

        settings = cfg.load(cfg.KafkaSettings)
        admin(settings).close()
        click.echo(f"using the existing Kafka at {settings.bootstrap} (CLUEBUS_KAFKA_BOOTSTRAP); nothing started")
        return
    click.echo(_broker(port, run_dir).up())


@kafka.command("down")
@_port_option
@_run_dir_option
@_friendly
def kafka_down(port: int, run_dir: Path | None) -> None:
    """Stop the local broker; its data stays for the next `up`."""
    click.echo(_broker(port, run_dir).down())


@kafka.command("status")
@_port_option
@_run_dir_option
@_friendly
def kafka_status(port: int, run_dir: Path | None) -> None:
    """Say whether the local broker runs and answers."""
    click.echo(_broker(port, run_dir).status())


from services.devkafka.secure import add_profile_option  # noqa: E402

add_profile_option(kafka)


# --- topics --------------------------------------------------------------------------------
@main.group()
def topics() -> None:
    """Create and list the bus's topics."""


def _specs(rules_file: Path | None):  # type: ignore[no-untyped-def]
    from services.common.topic_admin import topic_specs
    from services.rules import load_rules

    service = cfg.load(cfg.ServiceSettings)
    return topic_specs(cfg.load(cfg.TopicSettings), load_rules(rules_file or service.rules_file))


@topics.command("list")
@click.option("--rules", "rules_file", type=click.Path(path_type=Path), default=None)
@_friendly
def topics_list(rules_file: Path | None) -> None:
    """Print every topic the configuration defines, without contacting Kafka."""
    for spec in _specs(rules_file):
        click.echo(f"{spec.name}\t{spec.partitions}\t{spec.purpose}")


@topics.command("ensure")
@click.option("--rules", "rules_file", type=click.Path(path_type=Path), default=None)
@_friendly
def topics_ensure(rules_file: Path | None) -> None:
    """Create every missing topic; existing topics are left as they are."""
    from services.common.topic_admin import ensure_topics

    result = ensure_topics(cfg.load(cfg.KafkaSettings), _specs(rules_file))
    for name in result.created:
        click.echo(f"created  {name}")
    click.echo(f"{len(result.created)} created, {len(result.existing)} already present")
    for problem in result.mismatched:
        click.echo(f"warning: {problem} (not changed: that would move keys between partitions)", err=True)
    if result.mismatched:
        sys.exit(1)


# Each subsystem module lists its click commands in ``COMMANDS``
# (tests/unit/test_topics_and_launcher.py checks that every ``cli.py`` is here).
SUBSYSTEM_MODULES = (
    "schemas.cli",
    "services.adapters.cli",
    "services.router.cli",
    "services.rules.cli",
    "services.tracker.cli",
    "services.inbox.cli",
    "services.reconciler.cli",
    "services.acl.cli",
    "services.audit.cli",
    "services.console.cli",
    "services.deadletter.cli",
    "services.demo",
)


def _register_subsystems() -> None:
    import importlib

    for name in SUBSYSTEM_MODULES:
        for command in importlib.import_module(name).COMMANDS:
            main.add_command(command)


_register_subsystems()

if __name__ == "__main__":  # pragma: no cover
    main()
