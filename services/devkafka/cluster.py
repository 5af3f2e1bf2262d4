"""A local Apache Kafka cluster of several KRaft nodes, for development, tests and benchmarks.

``cluebus kafka up --brokers 3`` runs three nodes, each a broker *and* a voter of the
controller quorum (``process.roles=broker,controller``), on consecutive ports:

* clients: ``--port`` .. ``--port + n - 1`` (9092, 9093, 9094 for three nodes);
* controllers: the next ``n`` ports (9095, 9096, 9097);
* folders: ``<run-dir>/kafka-cluster-<port>/node-<id>/`` (data, ``server.properties``,
  ``broker.log``, ``broker.pid``) and the shared ``cluster.id``.

Why combined nodes and not separate controllers: three JVMs instead of six on a small
development machine (the tests run on two shared cores), and the fault tolerance is the
same one node either way: a three-voter quorum survives one voter lost, as replication
factor 3 with ``min.insync.replicas=2`` survives one broker lost. Killing a node also
kills a controller (sometimes the active one), which makes the fault tests harder, not
easier. Production clusters should run dedicated controllers, as Kafka's documentation
advises (``deploy/kafka/cluster/README.md``).

The quorum is static (``controller.quorum.voters``): every node knows all voters from its
first start, so the nodes are formatted with one cluster id and started together; a
node's own ``up`` (after a kill in a test) rejoins the running quorum. ``up`` is
idempotent like the single broker's: running nodes are reused, stopped ones are started
again with their data.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.devkafka.broker import REPO_ROOT, LauncherError, LocalBroker, check_port, new_cluster_id, port_open


def replicated_defaults(brokers: int) -> dict[str, str]:
    """Broker settings for a cluster of ``brokers``: Kafka's own internal topics (group offsets,
    transactions, share groups) and any topic made without explicit settings get three copies
    (fewer on a smaller cluster), all but one of which must hold a record before it is
    acknowledged; a replica that missed records never becomes leader."""
    replicas = min(3, brokers)
    min_isr = str(max(1, replicas - 1))
    return {
        "default.replication.factor": str(replicas),
        "min.insync.replicas": min_isr,
        "offsets.topic.replication.factor": str(replicas),
        "transaction.state.log.replication.factor": str(replicas),
        "transaction.state.log.min.isr": min_isr,
        "share.coordinator.state.topic.replication.factor": str(replicas),
        "share.coordinator.state.topic.min.isr": min_isr,
        "unclean.leader.election.enable": "false",
    }


@dataclass
class ClusterNode(LocalBroker):
    """One node of a :class:`LocalCluster`: a broker and a controller-quorum voter."""

    node_id: int = 1
    voters: str = ""  # controller.quorum.voters, e.g. "1@127.0.0.1:9095,2@127.0.0.1:9096,..."
    cluster_home: Path = field(default_factory=lambda: REPO_ROOT / ".run" / "kafka-cluster")
    cluster_size: int = 3

    def __post_init__(self) -> None:
        super().__post_init__()
        self.home = Path(self.cluster_home) / f"node-{self.node_id}"
        self._log_start = 0  # where the log of the latest launch begins

    @property
    def cluster_id_file(self) -> Path:
        return Path(self.cluster_home) / "cluster.id"

    def properties(self) -> dict[str, str]:
        props = super().properties()
        props.pop("controller.quorum.bootstrap.servers", None)
        props.update({"node.id": str(self.node_id), "controller.quorum.voters": self.voters})
        props.update(replicated_defaults(self.cluster_size))
        props.update(self.extra_properties)
        return props

    def _cluster_id(self) -> str:
        return self.cluster_id_file.read_text().strip()

    def _quorum_format_args(self) -> list[str]:
        return []  # a static quorum: the voters are in controller.quorum.voters

    def lost_port_race(self) -> bool:
        """Whether the node's last start failed because its port was bound by another socket."""
        try:
            with open(self.log_file, "rb") as log:
                log.seek(self._log_start)
                return b"BindException: Address already in use" in log.read()
        except OSError:
            return False

    def launch(self, libs: Path) -> Any:
        self._log_start = self.log_file.stat().st_size if self.log_file.exists() else 0
        return super().launch(libs)

    def kill(self) -> None:
        """SIGKILL the node: a crash, no controlled shutdown (what the fault tests do)."""
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            self._wait_gone(pid)


