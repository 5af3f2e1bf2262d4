"""A secure broker of the tests' own (SASL_SSL, SCRAM-SHA-512, ACLs) and the bus's principals on it.

The broker runs on a free port pair in 19600-19700 with its run folder (data,
certificates, secrets) in a temporary folder that is removed at the end. It is
started once for this package, independently of the plain broker of `make test`, and stopped
after its last test (kept to the session's end, it shared the cores with the rest of the suite).
"""

from __future__ import annotations

import random
import shutil
import socket
from collections.abc import Iterator

import pytest

from services.devkafka.broker import LauncherError
from services.devkafka.secure import SecureLocalBroker

from .helpers import SecureBus, make_bus

PORTS = range(19600, 19699, 2)  # the broker's port; the controller's is the next one


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture(scope="package")
def secure_broker(tmp_path_factory) -> Iterator[SecureLocalBroker]:
    run_dir = tmp_path_factory.mktemp("secure-kafka")
    ports = list(PORTS)
    random.shuffle(ports)  # concurrent test runs rarely pick the same pair
    broker = None
    try:
        for port in ports:
            if not (_bindable(port) and _bindable(port + 1)):
                continue
            candidate = SecureLocalBroker(port=port, run_dir=run_dir, heap="512m")
            try:
                candidate.up(timeout=90)
            except LauncherError as exc:
                if "in use" in str(exc):
                    continue  # taken between the check and the start
                raise
            broker = candidate
            break
        if broker is None:
            pytest.fail("no free port pair in 19600-19700 for the secure broker", pytrace=False)
        yield broker
    finally:
        if broker is not None:
            broker.down()
        shutil.rmtree(run_dir, ignore_errors=True)  # certificates and secrets go with it


@pytest.fixture(scope="package")
def secure_bus(secure_broker, tmp_path_factory) -> SecureBus:
    """The bus's topics, every principal with a password, and the derived ACLs applied."""
    return make_bus(secure_broker, tmp_path_factory.mktemp("secure-bus"))
