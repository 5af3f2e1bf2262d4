"""A single-node Apache Kafka (KRaft, broker+controller) for development and tests.

The broker's jars are resolved from Maven Central with Maven (``deploy/kafka/pom.xml``)
into a cache folder once; the broker then runs from plain ``java -cp``. ``up`` is
idempotent: a broker already running from the same data dir is reused, and a
stopped broker's data dir is started again with its data.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

KAFKA_VERSION = "4.1.1"
REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY_DIR = Path(os.environ.get("CLUEBUS_DEPLOY_DIR", REPO_ROOT / "deploy"))


class LauncherError(RuntimeError):
    """A one-line, actionable reason why the broker cannot be started or stopped."""


def cache_dir() -> Path:
    """Where downloaded jars live: CLUEBUS_CACHE_DIR, else the user's cache folder."""
    if explicit := os.environ.get("CLUEBUS_CACHE_DIR"):
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cluebus"


def check_port(port: int) -> int:
    if not isinstance(port, int) or not 1024 <= port <= 65534:
        raise LauncherError(f"invalid port {port!r}: choose a port from 1024 to 65534")
    return port


def java_major_version(java: str = "java") -> int:
    exe = shutil.which(java)
    if exe is None:
        raise LauncherError("Java not found: install a Java 17+ runtime (e.g. openjdk-17-jre-headless)")
    out = subprocess.run([exe, "-version"], capture_output=True, text=True, check=False).stderr
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        raise LauncherError(f"cannot tell the Java version from `{exe} -version`")
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def resolve_jars(version: str = KAFKA_VERSION, *, quiet: bool = True) -> Path:
    """Copy the broker's jars into the cache (once) and return the folder."""
    libs = cache_dir() / f"kafka-{version}" / "libs"
    marker = libs / ".complete"
    if marker.exists():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise LauncherError(
            "Maven not found: install it (apt-get install maven) to fetch Kafka, "
            "or set CLUEBUS_KAFKA_BOOTSTRAP to an existing cluster"
        )
    pom = DEPLOY_DIR / "kafka" / "pom.xml"
    if not pom.exists():
        raise LauncherError(f"{pom} is missing; run from a cluebus checkout or set CLUEBUS_DEPLOY_DIR")
    tmp = libs.with_name("libs.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    cmd = [
        mvn,
        "-B",
        *(["-q"] if quiet else []),
        "-f",
        str(pom),
        "dependency:copy-dependencies",
        f"-Dkafka.version={version}",
        f"-DoutputDirectory={tmp}",
        "-Dmdep.includeScope=runtime",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
        raise LauncherError(f"Maven could not resolve Kafka {version}: {' | '.join(tail)}")
    shutil.rmtree(libs, ignore_errors=True)
    tmp.rename(libs)
    marker.write_text(version)
    return libs


def new_cluster_id() -> str:
    """A random KRaft cluster id (base64 of a UUID, never starting with '-')."""
    cid = "-"
    while cid.startswith("-"):  # kafka-storage would read "-..." as an option; Kafka's Uuid skips them too
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    return cid


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass
class LocalBroker:
    """One local broker: its port, the controller's port and its run folder."""

    port: int = 9092
    run_dir: Path = field(default_factory=lambda: REPO_ROOT / ".run")
    host: str = "127.0.0.1"
    controller_port: int | None = None
    heap: str = "1g"
    version: str = KAFKA_VERSION
    extra_properties: dict[str, str] = field(default_factory=dict)
    listeners_override: str | None = None

    def __post_init__(self) -> None:
        check_port(self.port)
        self.controller_port = check_port(self.controller_port or self.port + 1)
        self.home = Path(self.run_dir) / f"kafka-{self.port}"

    # Paths ----------------------------------------------------------------
    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def pid_file(self) -> Path:
        return self.home / "broker.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "broker.log"

    @property
    def properties_file(self) -> Path:
        return self.home / "server.properties"

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    # State ------------------------------------------------------------------
    def pid(self) -> int | None:
        """The pid of our broker if it is running, else None (stale pid files are ignored)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            return None
        return pid if str(self.properties_file).encode() in cmdline else None

    def running(self) -> bool:
        return self.pid() is not None

    # Lifecycle -------------------------------------------------------------
    def properties(self) -> dict[str, str]:
        listeners = self.listeners_override or (
            f"PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{self.controller_port}"
        )
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"{self.host}:{self.controller_port}",
            "listeners": listeners,
            "advertised.listeners": f"PLAINTEXT://{self.host}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": "6",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "12",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "group.initial.rebalance.delay.ms": "0",
            # Lets tests that kill workers on purpose use short sessions (services default to 30 s).
            "group.min.session.timeout.ms": "3000",
            # Topics are created by `cluebus topics ensure`; faust declares its own.
            "auto.create.topics.enable": "false",
            "log.flush.interval.messages": "9223372036854775807",
        }
        props.update(self.extra_properties)
        return props

    def _write_properties(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        lines = [f"{k}={v}" for k, v in self.properties().items()]
        self.properties_file.write_text("\n".join(lines) + "\n")

    def _classpath(self, libs: Path) -> str:
        return f"{libs}/*"

    def _format(self, libs: Path) -> None:
        if (self.data_dir / "meta.properties").exists():
            return  # keep the data of a broker that ran before
        cmd = [
            "java",
            f"-Dlog4j2.configurationFile={DEPLOY_DIR / 'kafka' / 'log4j2.yaml'}",
            "-cp",
            self._classpath(libs),
            "kafka.tools.StorageTool",
            "format",
            "-t",
            self._cluster_id(),
            "-c",
            str(self.properties_file),
            *self._quorum_format_args(),
            *self._format_extra_args(),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise LauncherError(f"formatting {self.data_dir} failed: {proc.stdout.strip()} {proc.stderr.strip()}")

    def _cluster_id(self) -> str:
        return new_cluster_id()

    def _quorum_format_args(self) -> list[str]:
        return ["--standalone"]  # this node is the only voter of its controller quorum

    def _format_extra_args(self) -> list[str]:
        return []

    def up(self, timeout: float = 90.0) -> str:
        """Start the broker unless ours is running; wait until it answers. Returns a message."""
        if self.running():
            if self.wait_ready(timeout=timeout):
                return f"Kafka already running at {self.bootstrap} (pid {self.pid()}); reused"
            raise LauncherError(f"broker pid {self.pid()} is running but {self.bootstrap} does not answer")
        proc = self.launch(self.prepare_start())
        if not self.wait_ready(timeout=timeout, proc=proc):
            tail = self.log_tail()
            self.down()
            raise LauncherError(f"Kafka did not become ready on {self.bootstrap} in {timeout:.0f}s: {tail}")
        return f"Kafka {self.version} started at {self.bootstrap} (pid {proc.pid}, data {self.data_dir})"

    def prepare_start(self) -> Path:
        """Check ports and Java, fetch the jars, write the configuration, format new data. Returns the jars."""
        for port in (self.port, self.controller_port):
            if port_open(self.host, port):
                raise LauncherError(f"port {port} is in use by another process; stop it or choose another --port")
        if java_major_version() < 17:
            raise LauncherError("Kafka 4 needs Java 17 or newer; install openjdk-17-jre-headless")
        libs = resolve_jars(self.version)
        self._write_properties()
        self._format(libs)
        return libs

    def launch(self, libs: Path) -> subprocess.Popen[bytes]:
        """Start the broker process (prepared by :meth:`prepare_start`) without waiting for it."""
        env = {**os.environ, "LOG_DIR": str(self.home)}
        cmd = [
            "java",
            "-Xms256m",
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={DEPLOY_DIR / 'kafka' / 'log4j2.yaml'}",
            "-cp",
            self._classpath(libs),
            "kafka.Kafka",
            str(self.properties_file),
        ]
        with open(self.log_file, "ab") as log:
            proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=env,
            )
        self.pid_file.write_text(str(proc.pid))
        return proc

    def wait_ready(self, timeout: float = 90.0, proc: subprocess.Popen[bytes] | None = None) -> bool:
        """True once the broker answers a metadata request."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                return False
            if port_open(self.host, self.port) and self._answers():
                return True
            time.sleep(0.3)
        return False

    def _answers(self) -> bool:
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError

        try:
            client = KafkaAdminClient(
                bootstrap_servers=self.bootstrap,
                request_timeout_ms=5000,
                **self.client_security(),
            )
        except (KafkaError, OSError, ValueError):
            return False
        try:
            client.list_topics()
            return True
        except (KafkaError, OSError):
            return False
        finally:
            client.close()

    def client_security(self) -> dict[str, object]:
        """kafka-python options a client needs to reach the broker (plain profile: none)."""
        return {}

    def down(self, timeout: float = 30.0) -> str:
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return f"Kafka at {self.bootstrap} is not running"
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._alive(pid):
            time.sleep(0.2)
        if self._alive(pid):
            os.kill(pid, signal.SIGKILL)
        self._wait_gone(pid)
        self.pid_file.unlink(missing_ok=True)
        return f"Kafka at {self.bootstrap} stopped (data kept in {self.data_dir})"

    def _wait_gone(self, pid: int, timeout: float = 10.0) -> None:
        """Until the process has fully exited and its ports are free (so a new one can bind them).

        A JVM whose main thread has exited shows as a zombie while its other threads still
        tear down, and its listening sockets stay open meanwhile (seen after SIGKILL): reap
        it when it is our child, else wait for the ports to close.
        """
        try:
            os.waitpid(pid, 0)
            return
        except ChildProcessError:
            pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (
            self._alive(pid) or any(port_open(self.host, p, timeout=0.2) for p in (self.port, self.controller_port))
        ):
            time.sleep(0.1)

    @staticmethod
    def _alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        # A zombie (exited child not yet reaped) counts as stopped.
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        except OSError:
            return False
        return state != "Z"

    def status(self) -> str:
        pid = self.pid()
        if pid is None:
            return f"stopped: {self.bootstrap} (data {self.data_dir})"
        ready = "ready" if self._answers() else "not answering"
        return f"running: {self.bootstrap} pid {pid} {ready} (data {self.data_dir})"

    def log_tail(self, lines: int = 3) -> str:
        try:
            text = self.log_file.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no broker log"
        return " | ".join(text[-lines:])