@dataclass
class LocalCluster:
    """``brokers`` combined KRaft nodes on consecutive ports under one run folder."""

    port: int = 9092
    brokers: int = 3
    run_dir: Path = field(default_factory=lambda: REPO_ROOT / ".run")
    host: str = "127.0.0.1"
    heap: str = "512m"
    extra_properties: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.brokers, int) or not 2 <= self.brokers <= 9:
            raise LauncherError(f"a local cluster has 2 to 9 brokers, not {self.brokers!r}")
        check_port(self.port)
        check_port(self.port + 2 * self.brokers - 1)
        self.home = Path(self.run_dir) / f"kafka-cluster-{self.port}"
        voters = ",".join(f"{i + 1}@{self.host}:{self.port + self.brokers + i}" for i in range(self.brokers))
        self.nodes = [
            ClusterNode(
                port=self.port + i,
                controller_port=self.port + self.brokers + i,
                run_dir=self.run_dir,
                host=self.host,
                heap=self.heap,
                extra_properties=dict(self.extra_properties),
                node_id=i + 1,
                voters=voters,
                cluster_home=self.home,
                cluster_size=self.brokers,
            )
            for i in range(self.brokers)
        ]

    @classmethod
    def found(cls, port: int, run_dir: Path | None) -> LocalCluster | None:
        """The cluster whose folder exists for ``port`` under ``run_dir``, if any (for down/status)."""
        home = Path(run_dir or REPO_ROOT / ".run") / f"kafka-cluster-{port}"
        count = len(list(home.glob("node-*")))
        if count < 2:
            return None
        kwargs: dict[str, Any] = {"port": port, "brokers": count}
        if run_dir is not None:
            kwargs["run_dir"] = run_dir
        return cls(**kwargs)

    @property
    def bootstrap(self) -> str:
        return ",".join(node.bootstrap for node in self.nodes)

    def node(self, node_id: int) -> ClusterNode:
        return self.nodes[node_id - 1]

    def running(self) -> list[int]:
        return [n.node_id for n in self.nodes if n.running()]

    # Lifecycle -------------------------------------------------------------------------
    def up(self, timeout: float = 120.0) -> str:
        """Start every node that is not running, then wait until all answer as one cluster."""
        self.home.mkdir(parents=True, exist_ok=True)
        if not self.nodes[0].cluster_id_file.exists():
            self.nodes[0].cluster_id_file.write_text(new_cluster_id() + "\n")
        stopped = [n for n in self.nodes if not n.running()]
        if not self._start_and_wait(stopped, timeout):
            tails = "; ".join(f"node {n.node_id}: {n.log_tail(1)}" for n in stopped)
            if stopped:
                self.down()
            raise LauncherError(
                f"the {self.brokers}-broker cluster at {self.bootstrap} is not ready in {timeout:.0f}s: {tails}"
            )
        if not stopped:
            return f"Kafka cluster already running at {self.bootstrap} (nodes {self._pids()}); reused"
        return (
            f"Kafka {self.nodes[0].version} cluster of {self.brokers} brokers started at {self.bootstrap} "
            f"(nodes {self._pids()}, data {self.home})"
        )

    def start_nodes(self, *node_ids: int, timeout: float = 120.0) -> None:
        """Start stopped (or killed) nodes again, together, and wait until the cluster counts them all."""
        stopped = [self.node(i) for i in node_ids if not self.node(i).running()]
        if not self._start_and_wait(stopped, timeout):
            tails = "; ".join(f"node {n.node_id}: {n.log_tail(1)}" for n in stopped)
            raise LauncherError(f"nodes {[n.node_id for n in stopped]} did not rejoin in {timeout:.0f}s: {tails}")

    def _start_and_wait(self, nodes: list[ClusterNode], timeout: float) -> bool:
        """Launch ``nodes`` together (none can answer before a majority of the quorum runs) and
        wait until every node sees the whole cluster.

        A node that lost its port to another socket while starting is launched again: ports
        in the kernel's ephemeral range (32768-60999 here) can be taken for a moment as the
        local end of some client connection (seen: a node failing with "Address already in
        use" on a port nothing listened on a second before).
        """
        libs = {n.node_id: n.prepare_start() for n in nodes}  # a port in use fails before anything starts
        procs = {n.node_id: n.launch(libs[n.node_id]) for n in nodes}
        relaunches = 3
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for node_id, proc in list(procs.items()):
                if proc.poll() is None:
                    continue
                node = self.node(node_id)
                if not relaunches or not node.lost_port_race():
                    return False
                relaunches -= 1
                time.sleep(1.0)
                procs[node_id] = node.launch(libs[node_id])
            if all(self._sees_whole_cluster(n) for n in self.nodes):
                return True
            time.sleep(0.5)
        return False

    def wait_ready(self, timeout: float = 120.0) -> bool:
        """True once every node answers and each one sees all brokers registered and unfenced."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self._sees_whole_cluster(n) for n in self.nodes):
                return True
            time.sleep(0.5)
        return False

    def _sees_whole_cluster(self, node: ClusterNode) -> bool:
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError

        if not port_open(node.host, node.port):
            return False
        try:
            # A short bootstrap wait: kafka-python's admin client would otherwise wait 30 s for a starting node.
            admin = KafkaAdminClient(
                bootstrap_servers=node.bootstrap, request_timeout_ms=5000, bootstrap_timeout_ms=2000
            )
        except (KafkaError, OSError, ValueError):
            return False
        try:
            described = admin.describe_cluster()
            live = {b["broker_id"] for b in described["brokers"] if not b.get("is_fenced")}
            return live == {n.node_id for n in self.nodes} and (described.get("controller_id") or -1) > 0
        except (KafkaError, OSError):
            return False
        finally:
            admin.close()

    def down(self, timeout: float = 60.0) -> str:
        """Stop every node (SIGTERM to all at once, so the last ones still have a quorum)."""
        pids = {n.node_id: n.pid() for n in self.nodes}
        for pid in pids.values():
            if pid is not None:
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(p is not None and LocalBroker._alive(p) for p in pids.values()):
            time.sleep(0.2)
        for node in self.nodes:
            pid = pids[node.node_id]
            if pid is not None:
                if LocalBroker._alive(pid):
                    os.kill(pid, signal.SIGKILL)
                node._wait_gone(pid)
            node.pid_file.unlink(missing_ok=True)
        if not any(pids.values()):
            return f"Kafka cluster at {self.bootstrap} is not running"
        return f"Kafka cluster at {self.bootstrap} stopped (data kept in {self.home})"

    def status(self) -> str:
        lines = [f"cluster of {self.brokers} brokers at {self.bootstrap} (data {self.home})"]
        lines += [f"  node {n.node_id}: {n.status()}" for n in self.nodes]
        return "\n".join(lines)

    def _pids(self) -> str:
        return ", ".join(f"{n.node_id}: pid {n.pid()}" for n in self.nodes)
