"""A local Prometheus server for tests and development (the Debian ``prometheus`` binary).

    server = PrometheusServer(config_text, port, data_dir).start()
    server.query('sum by (department) (cluebus_acks_total)')
    server.stop()

``scripts/setup.sh`` installs the binary. Uses only the standard library.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any


def prometheus_binary() -> str:
    """``/usr/bin/prometheus``, else ``prometheus`` on PATH; a clear error when neither exists."""
    if os.access("/usr/bin/prometheus", os.X_OK):
        return "/usr/bin/prometheus"
    found = shutil.which("prometheus")
    if found:
        return found
    raise FileNotFoundError("prometheus is not installed: run scripts/setup.sh (installs the Debian package)")


class PrometheusServer:
    """Prometheus as a subprocess listening on ``127.0.0.1:<port>``.

    ``config`` is a path to a prometheus.yml or the YAML text itself (written to
    ``data_dir/prometheus.yml``; relative rule files then resolve against ``data_dir``).
    """

    def __init__(self, config: str | Path, port: int, data_dir: str | Path, ready_timeout: float = 60.0) -> None:
        self.port = port
        self.data_dir = Path(data_dir)
        self.ready_timeout = ready_timeout
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = self.data_dir / "prometheus.log"
        if isinstance(config, Path) or ("\n" not in config and Path(config).is_file()):
            self.config_path = Path(config).resolve()
            self._config_text: str | None = None
        else:
            self.config_path = self.data_dir / "prometheus.yml"
            self._config_text = config
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> PrometheusServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._config_text is not None:
            self.config_path.write_text(self._config_text)
        args = [
            prometheus_binary(),
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.data_dir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited ({self.proc.returncode}):\n{self.tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:  # noqa: S310 - localhost
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"prometheus not ready on {self.url} in {self.ready_timeout:.0f}s:\n{self.tail()}")

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query: the ``data.result`` list (``{"metric": {...}, "value": [ts, "v"]}`` each)."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - localhost
                body = json.loads(resp.read())
        except urllib.error.HTTPError as exc:  # 400/422: a bad query; the body says why
            body = json.loads(exc.read() or b"{}")
        if body.get("status") != "success":
            raise RuntimeError(f"query failed: {body.get('errorType')}: {body.get('error')}")
        data = body["data"]
        if data["resultType"] in ("vector", "matrix"):
            return list(data["result"])
        return [{"metric": {}, "value": data["result"]}]  # scalar or string

    def tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
