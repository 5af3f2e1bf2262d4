"""End-to-end latency: adapter 202 -> referral readable by a police consumer.

Targets (issue 17): p99 < 25 ms at light load (10% of the router's maximum) and < 250 ms at
70% of it; the maximum is the router's with the tracker running, as measured by
``router_throughput.py`` (the same services run here).

    .venv/bin/python bench/e2e_latency.py [--reports 300] [--router-rps R] [--no-tracker]

Under a fresh topic prefix it starts ``cluebus adapter hospital``, ``cluebus
router`` and (by default) ``cluebus tracker``, and reads the police referral
topic with a kafka-python consumer in a thread. It posts the hospital example
(it routes to police, checked with ``route_report``), each with a unique
``source_ref``, at a fixed open-loop rate, and takes for every report the time
its police referral was received minus the moment its 202 arrived (matched by
``report_id``; one clock, one process). Two loads: light (10% of the router's
maximum ``R``; by default read from bench/results/router_throughput.json,
else a fixed 20 reports/s) and 70% of ``R``. For each load it also records, from /proc, how
many cores the machine and each service kept busy while posting, and how long each service's
threads waited for a free core (run-queue wait, ``/proc/<pid>/task/*/schedstat``): the adapter,
the load generator and the broker share the cores with the router, so 70% of the router's
maximum can be a full machine. Writes ``bench/results/e2e_latency.json``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kafka_baseline as kb
import router_throughput as rt

REPO = kb.REPO
RESULTS = REPO / "bench" / "results" / "e2e_latency.json"
EXAMPLE = REPO / "deploy" / "adapters" / "examples" / "hospital.json"
TOKENS = REPO / "deploy" / "adapters" / "demo-tokens.toml"
TARGET_P99_MS = {"light": 25, "heavy_70pct": 250}
TOKEN = "demo-hospital-token"  # noqa: S105 - the demo token shipped in deploy/adapters/demo-tokens.toml


def check_routes_to_police() -> None:
    """The example (as the v1 report of the same category) must reach police, or nothing is measured."""
    from schemas import parse_report
    from schemas.examples import load_examples
    from services.router.routing import route_report
    from services.rules import load_rules

    category = json.loads(EXAMPLE.read_text())["category"]
    data = next(
        e for e in load_examples("v1", "reports").values() if e["source"] == "hospital" and e["category"] == category
    )
    report = parse_report(json.dumps(data))
    departments = {r.department for r in route_report(load_rules(rt.RULES_FILE), report, datetime.now(UTC)).referrals}
    if "police" not in departments:
        raise SystemExit(f"{EXAMPLE.name} ({category}) does not route to police: {sorted(departments)}")


class PoliceReader(threading.Thread):
    """Records when each report's police referral is received (perf_counter, before parsing)."""

    def __init__(self, bootstrap: str, topic: str, report_topic: str) -> None:
        super().__init__(daemon=True)
        from kafka import KafkaConsumer

        self.report_topic = report_topic
        self.consumer = KafkaConsumer(
            topic,
            report_topic,
            bootstrap_servers=bootstrap,
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            fetch_max_wait_ms=100,
        )
        self.arrivals: dict[str, float] = {}
        # Wall-clock arrival and the referral's routed_at, for the split of the latency into
        # "202 -> routed" and "routed -> read" (one machine, one clock).
        self.wall: dict[str, tuple[float, float]] = {}
        self.published: dict[str, float] = {}  # the report record's timestamp (the relay's send)
        self.stopping = threading.Event()
        self.lock = threading.Lock()

    def run(self) -> None:
        while not self.stopping.is_set():
            for records in self.consumer.poll(timeout_ms=100).values():
                received, wall = time.perf_counter(), time.time()
                for record in records:
                    if record.topic == self.report_topic:
                        with self.lock:
                            self.published[json.loads(record.value)["report_id"]] = record.timestamp / 1000
                        continue
                    referral = json.loads(record.value)
                    report_id = referral["report_id"]
                    routed = datetime.fromisoformat(referral["routed_at"]).timestamp()
                    with self.lock:
                        self.arrivals.setdefault(report_id, received)
                        self.wall.setdefault(report_id, (wall, routed))
        self.consumer.close()

    def count(self, ids: list[str]) -> int:
        with self.lock:
            return sum(1 for i in ids if i in self.arrivals)


