"""`cluebus kafka` command wiring that needs no broker (the commands themselves: tests/integration)."""

from __future__ import annotations

from click.testing import CliRunner

from services import cli


def test_secure_up_starts_the_local_secure_broker_even_with_a_bootstrap_set(monkeypatch):
    from services.devkafka import secure

    calls = []
    monkeypatch.setattr(secure, "run_secure", lambda action, port, run_dir: calls.append((action, port)))
    monkeypatch.setenv("CLUEBUS_KAFKA_BOOTSTRAP", "kafka.elsewhere:9092")
    result = CliRunner().invoke(cli.main, ["kafka", "up", "--profile", "secure", "--port", "19600"])
    assert result.exit_code == 0, result.output
    assert calls == [("up", 19600)]
