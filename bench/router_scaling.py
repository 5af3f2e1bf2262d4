"""Router workers in one group: the scaling curve (target: two workers >= 1.6x one, given the cores).

    .venv/bin/python bench/router_scaling.py [--workers 1,2] [--reports 4000] [--rounds 2]

For each N (N <= the partitions of a report topic) and round, under a fresh topic prefix:
start N ``cluebus router`` processes in one consumer group on the empty bus, wait until the
group is stable with N members holding every report partition, route an untimed warm-up of
``router_throughput.WARMUP_REPORTS`` reports (why: at that constant), then load N_reports valid
reports (the v1 examples cycled) and time from the first referral to the last expected one
(progress read from end offsets, as in ``router_throughput.py``). Per worker: CPU seconds
from /proc over that span. The rounds alternate the N values (1, 2, 1, 2, ...) so that load
from other work falls on all of them alike; the median round of each N is reported, with
its speed-up over N = 1 and the CPU per report of all workers together.

On a machine with fewer cores than workers + broker + load generator the curve shows the
cores, not the router: ``cpu_cores_busy`` (of the whole machine, from /proc/stat) says
whether the machine was saturated. Writes ``bench/results/router_scaling.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import kafka_baseline as kb
import router_throughput as rt

REPO = kb.REPO
RESULTS = REPO / "bench" / "results" / "router_scaling.json"


def group_ready(bootstrap: str, group: str, workers: int, partitions: set[tuple[str, int]]) -> bool:
    """The group is stable with ``workers`` members that between them hold every report partition."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        description = admin.describe_groups([group]).get(group) or {}
    except Exception:  # noqa: BLE001 - the group may not exist yet
        return False
    finally:
        admin.close()
    members = description.get("members") or []
    if description.get("group_state") != "Stable" or len(members) != workers:
        return False
    held = {
        (assigned["topic"], p)
        for member in members
        if isinstance(member.get("member_assignment"), dict)
        for assigned in member["member_assignment"].get("assigned_partitions", [])
        for p in assigned["partitions"]
    }
    return partitions <= held