def post_at_rate(
    port: int, n: int, rate: float, run: str, senders: int = 8
) -> tuple[dict[str, float], dict[str, float], list[int], float]:
    """Open-loop: report i is posted at t0 + i/rate by one of a few keep-alive connections."""
    template = json.loads(EXAMPLE.read_text())
    accepted: dict[str, float] = {}
    accepted_wall: dict[str, float] = {}
    errors: list[int] = []
    lock = threading.Lock()
    t0 = time.perf_counter() + 0.05

    def sender(j: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        for i in range(j, n, senders):
            delay = t0 + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            body = json.dumps({**template, "source_ref": f"bench-{run}-{i}"}, ensure_ascii=False).encode()
            conn.request("POST", "/v1/reports", body, headers)
            response = conn.getresponse()
            payload = response.read()
            at, wall = time.perf_counter(), time.time()
            with lock:
                if response.status == 202:
                    report_id = json.loads(payload)["report_id"]
                    accepted[report_id] = at
                    accepted_wall[report_id] = wall
                else:
                    errors.append(response.status)
        conn.close()

    threads = [threading.Thread(target=sender, args=(j,)) for j in range(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return accepted, accepted_wall, errors, time.perf_counter() - t0


def per_second(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, float]:
    """Each service's growth of a /proc counter (seconds) per second of ``seconds``."""
    return {name: round((after[name] - before.get(name, 0.0)) / max(seconds, 1e-9), 2) for name in after}


def measure(
    port: int, reader: PoliceReader, n: int, rate: float, procs: list[Any], wait_s: float = 30.0
) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]
    busy_before, cpu_before = rt.machine_busy_seconds(), rt.cpu_seconds(procs)
    waited_before = rt.runqueue_wait_seconds(procs)
    accepted, accepted_wall, errors, sending_s = post_at_rate(port, n, rate, run)
    # Is "70% of the router's maximum" 70% of the machine? The adapter, the tracker, the broker
    # and this load generator share its cores with the router.
    machine_cores_busy = (rt.machine_busy_seconds() - busy_before) / max(sending_s, 1e-9)
    cpu_after, waited_after = rt.cpu_seconds(procs), rt.runqueue_wait_seconds(procs)
    cores_busy = per_second(cpu_before, cpu_after, sending_s)
    # Seconds per second that a service's threads were ready to run and found no free core.
    waiting = per_second(waited_before, waited_after, sending_s)
    ids = list(accepted)
    deadline = time.monotonic() + wait_s
    while reader.count(ids) < len(ids) and time.monotonic() < deadline:
        time.sleep(0.05)
    with reader.lock:
        latencies = sorted((reader.arrivals[i] - accepted[i]) * 1000 for i in ids if i in reader.arrivals)
        walls = [(accepted_wall[i], reader.published[i], *reader.wall[i]) for i in ids if i in reader.wall]
    to_published = sorted((published - ok) * 1000 for ok, published, _, _ in walls)
    to_routed = sorted((routed - published) * 1000 for _, published, _, routed in walls)
    to_read = sorted((read - routed) * 1000 for _, _, read, routed in walls)
    return {
        "rate_target": round(rate, 1),
        "rate_achieved": round(n / sending_s, 1),
        "posted": n,
        "accepted": len(ids),
        "errors": len(errors),
        "received": len(latencies),
        "missing": len(ids) - len(latencies),
        "p50_ms": round(kb.pct(latencies, 0.50), 1),
        "p95_ms": round(kb.pct(latencies, 0.95), 1),
        "p99_ms": round(kb.pct(latencies, 0.99), 1),
        "max_ms": round(latencies[-1], 1) if latencies else None,
        "min_ms": round(latencies[0], 1) if latencies else None,
        "machine_cores_busy": round(machine_cores_busy, 2),
        "service_cores_busy": cores_busy,
        "service_runqueue_wait_s_per_s": waiting,
        # Where the time goes (wall clock, one machine): 202 -> the report record's timestamp
        # (the adapter's relay sending it), -> the router's routed_at (the broker, the router's
        # fetch and routing), -> read by the police consumer (the router's send, the broker,
        # the consumer's fetch). The relay may send before the 202 reaches the client, so the
        # first can be negative.
        "split_ms": {
            name: {q: round(kb.pct(values, f), 1) for q, f in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))}
            for name, values in (
                ("accepted_to_published", to_published),
                ("published_to_routed", to_routed),
                ("routed_to_read", to_read),
            )
            if values
        },
    }


