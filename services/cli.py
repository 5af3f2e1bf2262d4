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
    """Run a local Apache Kafka (KRaft) for development and tests: one broker, or a cluster."""


def _broker(port: int, run_dir: Path | None):  # type: ignore[no-untyped-def]
    from services.devkafka.broker import LocalBroker

    kwargs = {"port": port}
    if run_dir is not None:
        kwargs["run_dir"] = run_dir
    return LocalBroker(**kwargs)


def _local_kafka(port: int, run_dir: Path | None, brokers: int | None):  # type: ignore[no-untyped-def]
    """The single broker, or the cluster of ``brokers`` nodes. Without ``--brokers``, ``down``
    and ``status`` find a cluster by its folder (preferring whichever one runs)."""
    from services.devkafka.cluster import LocalCluster

    if brokers is not None and brokers > 1:
        kwargs = {"port": port, "brokers": brokers}
        if run_dir is not None:
            kwargs["run_dir"] = run_dir
        return LocalCluster(**kwargs)
    single = _broker(port, run_dir)
    if brokers is None and not single.running():
        cluster = LocalCluster.found(port, run_dir)
        if cluster is not None:
            return cluster
    return single


_port_option = click.option("--port", type=int, default=9092, show_default=True, help="(First) broker port.")
_run_dir_option = click.option(
    "--run-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder for the broker's data, log and pid (default: .run/ in the checkout).",
)
_brokers_option = click.option(
    "--brokers",
    type=click.IntRange(1, 9),
    default=None,
    help="1 (the default for up): one broker; 3: a local KRaft cluster on consecutive ports "
    "(clients on --port and the next two, controllers on the three after).",
)


@kafka.command("up")
@_port_option
@_run_dir_option
@_brokers_option
@_friendly
def kafka_up(port: int, run_dir: Path | None, brokers: int | None) -> None:
    """Start the local broker or cluster (or reuse the running one) and wait until it answers.

    Always the local one, whatever CLUEBUS_KAFKA_BOOTSTRAP says (``services/demo.py`` sets it
    for its children): an existing cluster is checked with ``cluebus kafka check``.
    """
    local = _local_kafka(port, run_dir, brokers or 1)
    click.echo(local.up())
    if "," in local.bootstrap:
        click.echo(f"  export CLUEBUS_KAFKA_BOOTSTRAP={local.bootstrap}")
    _note_other_bootstrap(local.bootstrap)


def _note_other_bootstrap(started: str) -> None:
    """Say so when this shell's clients are pointed at another Kafka than the one just started."""
    import os

    configured = os.environ.get("CLUEBUS_KAFKA_BOOTSTRAP", "").strip()
    if configured and set(configured.split(",")) != set(started.split(",")):
        click.echo(
            f"note: CLUEBUS_KAFKA_BOOTSTRAP={configured} is set here: cluebus commands in this "
            f"environment use that Kafka, not {started}",
            err=True,
        )


@kafka.command("down")
@_port_option
@_run_dir_option
@_brokers_option
@_friendly
def kafka_down(port: int, run_dir: Path | None, brokers: int | None) -> None:
    """Stop the local broker or cluster; its data stays for the next `up`."""
    click.echo(_local_kafka(port, run_dir, brokers).down())


@kafka.command("status")
@_port_option
@_run_dir_option
@_brokers_option
@_friendly
def kafka_status(port: int, run_dir: Path | None, brokers: int | None) -> None:
    """Say whether the local broker (or each node of the cluster) runs and answers."""
    click.echo(_local_kafka(port, run_dir, brokers).status())


@kafka.command("check")
@click.option(
    "--bootstrap",
    default=None,
    help="host:port[,...] of the cluster (default: CLUEBUS_KAFKA_BOOTSTRAP, else 127.0.0.1:9092).",
)
@_friendly
def kafka_check(bootstrap: str | None) -> None:
    """Check that an existing Kafka (local or remote) answers, and how many brokers it has."""
    from services.common.topic_admin import describe_cluster

    overrides = {"bootstrap": bootstrap} if bootstrap else {}
    settings = cfg.load(cfg.KafkaSettings, **overrides)
    cluster = describe_cluster(settings)
    click.echo(f"Kafka at {settings.bootstrap} answers: {cluster}")


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
    click.echo(
        f"{len(result.created)} created, {len(result.existing)} already present ({result.brokers} brokers answer)"
    )
    for problem in result.mismatched:
        click.echo(f"warning: {problem} (not changed by cluebus)", err=True)
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
