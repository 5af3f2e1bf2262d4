"""The bus on the three-broker cluster, under faults: services, a steady load over HTTP, the tally.

:class:`ClusterBus` runs a router and two adapters (hospital, school) as real processes
against the cluster, restarting a process that exits (what systemd or compose
``restart:`` would do) and counting the restarts. :class:`Load` posts reports to every
adapter at a steady rate and keeps every answer. :class:`ReferralWatcher` tails the
referral topics and notes when each referral first arrives, which gives the longest
gap in routing. :meth:`ClusterBus.finish` waits until every accepted report's
referrals have arrived (or a deadline passes) and counts from the topics themselves.

When a referral is missing, :func:`~.diagnosis.diagnose` writes what is needed to find
the window. Leaders, coordinators and replicas are looked up in :mod:`.admin`.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from kafka import KafkaConsumer, TopicPartition

from schemas import Referral, parse_report, referral_id_for
from services.common.ids import uuid7
from services.common.topics import TopicNames
from services.rules import load_rules

from ..support import REPO, Service, free_port, wait_healthy, wait_until
from .diagnosis import diagnose

SOURCES = ("hospital", "school")
BODIES = {s: json.loads((REPO / f"deploy/adapters/examples/{s}.json").read_text()) for s in SOURCES}
RESULTS: list[str] = []  # one line per scenario, printed at the end of the session


def note(line: str) -> None:
    """Print a line and list it in the session's summary of the fault scenarios."""
    RESULTS.append(f"  {line}")
    print(line)


# --- load ------------------------------------------------------------------------------------
@dataclass
class Post:
    source: str
    ref: str
    sent_at: float
    status: int | None = None  # None: no answer (connection refused, timeout)
    report_id: str | None = None
    error: str | None = None
    answered_at: float | None = None
    retry_after: str | None = None


class Load:
    """Posts reports to each adapter at ``rate`` per second until stopped; keeps every answer."""

    def __init__(self, urls: dict[str, str], rate: float, tag: str) -> None:
        self.urls, self.rate, self.tag = urls, rate, tag
        self.posts: list[Post] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(s,), daemon=True) for s in urls]

    def __enter__(self) -> Load:
        self.started_at = time.monotonic()
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        self.stopped_at = time.monotonic()

    def _run(self, source: str) -> None:
        interval, n = 1.0 / self.rate, 0
        next_at = time.monotonic()
        with httpx.Client(timeout=10, headers={"Authorization": f"Bearer demo-{source}-token"}) as client:
            while not self._stop.is_set():
                self.post(client, source, f"{self.tag}-{source}-{n}")
                n += 1
                next_at = max(next_at + interval, time.monotonic() - interval)
                self._stop.wait(max(0.0, next_at - time.monotonic()))

    def post(self, client: httpx.Client, source: str, ref: str) -> Post:
        post = Post(source, ref, time.monotonic())
        try:
            answer = client.post(f"{self.urls[source]}/v1/reports", json={**BODIES[source], "source_ref": ref})
            post.status = answer.status_code
            body = answer.json()
            post.report_id = body.get("report_id") if answer.status_code == 202 else None
            post.error = body.get("error")
            post.retry_after = answer.headers.get("Retry-After")
        except (httpx.HTTPError, ValueError) as exc:
            post.error = type(exc).__name__
        post.answered_at = time.monotonic()
        with self._lock:
            self.posts.append(post)
        return post

    def answered(self, status: int | None) -> list[Post]:
        with self._lock:
            return [p for p in self.posts if p.status == status]


# --- watching the referral topics ------------------------------------------------------------
class ReferralWatcher(threading.Thread):
    """Tails the referral topics from the start; notes when each referral id first arrives."""

    def __init__(self, bootstrap: str, topics: list[str]) -> None:
        super().__init__(daemon=True)
        self.bootstrap, self.topics = bootstrap, topics
        self.first_seen: dict[str, float] = {}
        self._halt = threading.Event()

    def run(self) -> None:
        consumer = KafkaConsumer(
            *self.topics,
            bootstrap_servers=self.bootstrap,
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        try:
            while not self._halt.is_set():
                for records in consumer.poll(timeout_ms=200).values():
                    now = time.monotonic()
                    for record in records:
                        self.first_seen.setdefault(Referral.model_validate_json(record.value).referral_id, now)
        finally:
            consumer.close()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=10)