def run(bootstrap: str, workers: int, n: int, work: Path, timeout: float = 300.0) -> dict[str, Any]:
    from tests.integration.support import produce

    prefix, names, expected, values = rt.prepare(bootstrap, n)
    _, _, warm_expected, warm_values = rt.prepare(bootstrap, rt.WARMUP_REPORTS, prefix)
    total = sum(expected.values())
    env = rt.service_env(bootstrap, prefix, work / prefix / "state")
    logs = work / prefix / "logs"
    report_partitions = {(t, p) for t in names.reports() for p in range(kb.PARTITIONS)}
    procs = []
    offsets = None
    try:
        for i in range(workers):
            proc = rt.start(f"router-{i}", ["router", "--metrics-port", "0"], env, logs)
            proc.args = [proc.args[0], f"router-{i}"]  # cpu_seconds names the process by args[1]
            procs.append(proc)
        deadline = time.monotonic() + 120
        while not group_ready(bootstrap, names.app_id("router"), workers, report_partitions):
            if time.monotonic() > deadline:
                raise SystemExit(f"the router group did not settle with {workers} members; see {logs}")
            if any(p.poll() is not None for p in procs):
                raise SystemExit(f"a router exited; see {logs}")
            time.sleep(0.2)
        # Untimed warm-up on the same bus, for the reason given at rt.WARMUP_REPORTS.
        warm = rt.Progress(bootstrap, sorted(warm_expected))
        produce(bootstrap, warm_values)
        rt.wait_for(warm, sum(warm_expected.values()), procs, logs, 120.0)
        warm.close()
        offsets = rt.Progress(bootstrap, sorted(expected))
        produce(bootstrap, values)
        first, seen = None, 0
        cpu_first: dict[str, float] = {}
        busy_first = 0.0
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seen = offsets.total()
            if seen and first is None:
                first, cpu_first, busy_first = time.monotonic(), rt.cpu_seconds(procs), rt.machine_busy_seconds()
            if seen >= total:
                break
            time.sleep(0.05)
        done, cpu_done, busy_done = time.monotonic(), rt.cpu_seconds(procs), rt.machine_busy_seconds()
    finally:
        for proc in reversed(procs):
            rt.stop(proc)
        if offsets is not None:
            offsets.close()
    seconds = max(done - (first or done), 1e-9)
    cpu = {k: round(cpu_done[k] - cpu_first.get(k, 0.0), 3) for k in cpu_done}
    return {
        "workers": workers,
        "prefix": prefix,
        "reports": n,
        "referrals_expected": total,
        "referrals_seen": seen,
        "complete": seen >= total,
        "seconds": round(seconds, 3),
        "reports_per_s": round(n * min(1.0, seen / total) / seconds, 1),
        "referrals_per_s": round(seen / seconds, 1),
        "router_cpu_ms_per_report": round(1000 * sum(cpu.values()) / n, 3),
        "worker_cores_busy": {k: round(v / seconds, 2) for k, v in cpu.items()},
        "machine_cores_busy": round((busy_done - busy_first) / seconds, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", default="1,2", help="comma-separated N values (each <= partitions)")
    parser.add_argument("--reports", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per N; the median is reported")
    parser.add_argument("--bootstrap", default=kb.DEFAULT_BOOTSTRAP)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    counts = [int(x) for x in args.workers.split(",")]
    if any(not 1 <= c <= kb.PARTITIONS for c in counts):
        raise SystemExit(f"workers must be between 1 and the {kb.PARTITIONS} partitions of a report topic")
    if not kb.kafka_reachable(args.bootstrap):
        raise SystemExit(f"no broker at {args.bootstrap}")

    work = Path(tempfile.mkdtemp(prefix="cluebus-bench-scaling-"))
    runs: dict[int, list[dict[str, Any]]] = {c: [] for c in counts}
    for _ in range(args.rounds):
        for c in counts:
            result = run(args.bootstrap, c, args.reports, work)
            runs[c].append(result)
            print(
                f"N={c}: {result['reports_per_s']} reports/s, {result['router_cpu_ms_per_report']} ms CPU/report, "
                f"workers {result['worker_cores_busy']}, machine {result['machine_cores_busy']} cores busy",
                flush=True,
            )
    shutil.rmtree(work, ignore_errors=True)
    median = {c: sorted(rs, key=lambda r: r["reports_per_s"])[len(rs) // 2] for c, rs in runs.items()}
    base = median[counts[0]]["reports_per_s"] if counts[0] == 1 else None
    curve = [
        {
            "workers": c,
            "reports_per_s": median[c]["reports_per_s"],
            "speedup_over_one": round(median[c]["reports_per_s"] / base, 2) if base else None,
            "router_cpu_ms_per_report": median[c]["router_cpu_ms_per_report"],
            "machine_cores_busy": median[c]["machine_cores_busy"],
            "rounds_reports_per_s": [r["reports_per_s"] for r in runs[c]],
        }
        for c in counts
    ]
    report = {
        **kb.header("router_scaling"),
        "settings": {
            "bootstrap": args.bootstrap,
            "partitions": kb.PARTITIONS,
            "reports": args.reports,
            "rounds": args.rounds,
            "router": "cluebus router --metrics-port 0, log level warning, json logs, memory:// store, no tracker",
            "timed": "first referral to the last expected one, loaded after the group is stable",
        },
        "curve": curve,
        "runs": runs,
        "target_two_workers_speedup": 1.6,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{'workers':>8}{'reports/s':>11}{'speed-up':>10}{'CPU ms/report':>15}{'machine cores busy':>20}")
    for row in curve:
        print(
            f"{row['workers']:>8}{row['reports_per_s']:>11}{row['speedup_over_one'] or '-':>10}"
            f"{row['router_cpu_ms_per_report']:>15}{row['machine_cores_busy']:>20}"
        )
    print(f"{os.cpu_count()} CPUs; written to {args.out}")


if __name__ == "__main__":
    main()
