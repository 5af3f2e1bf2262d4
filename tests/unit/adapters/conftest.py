from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from schemas import Source
from services.adapters.app import create_app
from services.adapters.auth import TokenStore
from services.adapters.runtime import AdapterRuntime
from services.adapters.settings import AdapterSettings
from services.common.settings import TopicSettings

from .fakes import NoKafka
from .support import write_tokens


@pytest.fixture
def tokens_file(tmp_path: Path) -> Path:
    return write_tokens(tmp_path / "tokens.toml")


@pytest.fixture
def make_client(tmp_path: Path, tokens_file: Path) -> Iterator[Callable[..., TestClient]]:
    """An adapter app whose Kafka is never reachable (reports stay in the outbox), in a TestClient."""
    clients: list[TestClient] = []

    def make(source: Source | str = Source.hospital, **overrides: object) -> TestClient:
        settings = AdapterSettings(
            tokens_file=tokens_file,
            outbox_dir=tmp_path / f"outbox-{source}-{len(clients)}",
            **overrides,
        )
        runtime = AdapterRuntime(source, settings, kafka=NoKafka(), topic_settings=TopicSettings(prefix="unit"))
        app = create_app(runtime, tokens=TokenStore(tokens_file))
        client = TestClient(app, raise_server_exceptions=True)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)
