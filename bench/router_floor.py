"""The framework's floor under the router: CPU per report of agents that do none of its work (issue 17).

    .venv/bin/python bench/router_floor.py [--reports 3000] [--rounds 3]

Issue 17 asks the router for <= 0.8 ms of CPU per report. This measures how much of that the
framework takes before the router's own code runs, with the router's shape: a faust app made by
``make_app`` (the bus's transport, guarded consumer, producer settings), one ``guarded_agent``
(``concurrency=1``) on the five report topics, and a changelogged table of bytes. Three kinds
of run take turns on a fresh, warmed bus (the same warm-up and pre-load as
``router_throughput.py``, the v1 examples cycled):

* ``receive``: the handler returns at once. What faust, aiokafka and the guard cost per report
  received, and nothing else.
* ``send``: the handler sends what the router sends for a report of that source (the referrals
  and the decision ``encode_report`` gives for the v1 examples of the source, taken in turn,
  same topics, same bytes, the report's id as key), adds a callback to each delivery future
  as the router does, and marks the report in the table. No parsing, routing or encoding.
* ``route``: the router's own work without its metrics, logs and duplicate bookkeeping:
  ``parse_report`` and ``encode_report`` on the record, then the sends and the mark as in
  ``send``. The CPU of the agent's thread in parsing, and in parsing and encoding, is kept
  (``time.thread_time``).
* ``router``: ``cluebus router`` itself (``router_throughput.run_router``).

Beside them, the same ``parse_report`` + ``encode_report`` in a tight loop in this process over
as many fresh reports: what a micro-benchmark of the router's code shows.

CPU of the worker process (all its threads, ``time.process_time``), from the first report it handles to
the last one's outputs flushed, divided by the reports it handled; the floor workers handle
the warm-up's reports too (their group is new), all of the same kinds. Writes
``bench/results/router_floor.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import kafka_baseline as kb
import router_throughput as rt

RESULTS = kb.REPO / "bench" / "results" / "router_floor.json"
MODES = ("receive", "send", "route")


# --- the worker (a process of its own, started by the driver below) -----------------------------
def outputs_per_source(names: Any) -> dict[str, list[list[tuple[str, bytes]]]]:
    """For each source, the (topic, value) records the router sends for each of its v1 examples."""
    from datetime import UTC, datetime

    from schemas import parse_report
    from schemas.examples import load_examples
    from services.router.routing import encode_report
    from services.rules import load_rules

    rules = load_rules(rt.RULES_FILE)
    now = datetime.now(UTC)
    out: dict[str, list[list[tuple[str, bytes]]]] = {}
    for data in load_examples("v1", "reports").values():
        report = parse_report(json.dumps(data))
        out.setdefault(report.source.value, []).append(router_records(rules, names, encode_report(rules, report, now)))
    return out


def router_records(rules: Any, names: Any, encoded: Any) -> list[tuple[str, bytes]]:
    """The (topic, value) records the router sends for one encoded report: its referrals, then its decision."""
    records = [
        (rules.referral_topic(p.department, names), value)
        for p, value in zip(encoded.plan.referrals, encoded.referrals, strict=True)
    ]
    return [*records, (names.decisions, encoded.decision)]


def worker(mode: str, expected: int, result_path: Path) -> None:
    from datetime import UTC, datetime

    from schemas import parse_report
    from services.common import settings as cfg
    from services.common.streams.app import make_app
    from services.common.streams.guard import guarded_agent
    from services.common.streams.worker import run_worker
    from services.router.routing import encode_report
    from services.router.topics import RouterTopics
    from services.rules import load_rules

    rules = load_rules(rt.RULES_FILE)
    kafka, topic_settings = cfg.load(cfg.KafkaSettings), cfg.load(cfg.TopicSettings)
    state_dir = cfg.load(cfg.ServiceSettings).state_dir  # the run's own, not the working directory
    app = make_app(f"floor-{mode}", kafka, topic_settings, data_dir=state_dir / f"floor-{mode}")
    topics = RouterTopics(app, topic_settings.names)
    seen = app.Table("floor-seen", default=None, key_type=bytes, value_type=bytes, use_partitioner=True)
    outputs = outputs_per_source(topic_settings.names)
    turn = dict.fromkeys(outputs, 0)
    state: dict[str, Any] = {
        "handled": 0,
        "records": 0,
        "bytes": 0,
        "first_cpu": None,
        "first_wall": None,
        "parse_thread_s": 0.0,
        "compute_thread_s": 0.0,
    }

    def delivered(_: Any) -> None:
        return None

    async def on_error(event: Any, exc: Exception) -> None:
        raise exc

    @guarded_agent(app, topics.reports, name="floor", on_error=on_error)
    async def handle(event: Any) -> None:
        if state["first_cpu"] is None:
            state["first_cpu"], state["first_wall"] = time.process_time(), time.monotonic()
        message = event.message
        if mode == "route":
            t0 = time.thread_time()  # this thread's CPU: the router's own code, in the process
            report = parse_report(message.value)
            state["parse_thread_s"] += time.thread_time() - t0
            encoded = encode_report(rules, report, datetime.now(UTC))
            state["compute_thread_s"] += time.thread_time() - t0
            records = router_records(rules, topic_settings.names, encoded)
            for topic, value in records:
                (await topics.send(topic, message.key, value)).add_done_callback(delivered)
                state["bytes"] += len(value)
            state["records"] += len(records)
            seen[message.key] = b"1"
        elif mode == "send":
            source = topics.report_topic_source[message.topic]
            choices = outputs[source]
            records = choices[turn[source] % len(choices)]
            turn[source] += 1
            for topic, value in records:
                (await topics.send(topic, message.key, value)).add_done_callback(delivered)
                state["bytes"] += len(value)
            state["records"] += len(records)
            seen[message.key] = b"1"
        state["handled"] += 1
        if state["handled"] == expected:
            await app.producer.flush()
            cpu, wall = time.process_time() - state["first_cpu"], time.monotonic() - state["first_wall"]
            result = {"mode": mode, "handled": expected, "cpu_s": cpu, "wall_s": wall, **state}
            result_path.write_text(json.dumps(result, default=str))

    run_worker(app, service=f"floor-{mode}", log_level="warning", log_format="json")


# --- the driver ------------------------------------------------------------------------------
def run_floor(bootstrap: str, n: int, mode: str, work: Path, timeout: float = 180.0) -> dict[str, Any]:
    prefix, _, _, _, _ = rt.preload(bootstrap, n, rt.warm_up(bootstrap, False, work))
    handled = n + rt.WARMUP_REPORTS  # a new group: the warm-up's reports are handled as well
    result_path = work / prefix / f"floor-{mode}.json"
    env = rt.service_env(bootstrap, prefix, work / prefix / "state")
    logs = work / prefix / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / f"floor-{mode}.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, __file__, "--worker", mode, "--expected", str(handled), "--result", str(result_path)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=kb.REPO,
        )
    try:
        deadline = time.monotonic() + timeout
        while not result_path.exists():
            if proc.poll() is not None:
                raise SystemExit(f"floor worker exited ({proc.returncode}); see {logs}/floor-{mode}.log")
            if time.monotonic() > deadline:
                raise SystemExit(f"floor worker ({mode}) did not finish in {timeout:.0f} s; see {logs}")
            time.sleep(0.05)
        time.sleep(0.05)  # the file is written in one call; let it land
        result = json.loads(result_path.read_text())
    finally:
        rt.stop(proc)
    return {
        "mode": mode,
        "prefix": prefix,
        "handled": result["handled"],
        "cpu_ms_per_report": round(1000 * result["cpu_s"] / result["handled"], 3),
        "reports_per_s": round(result["handled"] / max(result["wall_s"], 1e-9), 1),
        "records_per_report": round(result["records"] / result["handled"], 2),
        "bytes_per_report": round(result["bytes"] / result["handled"]),
        # route only: CPU of the agent's thread in parse_report, and in parse_report + encode_report
        "parse_us": round(1e6 * result.get("parse_thread_s", 0.0) / result["handled"], 1),
        "parse_and_encode_us": round(1e6 * result.get("compute_thread_s", 0.0) / result["handled"], 1),
    }


def tight_loop_us(n: int) -> dict[str, float]:
    """CPU per report of parse_report and of parse_report + encode_report in a loop, fresh reports."""
    from datetime import UTC, datetime

    from schemas import dump_event, parse_report
    from services.router.routing import encode_report
    from services.rules import load_rules
    from tests.integration.support import many_reports

    rules = load_rules(rt.RULES_FILE)
    for report in many_reports(200):  # warm: imports, compiled copies
        encode_report(rules, parse_report(dump_event(report)), datetime.now(UTC))
    raw = [dump_event(r) for r in many_reports(n)]
    started = time.thread_time()
    parsed = [parse_report(value) for value in raw]
    parsing = time.thread_time() - started
    for report in parsed:
        encode_report(rules, report, datetime.now(UTC))
    both = time.thread_time() - started
    return {"parse_us": round(1e6 * parsing / n, 1), "parse_and_encode_us": round(1e6 * both / n, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reports", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3, help="the three kinds of run take turns; medians")
    parser.add_argument("--bootstrap", default=kb.DEFAULT_BOOTSTRAP)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--expected", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.expected, args.result)
        return
    if not kb.kafka_reachable(args.bootstrap):
        raise SystemExit(f"no broker at {args.bootstrap}")

    work = Path(tempfile.mkdtemp(prefix="cluebus-bench-floor-"))
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in (*MODES, "router")}
    for _ in range(args.rounds):
        for mode in MODES:
            runs[mode].append(run_floor(args.bootstrap, args.reports, mode, work))
            print(runs[mode][-1], flush=True)
        router = rt.run_router(args.bootstrap, args.reports, False, work)
        runs["router"].append(
            {
                "mode": "router",
                "prefix": router["prefix"],
                "handled": router["reports"],
                "cpu_ms_per_report": router["router_cpu_ms_per_report"],
                "reports_per_s": router["reports_per_s"],
                "records_per_report": round(router["fan_out"] + 1, 2),
            }
        )
        print(runs["router"][-1], flush=True)
    loops = [tight_loop_us(args.reports) for _ in range(args.rounds)]
    medians = {mode: statistics.median(r["cpu_ms_per_report"] for r in rs) for mode, rs in runs.items()}
    in_process = {k: statistics.median(r[k] for r in runs["route"]) for k in ("parse_us", "parse_and_encode_us")}
    in_loop = {k: statistics.median(r[k] for r in loops) for k in ("parse_us", "parse_and_encode_us")}
    result = {
        **kb.header("router_floor"),
        "settings": {"reports": args.reports, "rounds": args.rounds, "warmup_reports": rt.WARMUP_REPORTS},
        "runs": runs,
        "cpu_ms_per_report_median": medians,
        "share_of_router": {m: round(medians[m] / medians["router"], 2) for m in MODES},
        "router_code_us_in_process": in_process,
        "router_code_us_tight_loop": in_loop,
        "tight_loop_runs": loops,
        "target_router_cpu_ms_per_report": 0.8,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        "CPU per report, medians: "
        + ", ".join(f"{m} {v:.3f} ms" for m, v in medians.items())
        + " (target for the router: <= 0.8 ms)"
    )
    print(
        f"parse_report + encode_report per report: {in_process['parse_and_encode_us']} us in the agent "
        f"(parse {in_process['parse_us']}), {in_loop['parse_and_encode_us']} us in a tight loop "
        f"(parse {in_loop['parse_us']}); written to {args.out}"
    )


if __name__ == "__main__":
    main()