# --- the bus ---------------------------------------------------------------------------------
@dataclass
class Tally:
    scenario: str
    sent: int
    accepted: int
    rejected_503: int
    unanswered: int
    expected: int
    seen: int
    duplicates: int
    lost: int
    unexpected: int
    longest_gap_s: float
    slowest_report_s: float
    restarts: dict[str, int] = field(default_factory=dict)
    took_s: float = 0.0

    def line(self) -> str:
        restarts = ",".join(f"{k}={v}" for k, v in sorted(self.restarts.items())) or "none"
        return (
            f"{self.scenario}: sent={self.sent} accepted={self.accepted} 503={self.rejected_503} "
            f"unanswered={self.unanswered} referrals_expected={self.expected} seen={self.seen} "
            f"duplicates={self.duplicates} lost={self.lost} unexpected={self.unexpected} "
            f"longest_gap={self.longest_gap_s:.1f}s slowest_report={self.slowest_report_s:.1f}s "
            f"restarts={restarts} took={self.took_s:.0f}s"
        )


class ClusterBus:
    """A router and the adapters of :data:`SOURCES` on the cluster, supervised."""

    def __init__(
        self,
        start_service: Callable[[str, list[str], dict[str, str]], Service],
        env: dict[str, str],
        names: TopicNames,
        rules_file: Path,
        log_dir: Path,
        adapter_env: dict[str, str] | None = None,
    ) -> None:
        self.start_service, self.env, self.names, self.log_dir = start_service, env, names, log_dir
        self.bootstrap = env["CLUEBUS_KAFKA_BOOTSTRAP"]
        self.rules = load_rules(rules_file)
        self.departments = {s: self._departments(s) for s in SOURCES}
        self.ports = {s: free_port() for s in SOURCES}
        self.urls = {s: f"http://127.0.0.1:{p}" for s, p in self.ports.items()}
        self.adapter_env = adapter_env or {}
        self.procs: dict[str, Service] = {}
        self.restarts: Counter[str] = Counter()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        topics = sorted({self.names.referral(d) for ds in self.departments.values() for d in ds})
        self.referral_topics = topics
        self.watcher = ReferralWatcher(self.bootstrap, topics)
        self.started_at = time.monotonic()

    def _departments(self, source: str) -> set[str]:
        now = datetime.now(UTC)
        body = {**BODIES[source], "source": source, "source_system": f"demo-{source}-sys", "report_id": uuid7()}
        sample = parse_report(json.dumps({**body, "received_at": now.isoformat()}))
        return {p.department for p in self.rules.plan(sample, now).referrals}

    # processes
    def _args(self, name: str) -> tuple[list[str], dict[str, str]]:
        if name == "router":
            return ["router", "--metrics-port", "0"], self.env
        source = name.removeprefix("adapter-")
        env = {
            **self.env,
            "CLUEBUS_ADAPTER_PORT": str(self.ports[source]),
            "CLUEBUS_ADAPTER_RELAY_BACKOFF_MAX_S": "1",
            "CLUEBUS_ADAPTER_TOKENS_FILE": str(REPO / "deploy/adapters/demo-tokens.toml"),
            "CLUEBUS_ADAPTER_PLAIN_HTTP": "true",  # loopback only; TLS is tested in adapters/test_network.py
            **self.adapter_env,
        }
        return ["adapter", source], env

    def _start(self, name: str) -> Service:
        args, env = self._args(name)
        label = name if not self.restarts[name] else f"{name}-restart-{self.restarts[name]}"
        service = self.start_service(label, args, env)
        self.procs[name] = service
        return service

    def start(self) -> ClusterBus:
        self._start("router")
        for source in SOURCES:
            wait_healthy(self.urls[source], self._start(f"adapter-{source}"), timeout=60)
        self.watcher.start()
        threading.Thread(target=self._supervise, daemon=True).start()
        # Warm-up: the router is assigned its partitions and routes before any fault.
        warm = Load(self.urls, rate=1, tag="warm-up")
        with httpx.Client(timeout=10) as client:
            for source in SOURCES:
                client.headers["Authorization"] = f"Bearer demo-{source}-token"
                warm.post(client, source, f"warm-up-{source}")
        self.warm_up = warm
        wanted = self.expected_referrals(warm.answered(202))
        wait_until(lambda: wanted <= set(self.watcher.first_seen), timeout=120)
        note(f"bus routing {time.monotonic() - self.started_at:.1f}s after its start (router, {len(SOURCES)} adapters)")
        return self

    def _supervise(self) -> None:
        while not self._stop.wait(0.5):
            for name, service in list(self.procs.items()):
                if service.proc is not None and service.proc.poll() is not None and not self._stop.is_set():
                    self.restarts[name] += 1
                    time.sleep(1.0)  # a supervisor's restart delay
                    self._start(name)

    def stop(self) -> None:
        """Stop supervising and watching, then every process at once (each may take seconds)."""
        self._stop.set()
        self.watcher.stop()
        stoppers = [threading.Thread(target=s.stop, kwargs={"timeout": 20}) for s in self.procs.values()]
        for thread in stoppers:
            thread.start()
        for thread in stoppers:
            thread.join()

    # counting
    def expected_referrals(self, accepted: list[Post]) -> set[str]:
        return {referral_id_for(p.report_id, d) for p in accepted for d in self.departments[p.source]}

    def finish(self, scenario: str, load: Load, timeout: float = 120.0) -> Tally:
        accepted = self.warm_up.answered(202) + load.answered(202)
        expected = self.expected_referrals(accepted)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not expected <= set(self.watcher.first_seen):
            time.sleep(0.5)
        ids = self.read_referral_ids()
        unique = set(ids)
        done = {r: t for r, t in self.watcher.first_seen.items() if r in expected}
        tally = Tally(
            scenario=scenario,
            sent=len(load.posts),
            accepted=len(load.answered(202)),
            rejected_503=len(load.answered(503)),
            unanswered=len(load.answered(None)),
            expected=len(expected),
            seen=len(unique & expected),
            duplicates=len(ids) - len(unique),
            lost=len(expected - unique),
            unexpected=len(unique - expected),
            longest_gap_s=longest_gap(accepted, self.departments, done),
            slowest_report_s=slowest_report(accepted, self.departments, done),
            restarts=dict(self.restarts),
            took_s=time.monotonic() - self.started_at,
        )
        self.stop()
        RESULTS.append(tally.line())
        print(tally.line())
        if tally.lost:
            lost = expected - unique
            print(diagnose(self, accepted, lost, self.log_dir / f"{scenario.split()[0]}-loss.txt"))
        return tally

    def read_referral_ids(self) -> list[str]:
        """Every referral record in the topics (duplicates included), read from the start."""
        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=None, auto_offset_reset="earliest", enable_auto_commit=False
        )
        try:
            tps = [TopicPartition(t, p) for t in self.referral_topics for p in consumer.partitions_for_topic(t) or ()]
            consumer.assign(tps)
            consumer.seek_to_beginning()
            ends = consumer.end_offsets(tps)
            ids: list[str] = []
            deadline = time.monotonic() + 60
            while any(consumer.position(tp) < ends[tp] for tp in tps) and time.monotonic() < deadline:
                for records in consumer.poll(timeout_ms=500).values():
                    ids.extend(Referral.model_validate_json(r.value).referral_id for r in records)
            return ids
        finally:
            consumer.close()

    # adapters' own view
    def adapter_view(self, source: str) -> dict[str, Any]:
        """/readyz (status, checks, backlog) and the cluebus_adapter_kafka_up gauge of one adapter."""
        url = self.urls[source]
        ready = httpx.get(f"{url}/readyz", timeout=5)
        kafka_up = None
        for line in httpx.get(f"{url}/metrics", timeout=5).text.splitlines():
            if line.startswith("cluebus_adapter_kafka_up{"):
                kafka_up = float(line.rsplit(" ", 1)[1])
        return {"status": ready.status_code, **ready.json(), "kafka_up": kafka_up}


