"""`cluebus kafka up|status|down|check` as a user runs them, on a broker of this test's own."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from .support import CLUEBUS, REPO, broker_ports


def cluebus(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLUEBUS, *args], env=env, capture_output=True, text=True, timeout=180, check=False)


def test_kafka_up_starts_the_local_broker_even_when_a_bootstrap_is_set():
    """Issue 20 item 4: services/demo.py exports CLUEBUS_KAFKA_BOOTSTRAP to its children;
    `kafka up` used to only check that address and never start the local broker."""
    port = broker_ports(3)
    elsewhere = f"127.0.0.1:{port + 2}"  # nothing listens there
    run_dir = REPO / ".run" / f"test-kafka-cli-{port}"
    where = ["--port", str(port), "--run-dir", str(run_dir)]
    env = {**os.environ, "CLUEBUS_KAFKA_BOOTSTRAP": elsewhere}
    try:
        up = cluebus("kafka", "up", *where, env=env)
        assert up.returncode == 0, up.stderr
        assert f"started at 127.0.0.1:{port}" in up.stdout
        assert f"note: CLUEBUS_KAFKA_BOOTSTRAP={elsewhere} is set here" in up.stderr
        assert "ready" in cluebus("kafka", "status", *where, env=env).stdout
        check = cluebus("kafka", "check", "--bootstrap", f"127.0.0.1:{port}", env=env)
        assert check.returncode == 0 and "answers: 1 broker (ids 1)" in check.stdout, check.stderr
        # The remote check is where the configured bootstrap is used, and it says when nothing answers.
        remote = cluebus("kafka", "check", env={**env, "CLUEBUS_KAFKA_BOOTSTRAP_TIMEOUT_MS": "1000"})
        assert remote.returncode == 1 and f"cannot reach Kafka at {elsewhere}" in remote.stderr
        assert "Traceback" not in remote.stderr
    finally:
        down = cluebus("kafka", "down", *where, env=env)
        _remove(run_dir)
    assert "stopped" in down.stdout, down.stderr


def _remove(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
