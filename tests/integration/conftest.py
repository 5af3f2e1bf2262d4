"""Fixtures for tests against the real broker: topics per test, service processes."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.common.topic_admin import ensure_topics, topic_specs
from services.rules import load_rules

from .support import REPO, Service


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    """A private copy of the shipped rules that a test may change."""
    path = tmp_path / "routing_rules.toml"
    shutil.copy(REPO / "routing_rules.toml", path)
    return path


@pytest.fixture
def bus(kafka_settings, topic_settings, rules_file):
    """All topics of the bus under this test's prefix."""
    ensure_topics(kafka_settings, topic_specs(topic_settings, load_rules(rules_file)))
    return topic_settings.names


@pytest.fixture
def service_env(bus_env, rules_file, tmp_path) -> dict[str, str]:
    return {
        **bus_env,
        "CLUEBUS_RULES_FILE": str(rules_file),
        "CLUEBUS_STATE_DIR": str(tmp_path / "state"),
        "CLUEBUS_SESSION_TIMEOUT_S": "6",
        "CLUEBUS_LOG_LEVEL": "info",
    }


@pytest.fixture
def services(tmp_path) -> Iterator:
    """Start services with ``services(name, args, env[, program])``; all are stopped at the end."""
    started: list[Service] = []

    def start(name: str, args: list[str], env: dict[str, str], program: list[str] | None = None) -> Service:
        service = Service(name, args, env, tmp_path / "logs", program).start()
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop(timeout=20)
