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
