"""All benchmarks in one invocation on the same broker, then a summary table.

    .venv/bin/python bench/run.py            # or: make bench

Runs, one after another (each as its own process, so none disturbs another's
figures): kafka_baseline.py, router_throughput.py (the router alone and with the
tracker, alternating), e2e_latency.py (its light and 70% loads taken from the
router figure just measured, tracker on), router_scaling.py (1 and 2 workers),
router_floor.py (what faust and the router's sends cost per report before its own code),
and, with small sizes, the earlier adapter_intake.py, rules_scale.py and
tracker_scale.py.
The new benchmarks write bench/results/<name>.json; the small runs of the
earlier ones write bench/results/quick/<name>.json, so that their full-size
results stay as they are. Writes bench/results/summary.md: benchmark, figure,
target, met?
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import kafka_baseline as kb

REPO = kb.REPO
BENCH = REPO / "bench"
RESULTS = BENCH / "results"
QUICK = RESULTS / "quick"
WRAPPERS = ("route_reports", "_execute_actor", "<locals>.handle")


def parts(args: argparse.Namespace) -> list[tuple[str, list[str], Path]]:
    boot = ["--bootstrap", args.bootstrap]
    return [
        ("kafka_baseline", ["--events", str(args.events), *boot], RESULTS / "kafka_baseline.json"),
        (
            "router_throughput",
            ["--reports", str(args.reports), "--rounds", str(args.rounds), *boot],
            RESULTS / "router_throughput.json",
        ),
        ("e2e_latency", ["--reports", str(args.e2e_reports), *boot], RESULTS / "e2e_latency.json"),
        (
            "router_scaling",
            ["--workers", "1,2", "--reports", str(args.reports), "--rounds", str(args.rounds), *boot],
            RESULTS / "router_scaling.json",
        ),
        (
            "router_floor",
            ["--reports", str(args.reports), "--rounds", str(args.rounds), *boot],
            RESULTS / "router_floor.json",
        ),
        (
            "adapter_intake",
            ["--requests", "1000", "--rounds", "3", "--warmup", "100", *boot],
            QUICK / "adapter_intake.json",
        ),
        ("rules_scale", ["--rounds", "100"], QUICK / "rules_scale.json"),
        ("tracker_scale", ["--sizes", "10000,100000"], QUICK / "tracker_scale.json"),
        ("tracker_recovery", ["--referrals", str(args.recovery_referrals), *boot], RESULTS / "tracker_recovery.json"),
    ]


def run_part(name: str, extra: list[str], out: Path, timeout: float) -> dict[str, Any]:
    out.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    print(f"== {name} {' '.join(extra)}", flush=True)
    try:
        proc = subprocess.run(
            [sys.executable, str(BENCH / f"{name}.py"), *extra, "--out", str(out)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        ok, tail = proc.returncode == 0, (proc.stdout + proc.stderr).strip().splitlines()[-12:]
    except subprocess.TimeoutExpired:
        ok, tail = False, [f"timed out after {timeout:.0f} s"]
    seconds = round(time.monotonic() - started, 1)
    print("\n".join(tail), flush=True)
    print(f"-- {name}: {'ok' if ok else 'FAILED'} in {seconds} s", flush=True)
    return {"ok": ok, "seconds": seconds, "tail": tail}


def yes(met: bool | None) -> str:
    return "—" if met is None else ("yes" if met else "**no**")


def rows_for(name: str, data: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(benchmark, figure, target, met?) rows from one result file."""
    if name == "kafka_baseline":
        return [
            (
                name,
                f"kafka-python producer {data['raw_producer']['events_per_s']:,.0f} events/s (1 KB, acks=all)",
                "—",
                "—",
            ),
            (name, f"kafka-python consumer {data['raw_consumer']['events_per_s']:,.0f} events/s", "—", "—"),
            (name, f"aiokafka passthrough {data['aiokafka_passthrough']['events_per_s']:,.0f} events/s", "—", "—"),
        ]
    if name == "router_throughput":
        alone, r, p = data["router_alone"], data["router"], data["passthrough"]
        targets, met = data["targets"], data["met"]
        prof = data["profile"]
        # The agent's own wrappers hold nearly every sample; the next entries say where the time goes.
        inner = [x for x in prof.get("top_cumulative", []) if not any(w in x["function"] for w in WRAPPERS)]
        firsts: dict[str, dict[str, Any]] = {}  # one entry per package: a call chain would fill the list
        for x in inner:
            file = x["function"].rsplit(" (", 1)[-1]
            firsts.setdefault("/".join(file.split("/")[: 2 if file.startswith("services/") else 1]), x)
        top = ", ".join(
            f"{x['function'].split(' (')[0]} ({x['function'].rsplit(' (', 1)[-1]} {x['percent']}%"
            for x in list(firsts.values())[:4]
        )
        if prof.get("top_own"):
            own = prof["top_own"][0]
            top += f"; most own time: {own['function'].split(' (')[0]} {own['percent']}%"

        def busy(run: dict[str, Any]) -> str:
            cores = ", ".join(f"{k} {c}" for k, c in run["cpu_cores_busy"].items())
            return f"CPU cores busy: {cores}; machine {run['machine_cores_busy']} of {data['machine']['cpus']}"

        return [
            (
                name,
                f"router alone {alone['reports_per_s']:,.1f} reports/s (rounds {alone['rounds']}), "
                f"{alone['referrals_per_s']:,.1f} referrals/s (fan-out {alone['fan_out']}, "
                f"{alone['referrals_seen']}/{alone['referrals_expected']} referrals; {busy(alone)})",
                f">= {targets['router_alone_reports_per_s']:,.0f}",
                yes(met["router_alone_reports_per_s"]),
            ),
            (
                name,
                f"router CPU per report, alone: {alone['router_cpu_ms_per_report']} ms "
                f"(tracker on: {r['router_cpu_ms_per_report']} ms)",
                f"<= {targets['router_cpu_ms_per_report_alone']} ms",
                yes(met["router_cpu_ms_per_report_alone"]),
            ),
            (
                name,
                f"tracker on: {r['reports_per_s']:,.1f} reports/s, {r['referrals_per_s']:,.1f} referrals/s "
                f"(rounds {r['rounds']}; {busy(r)}); ratio referrals/s ÷ passthrough "
                f"{p['events_per_s']:,.0f} events/s = {data['ratio_referrals_to_passthrough']}",
                f">= {targets['referrals_to_passthrough_with_tracker']}",
                yes(met["referrals_to_passthrough_with_tracker"]),
            ),
            (
                name,
                f"profile ({prof['status']}, cumulative % of router samples): {top}"
                if top
                else f"profile: {prof['status']}",
                "—",
                "—",
            ),
        ]
    if name == "e2e_latency":

        def waits(r: dict[str, Any]) -> str:
            waited = r.get("service_runqueue_wait_s_per_s", {})
            return "waiting for a core, s/s: " + ", ".join(f"{k} {v}" for k, v in waited.items())

        out = []
        for load, r in data["loads"].items():
            target = f"p99 < {data['target_p99_ms'][load]} ms"
            met = yes(data["met_by_load"][load])
            out.append(
                (
                    name,
                    f"{load} {r['rate_achieved']}/s: p50 {r['p50_ms']} / p95 {r['p95_ms']} / "
                    f"p99 {r['p99_ms']} ms ({r['received']}/{r['accepted']} received; machine "
                    f"{r.get('machine_cores_busy')} of {data['machine']['cpus']} cores busy; {waits(r)})",
                    target,
                    met,
                )
            )
        return out
    if name == "router_scaling":
        return [
            (
                name,
                f"{row['workers']} worker{'s' if row['workers'] > 1 else ''}: {row['reports_per_s']:,.1f} reports/s"
                + (f", x{row['speedup_over_one']} of one" if row["workers"] > 1 and row["speedup_over_one"] else "")
                + f" (CPU {row['router_cpu_ms_per_report']} ms/report; machine {row['machine_cores_busy']} of "
                f"{data['machine']['cpus']} cores busy; rounds {row['rounds_reports_per_s']})",
                f"x{data['target_two_workers_speedup']} with enough cores" if row["workers"] == 2 else "—",
                "—",
            )
            for row in data["curve"]
        ]
    if name == "router_floor":
        cpu, code, loop = (
            data["cpu_ms_per_report_median"],
            data["router_code_us_in_process"],
            data["router_code_us_tight_loop"],
        )
        return [
            (
                name,
                f"CPU per report: agent that only receives {cpu['receive']} ms; + the router's sends "
                f"{cpu['send']} ms; + parse and encode {cpu['route']} ms; the router {cpu['router']} ms",
                f"router <= {data['target_router_cpu_ms_per_report']} ms",
                yes(cpu["router"] <= data["target_router_cpu_ms_per_report"]),
            ),
            (
                name,
                f"parse_report + encode_report: {code['parse_and_encode_us']} us per report in the agent, "
                f"{loop['parse_and_encode_us']} us in a tight loop (parse {code['parse_us']} / {loop['parse_us']} us)",
                "—",
                "—",
            ),
        ]
    if name == "adapter_intake":
        rows = [
            (
                name + " (small)",
                f"adapter {data['adapter']['throughput_rps']:,.0f} req/s vs trivial "
                f"{data['trivial_202']['throughput_rps']:,.0f} req/s: ratio {data['ratio_adapter_to_trivial']}",
                f">= {data['target_ratio']}",
                yes(data["ratio_adapter_to_trivial"] >= data["target_ratio"]),
            )
        ]
        if "adapter_without_outbox" in data:
            rows.append(
                (
                    name + " (small)",
                    "diagnostic, the adapter with store() answered from memory: "
                    f"{data['adapter_without_outbox']['throughput_rps']:,.0f} req/s, ratio "
                    f"{data['ratio_without_outbox_to_trivial']}",
                    "—",
                    "—",
                )
            )
        return rows
    if name == "rules_scale":
        last = data["rows"][-1]
        return [
            (
                name + " (small)",
                f"{last['synthetic']} synthetic rules: evaluate x{last['evaluate_vs_10']}, "
                f"plan x{last['plan_vs_10']} of 10 rules",
                "within 2x",
                yes(data["met"]),
            )
        ]
    if name == "tracker_scale":
        worst = max(r["bytes_per_referral"] for r in data["rows"])
        sizes = ", ".join(f"{r['open_referrals']:,}" for r in data["rows"])
        return [
            (name + " (small)", f"at most {worst} B per open referral ({sizes} open)", "< 1024 B", yes(data["met"]))
        ]
    if name == "tracker_recovery":
        return [
            (
                name,
                f"restart after SIGKILL with {data['open_referrals']:,} open referrals: gauges right after "
                f"{data['restart_to_gauges_right_s']} s (first start tracked them in "
                f"{data['first_start_to_all_tracked_s']} s)",
                "—",
                "—",
            )
        ]
    return []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20000, help="kafka_baseline events")
    parser.add_argument("--reports", type=int, default=3000, help="router_throughput and router_scaling reports")
    parser.add_argument("--rounds", type=int, default=3, help="alternating router runs; medians are reported")
    parser.add_argument("--e2e-reports", type=int, default=300, help="e2e_latency reports per load")
    parser.add_argument("--recovery-referrals", type=int, default=100_000, help="tracker_recovery open referrals")
    parser.add_argument("--bootstrap", default=kb.DEFAULT_BOOTSTRAP)
    parser.add_argument("--timeout", type=float, default=600.0, help="per part")
    args = parser.parse_args()
    if not kb.kafka_reachable(args.bootstrap):
        raise SystemExit(
            f"no broker at {args.bootstrap}; start one with "
            "`.venv/bin/cluebus kafka up --port 19092 --run-dir .run/test`"
        )

    started = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime())
    table: list[tuple[str, str, str, str]] = []
    durations = []
    for name, extra, out in parts(args):
        status = run_part(name, extra, out, args.timeout)
        durations.append(f"{name} {status['seconds']} s{'' if status['ok'] else ' (failed)'}")
        if status["ok"] and out.exists():
            table.extend(rows_for(name, json.loads(out.read_text())))
        else:
            table.append((name, "failed: " + (status["tail"][-1] if status["tail"] else "no output"), "—", "**no**"))

    m = kb.machine()
    v = kb.versions()
    lines = [
        "# Benchmark summary",
        "",
        f"Run {started} by `.venv/bin/python bench/run.py` on {m['cpus']} CPUs ({m['cpu_model']}), "
        f"{m['ram_gib']} GiB RAM, Python {m['python']}; kafka-python {v['kafka-python']}, aiokafka {v['aiokafka']}, "
        f"faust-streaming {v['faust-streaming']}; broker {args.bootstrap}, 3 partitions, fresh topic prefix per part.",
        "",
        "| benchmark | figure | target | met? |",
        "|---|---|---|---|",
        *(f"| {b} | {f} | {t} | {ok} |" for b, f, t, ok in table),
        "",
        "Durations: " + "; ".join(durations) + ".",
        "",
    ]
    (RESULTS / "summary.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