def router_max(path: Path) -> float | None:
    try:
        return float(json.loads(path.read_text())["router"]["reports_per_s"])
    except (OSError, ValueError, KeyError):
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reports", type=int, default=300, help="per load")
    parser.add_argument(
        "--router-rps",
        type=float,
        default=None,
        help="the router's maximum reports/s (default: from router_throughput.json)",
    )
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--no-tracker", dest="tracker", action="store_false")
    parser.add_argument("--bootstrap", default=kb.DEFAULT_BOOTSTRAP)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if not kb.kafka_reachable(args.bootstrap):
        raise SystemExit(f"no broker at {args.bootstrap}")
    check_routes_to_police()

    maximum = args.router_rps or router_max(rt.RESULTS)
    loads = {"light": maximum * 0.1 if maximum else 20.0, "heavy_70pct": maximum * 0.7 if maximum else None}

    prefix = kb.fresh_prefix(args.bootstrap)
    names, _, _ = rt.make_bus(args.bootstrap, prefix)
    work = Path(tempfile.mkdtemp(prefix="cluebus-bench-e2e-"))
    env = rt.service_env(args.bootstrap, prefix, work / "state")
    port = kb.free_port()
    env |= {"CLUEBUS_ADAPTER_PORT": str(port), "CLUEBUS_ADAPTER_TOKENS_FILE": str(TOKENS)}
    env |= {"CLUEBUS_ADAPTER_PLAIN_HTTP": "true", "CLUEBUS_ADAPTER_RATE_PER_ADDRESS": "1e6"}
    env |= {"CLUEBUS_ADAPTER_BURST_PER_ADDRESS": "1000000", "CLUEBUS_ADAPTER_RATE_PER_SYSTEM": "1e6"}
    env |= {"CLUEBUS_ADAPTER_BURST_PER_SYSTEM": "1000000"}
    logs = work / "logs"
    reader = PoliceReader(args.bootstrap, names.referral("police"), names.report("hospital"))
    reader.start()
    procs = []
    results: dict[str, Any] = {}
    try:
        if args.tracker:
            procs.append(rt.start("tracker", ["tracker", "--metrics-port", "0"], env, logs))
        procs.append(rt.start("router", ["router", "--metrics-port", "0"], env, logs))
        adapter = rt.start("adapter", ["adapter", "hospital"], env, logs)
        procs.append(adapter)
        kb.wait_http(port, adapter, "/readyz", timeout=60)
        # Warm-up until referrals flow: the router has joined its group and every client is connected.
        warm = measure(port, reader, args.warmup, 20.0, procs, wait_s=90.0)
        if warm["received"] < warm["accepted"] or not warm["accepted"]:
            raise SystemExit(f"warm-up referrals did not arrive: {warm}; see {logs}")
        for name, rate in loads.items():
            if rate:
                results[name] = measure(port, reader, args.reports, rate, procs)
    finally:
        for proc in reversed(procs):
            rt.stop(proc)
        reader.stopping.set()
        reader.join(10)
    shutil.rmtree(work, ignore_errors=True)

    met_by_load = {name: r["missing"] == 0 and r["p99_ms"] < TARGET_P99_MS[name] for name, r in results.items()}
    met = all(met_by_load.values())
    report = {
        **kb.header("e2e_latency"),
        "settings": {
            "bootstrap": args.bootstrap,
            "prefix": prefix,
            "partitions": kb.PARTITIONS,
            "reports_per_load": args.reports,
            "warmup": args.warmup,
            "tracker_running": args.tracker,
            "router_max_reports_per_s": maximum,
            "router_max_from": "--router-rps"
            if args.router_rps
            else (str(rt.RESULTS.relative_to(REPO)) if maximum else "unknown: light load fixed at 20/s"),
            "example": str(EXAMPLE.relative_to(REPO)),
            "senders": 8,
            "measured": "police referral received (kafka-python consumer, same process) - 202 received",
        },
        "loads": results,
        "target_p99_ms": TARGET_P99_MS,
        "met_by_load": met_by_load,
        "met": met,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{'load':14}{'rate/s':>9}{'got/sent':>10}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for name, r in results.items():
        print(
            f"{name:14}{r['rate_achieved']:>9}{r['received']:>5}/{r['accepted']:<4}{r['p50_ms']:>9}"
            f"{r['p95_ms']:>9}{r['p99_ms']:>9}{r['max_ms']:>9}"
        )
        for part, q in r.get("split_ms", {}).items():
            print(f"  {part:22} p50 {q['p50']} / p95 {q['p95']} / p99 {q['p99']} ms")
    for name, ok in met_by_load.items():
        print(f"{name}: p99 < {TARGET_P99_MS[name]} ms {'met' if ok else 'NOT met'}")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
