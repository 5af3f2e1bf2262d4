"""deploy/compose.yaml cannot run here (no Docker); check that it says true things."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from services.cli import main
from tests.conftest import REPO

COMPOSE = yaml.safe_load((REPO / "deploy/compose.yaml").read_text())
SERVICES = COMPOSE["services"]
CLUEBUS_SERVICES = {name: s for name, s in SERVICES.items() if s.get("image") == "cluebus:dev"}


def test_every_cluebus_service_runs_a_real_command():
    assert set(CLUEBUS_SERVICES) >= {
        "topics",
        "router",
        "tracker",
        "reconciler",
        "adapter-hospital",
        "adapter-school",
        "adapter-labour",
        "adapter-marriage",
        "adapter-venue",
    }
    runner = CliRunner()
    for name, service in CLUEBUS_SERVICES.items():
        result = runner.invoke(main, [*service["command"], "--help"])
        assert result.exit_code == 0, (name, result.output)


def test_environment_names_are_settings_the_services_read():
    from services.adapters.settings import AdapterSettings
    from services.common.settings import KafkaSettings, ServiceSettings, TopicSettings
    from services.reconciler.settings import ReconcilerSettings
    from services.router.settings import RouterSettings
    from services.tracker.settings import TrackerSettings

    known = set()
    classes = (AdapterSettings, KafkaSettings, ServiceSettings, TopicSettings, RouterSettings, TrackerSettings)
    for cls in (*classes, ReconcilerSettings):
        prefix = cls.model_config["env_prefix"]
        known |= {f"{prefix}{field}".upper() for field in cls.model_fields}
    for name, service in CLUEBUS_SERVICES.items():
        unknown = set(service["environment"]) - known
        assert not unknown, (name, unknown)


def test_dockerfile_copies_paths_that_exist():
    for line in (REPO / "deploy/Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (REPO / source).exists(), source


@pytest.mark.prometheus
def test_compose_prometheus_config_is_valid_with_the_shipped_alerts(tmp_path: Path):
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: run scripts/setup.sh (installs Debian's prometheus package)"
    mounts = {m.split(":")[1]: m.split(":")[0] for m in SERVICES["prometheus"]["volumes"]}
    for target, source in mounts.items():
        shutil.copy(REPO / "deploy" / source, tmp_path / Path(target).name)
    result = subprocess.run(
        [promtool, "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_systemd_units_start_real_commands():
    units = sorted((REPO / "deploy/systemd").glob("*.service"))
    assert len(units) == 5  # router, tracker, reconciler, adapter@, console
    runner = CliRunner()
    for unit in units:
        (line,) = [x for x in unit.read_text().splitlines() if x.startswith("ExecStart=")]
        args = [a.replace("%i", "hospital") for a in line.removeprefix("ExecStart=").split()]
        assert args[0].endswith("/cluebus")
        result = runner.invoke(main, [*args[1:], "--help"])
        assert result.exit_code == 0, (unit.name, result.output)
        assert "Restart=always" in unit.read_text()


# --- the three-broker form: deploy/compose.cluster.yaml over deploy/compose.yaml -----------------
CLUSTER = yaml.safe_load((REPO / "deploy/compose.cluster.yaml").read_text())


def _merged(name: str) -> dict:
    """One service as compose merges the override into it (mappings merge key by key)."""
    base, over = SERVICES.get(name, {}), CLUSTER["services"][name]
    merged = {**base, **over}
    for key in ("environment", "depends_on"):
        if key in base or key in over:
            merged[key] = {**base.get(key, {}), **over.get(key, {})}
    return merged


def test_cluster_form_runs_three_kraft_nodes_that_know_each_other():
    from services.devkafka.cluster import replicated_defaults

    nodes = {name: _merged(name) for name in ("kafka", "kafka-2", "kafka-3")}
    voters = {f"{n['environment']['KAFKA_NODE_ID']}@{name}:9093" for name, n in nodes.items()}
    for name, node in nodes.items():
        env = node["environment"]
        assert node["image"] == SERVICES["kafka"]["image"] and "healthcheck" in node
        assert set(env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")) == voters
        assert env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{name}:9092"
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        # The same durability as `cluebus kafka up --brokers 3`.
        for key, value in replicated_defaults(3).items():
            assert str(env[f"KAFKA_{key.upper().replace('.', '_')}"]).lower() == value, key
    assert len({n["environment"]["KAFKA_NODE_ID"] for n in nodes.values()}) == 3
    assert len({n["environment"]["CLUSTER_ID"] for n in nodes.values()}) == 1
    volumes = [n["volumes"][0].split(":")[0] for n in nodes.values()]
    assert len(set(volumes)) == 3 and set(volumes) <= set(COMPOSE["volumes"]) | set(CLUSTER["volumes"])


def test_cluster_form_points_every_cluebus_service_at_all_three_brokers():
    # Every cluebus service but the demo's certificate maker talks to Kafka.
    kafka_services = {n for n, s in CLUEBUS_SERVICES.items() if s["command"][:2] != ["adapter", "dev-tls"]}
    assert kafka_services and kafka_services <= set(CLUSTER["services"])
    for name in kafka_services:
        env = _merged(name)["environment"]
        assert env["CLUEBUS_KAFKA_BOOTSTRAP"] == "kafka:9092,kafka-2:9092,kafka-3:9092", name
        assert (env["CLUEBUS_TOPICS_REPLICATION_FACTOR"], env["CLUEBUS_TOPICS_MIN_INSYNC_REPLICAS"]) == ("3", "2")
    assert set(_merged("topics")["depends_on"]) == {"kafka", "kafka-2", "kafka-3"}