def _report_done_at(post: Post, departments: dict[str, set[str]], done: dict[str, float]) -> float | None:
    times = [done.get(referral_id_for(post.report_id, d)) for d in departments[post.source]]
    return None if None in times else max(t for t in times if t is not None)


def slowest_report(accepted: list[Post], departments: dict[str, set[str]], done: dict[str, float]) -> float:
    """The longest time from a 202 to the arrival of that report's last referral."""
    waits = [
        t - p.answered_at
        for p in accepted
        if (t := _report_done_at(p, departments, done)) is not None and p.answered_at is not None
    ]
    return max(waits, default=0.0)


def longest_gap(accepted: list[Post], departments: dict[str, set[str]], done: dict[str, float]) -> float:
    """The longest stretch in which an accepted report waited and no referral arrived at all."""
    arrivals = sorted(done.values())
    spans = [
        (p.answered_at, t)
        for p in accepted
        if (t := _report_done_at(p, departments, done)) is not None and p.answered_at is not None
    ]
    gap = 0.0
    for span_start, span_end in spans:
        # within (span_start, span_end) the report waited: the longest interval without arrivals
        inside = [span_start] + [a for a in arrivals if span_start < a < span_end] + [span_end]
        gap = max(gap, max(b - a for a, b in zip(inside, inside[1:], strict=False)))
    return gap
