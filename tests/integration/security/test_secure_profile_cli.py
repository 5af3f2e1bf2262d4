"""`cluebus kafka up|status|down --profile secure`: idempotent; a restart keeps users and ACLs."""

from __future__ import annotations

import copy
import uuid

import pytest
from click.testing import CliRunner

from services.devkafka.secure import add_profile_option

from .helpers import consume_key, produce


@pytest.fixture
def kafka_cli():
    """A copy of the real `cluebus kafka` group with the --profile option."""
    from services import cli

    group = add_profile_option(copy.deepcopy(cli.kafka))

    def run(*args):
        result = CliRunner().invoke(group, list(args))
        assert result.exit_code == 0, result.output
        return result.output

    return run


def test_up_is_idempotent_and_says_where_things_are(kafka_cli, secure_broker):
    where = ["--profile", "secure", "--port", str(secure_broker.port), "--run-dir", str(secure_broker.run_dir)]
    out = kafka_cli("up", *where)
    assert f"Kafka already running at {secure_broker.bootstrap}" in out and "reused" in out
    assert str(secure_broker.ca_file) in out
    assert str(secure_broker.admin_password_file) in out
    assert secure_broker.admin_password_file.read_text().strip() not in out
    assert "ready" in kafka_cli("status", *where)


def test_restart_keeps_credentials_and_acls(kafka_cli, secure_broker, secure_bus):
    where = ["--profile", "secure", "--port", str(secure_broker.port), "--run-dir", str(secure_broker.run_dir)]
    assert "stopped" in kafka_cli("down", *where)
    assert "stopped" in kafka_cli("status", *where)
    out = kafka_cli("up", *where)
    assert "started" in out and str(secure_broker.ca_file) in out
    names, key = secure_bus.names, uuid.uuid4().hex.encode()
    produce(secure_bus.settings("router"), names.referral("police"), b"after restart", key)
    got = consume_key(secure_bus.settings("dept-police"), names.referral("police"), names.app_id("inbox-police"), key)
    assert got == b"after restart"
