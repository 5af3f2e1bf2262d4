"""Fixtures for adapter tests against the real broker: adapter processes and topic readers."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from schemas import Source, parse_report

from ...unit.adapters.support import write_tokens
from ..support import Service, collect, free_port, wait_healthy


@pytest.fixture
def tokens_file(tmp_path: Path) -> Path:
    return write_tokens(tmp_path / "tokens.toml")


@pytest.fixture
def adapter_env(service_env: dict[str, str], tokens_file: Path) -> dict[str, str]:
    return {
        **service_env,
        "CLUEBUS_ADAPTER_TOKENS_FILE": str(tokens_file),
        "CLUEBUS_ADAPTER_RELAY_BACKOFF_MAX_S": "1",
        "CLUEBUS_ADAPTER_PLAIN_HTTP": "true",  # TLS is tested in test_network.py
    }


@pytest.fixture
def start_adapter(services) -> Callable[..., tuple[Service, str]]:
    """``start_adapter(source, env, port=None, name=None)`` -> (service, base url), once healthy."""

    def start(
        source: Source | str, env: dict[str, str], port: int | None = None, name: str | None = None
    ) -> tuple[Service, str]:
        port = port or free_port()
        src = Source(source).value
        service = services(name or f"adapter-{src}", ["adapter", src, "--port", str(port)], env)
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, service)
        return service, url

    return start


def read_reports(
    bootstrap: str, topic: str, expected: set[str], timeout: float = 60.0, settle: float = 0.0
) -> list[Any]:
    """Every report on ``topic`` (typed), once all ``expected`` ids are there (+ ``settle`` s)."""
    seen_all: list[float] = []

    def done(messages: list[Any]) -> bool:
        ids = {m.key.decode() for m in messages}
        if expected <= ids:
            seen_all.append(time.monotonic())
            return time.monotonic() - seen_all[0] >= settle
        return False

    messages = collect(bootstrap, [topic], done, timeout=timeout)
    reports = []
    for m in messages:
        report = parse_report(m.value)
        assert m.key.decode() == report.report_id
        reports.append(report)
    return reports


@pytest.fixture
def topics(kafka_settings, topic_settings) -> Iterator[Any]:
    """The bus's topics under this test's prefix (reports, status, ...), without referrals."""
    from services.common.topic_admin import ensure_topics, topic_specs

    ensure_topics(kafka_settings, topic_specs(topic_settings))
    yield topic_settings.names
