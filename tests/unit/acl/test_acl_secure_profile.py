"""The secure broker's configuration and generated material, and --profile (no broker)."""

import copy
import os
import stat
import subprocess

import click
import pytest
from click.testing import CliRunner

from services.devkafka import secure as profiles
from services.devkafka.broker import LocalBroker
from services.devkafka.secure import SecureLocalBroker


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    broker = SecureLocalBroker(port=29192, run_dir=tmp_path_factory.mktemp("secure"))
    broker.prepare()
    return broker


def test_properties_lock_the_broker_down(prepared):
    props = prepared.properties()
    assert props["authorizer.class.name"] == ("org.apache.kafka.metadata.authorizer.StandardAuthorizer")
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["super.users"] == "User:admin"
    assert props["listeners"] == "CLIENT://127.0.0.1:29192,CONTROLLER://127.0.0.1:29193"
    assert props["advertised.listeners"] == "CLIENT://127.0.0.1:29192"
    assert props["listener.security.protocol.map"] == "CLIENT:SASL_SSL,CONTROLLER:SASL_PLAINTEXT"
    assert props["inter.broker.listener.name"] == "CLIENT"
    assert props["listener.name.client.sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["sasl.mechanism.controller.protocol"] == "PLAIN"
    assert props["ssl.keystore.type"] == "PKCS12"
    assert props["ssl.keystore.location"] == str(prepared.keystore_file)
    # Nothing of the plain listener remains.
    assert "PLAINTEXT://" not in props["listeners"]


def test_secrets_are_owner_only_and_outside_the_repository(prepared):
    assert mode(prepared.home) == 0o700
    for path in (
        prepared.admin_password_file,
        prepared.controller_password_file,
        prepared.store_password_file,
        prepared.keystore_file,
        prepared.truststore_file,
    ):
        assert mode(path) == 0o600, path
    assert len(prepared.admin_password_file.read_text().strip()) >= 40
    prepared._write_properties()
    assert mode(prepared.properties_file) == 0o600
    assert not list(prepared.home.rglob("*.key")), "CA and broker private keys must not be kept"


def test_broker_certificate_is_signed_by_the_ca_for_loopback(prepared):
    verify = subprocess.run(
        ["openssl", "verify", "-CAfile", str(prepared.ca_file), str(prepared._cert_file)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verify.returncode == 0, verify.stderr
    text = subprocess.run(
        ["openssl", "x509", "-noout", "-text", "-in", str(prepared._cert_file)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "IP Address:127.0.0.1" in text and "DNS:localhost" in text


def test_prepare_is_idempotent(prepared):
    before = {p: p.read_bytes() for p in (prepared.admin_password_file, prepared.ca_file)}
    prepared.prepare()
    assert {p: p.read_bytes() for p in before} == before


def test_admin_scram_credential_goes_through_an_argument_file(prepared):
    args = prepared._format_extra_args()
    try:
        assert len(args) == 1 and args[0].startswith("@")
        argfile = prepared._format_argfile
        assert mode(argfile) == 0o600
        password = prepared.admin_password_file.read_text().strip()
        assert argfile.read_text().split() == ["--add-scram", f"SCRAM-SHA-512=[name=admin,password={password}]"]
        assert password not in " ".join(args)
    finally:
        prepared._format_argfile.unlink(missing_ok=True)


def test_profiles_never_share_a_data_dir(tmp_path):
    plain = LocalBroker(port=29194, run_dir=tmp_path)
    secure = SecureLocalBroker(port=29194, run_dir=tmp_path)
    assert plain.home != secure.home and secure.home.name == "kafka-secure-29194"


def test_formatted_data_without_its_admin_password_is_refused(tmp_path):
    broker = SecureLocalBroker(port=29196, run_dir=tmp_path)
    broker.data_dir.mkdir(parents=True)
    (broker.data_dir / "meta.properties").write_text("")
    with pytest.raises(Exception, match="admin password that is gone"):
        broker.prepare()


@pytest.fixture
def fake_kafka_group():
    calls = []

    @click.group()
    def kafka():
        pass

    for action in profiles.ACTIONS:

        @kafka.command(action)
        @click.option("--port", type=int, default=9092)
        @click.option("--run-dir", default=None)
        def command(port, run_dir, _action=action):
            calls.append(("plain", _action, port))

    return kafka, calls


def test_profile_option_keeps_plain_behaviour(fake_kafka_group, monkeypatch):
    group, calls = fake_kafka_group
    secure_calls = []
    monkeypatch.setattr(profiles, "run_secure", lambda a, p, r: secure_calls.append((a, p, r)))
    profiles.add_profile_option(group)
    profiles.add_profile_option(group)  # twice is harmless
    runner = CliRunner()
    assert runner.invoke(group, ["up", "--port", "19650"]).exit_code == 0
    assert runner.invoke(group, ["status", "--profile", "plain"]).exit_code == 0
    assert runner.invoke(group, ["down", "--profile", "secure", "--port", "19650"]).exit_code == 0
    assert calls == [("plain", "up", 19650), ("plain", "status", 9092)]
    assert secure_calls == [("down", 19650, None)]
    assert runner.invoke(group, ["up", "--profile", "other"]).exit_code != 0


def test_profile_option_fits_the_real_kafka_group():
    from services import cli

    group = copy.deepcopy(cli.kafka)
    profiles.add_profile_option(group)
    for action in profiles.ACTIONS:
        assert "--profile" in CliRunner().invoke(group, [action, "--help"]).output
