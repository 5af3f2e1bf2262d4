"""Router throughput, alone and with the tracker, against the raw aiokafka passthrough (issue 17).

    .venv/bin/python bench/router_throughput.py [--reports 3000] [--rounds 1] [--profile separate|off]

Targets (one router worker, shipped rules): the router alone >= 1,000 reports/s; with the
tracker running, referrals/s / passthrough events/s >= 0.2 (same invocation); router CPU
per report (from /proc, alone) <= 0.8 ms.

Under a fresh topic prefix per run it first routes an untimed warm-up (``WARMUP_REPORTS``
reports, through the same services, which are stopped again: a bus in service has warm
partitions; see the constant for what fresh ones cost here). It then pre-loads N valid
reports (cycling the v1 examples) onto the report topics, starts ``cluebus router`` (alone,
or with ``cluebus tracker`` beside it, as in production) and times the span from the first
referral on a referral topic until every expected referral is there (expected = the
referrals ``route_report`` gives for each report). Progress is read from the topics' end offsets, so the measuring
side costs next to nothing. CPU seconds of each service and of the whole machine come
from /proc over that span. With ``--rounds R`` the two kinds of run alternate (alone,
tracker, alone, tracker, ...) and the median of each is kept, so that load from other work
falls on both alike. Side by side, in the same invocation, it runs the baseline's aiokafka
passthrough over max(N, 20,000) 1 KB events.

With ``--profile separate`` it then repeats a run (alone, or with the tracker given
``--profile-tracker``) on another fresh prefix with ``py-spy record --nonblocking``
attached to the router (or, with ``--profile-process tracker``, to the tracker) and keeps
the top functions by cumulative and by own time ("where the time goes"; ``--profile-raw``
keeps the collapsed stacks). Writes ``bench/results/router_throughput.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kafka_baseline as kb

REPO = kb.REPO
RESULTS = REPO / "bench" / "results" / "router_throughput.json"
CLUEBUS = str(REPO / ".venv" / "bin" / "cluebus")
PYSPY = REPO / ".venv" / "bin" / "py-spy"
RULES_FILE = REPO / "routing_rules.toml"


def service_env(bootstrap: str, prefix: str, state_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "CLUEBUS_KAFKA_BOOTSTRAP": bootstrap,
        "CLUEBUS_TOPICS_PREFIX": prefix,
        "CLUEBUS_TOPICS_PARTITIONS": str(kb.PARTITIONS),
        "CLUEBUS_STATE_DIR": str(state_dir),
        "CLUEBUS_RULES_FILE": str(RULES_FILE),
        "CLUEBUS_LOG_LEVEL": "warning",
        "CLUEBUS_LOG_FORMAT": "json",
        "PYTHONUNBUFFERED": "1",
    }


def start(name: str, args: list[str], env: dict[str, str], log_dir: Path) -> subprocess.Popen[bytes]:
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / f"{name}.log", "ab") as log:
        return subprocess.Popen([CLUEBUS, *args], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def make_bus(bootstrap: str, prefix: str) -> tuple[Any, Any, Any]:
    """Topics of the bus under ``prefix``; returns (names, rules, kafka settings)."""
    from services.common.settings import KafkaSettings, TopicSettings
    from services.common.topic_admin import ensure_topics, topic_specs
    from services.rules import load_rules

    rules = load_rules(RULES_FILE)
    kafka = KafkaSettings(bootstrap=bootstrap)
    topics = TopicSettings(prefix=prefix, partitions=kb.PARTITIONS)
    ensure_topics(kafka, topic_specs(topics, rules))
    return topics.names, rules, kafka


class EndOffsets:
    """Sum of end offsets over some topics: how many records they hold, read cheaply."""

    def __init__(self, bootstrap: str, topics: list[str]) -> None:
        from kafka import KafkaConsumer, TopicPartition

        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
        self.partitions = [TopicPartition(t, p) for t in topics for p in range(kb.PARTITIONS)]

    def total(self) -> int:
        return sum(self.consumer.end_offsets(self.partitions).values())

    def close(self) -> None:
        self.consumer.close()


class Progress(EndOffsets):
    """Records added to some topics since this was made."""

    def __init__(self, bootstrap: str, topics: list[str]) -> None:
        super().__init__(bootstrap, topics)
        self.base = super().total()

    def total(self) -> int:
        return super().total() - self.base


PASSTHROUGH_MIN_EVENTS = 20_000


def prepare(
    bootstrap: str, n: int, prefix: str | None = None
) -> tuple[str, Any, dict[str, int], list[tuple[str, bytes, bytes]]]:
    """n reports for a bus (a fresh one unless ``prefix`` names one); returns (prefix, names,
    expected referrals per topic, records)."""
    from services.router.routing import route_report
    from tests.integration.support import many_reports

    prefix = prefix or kb.fresh_prefix(bootstrap)
    names, rules, _ = make_bus(bootstrap, prefix)
    reports = many_reports(n)
    now = datetime.now(UTC)
    expected: Counter[str] = Counter()
    for r in reports:
        for referral in route_report(rules, r, now).referrals:
            expected[rules.referral_topic(referral.department, names)] += 1
    values = [(names.report(r.source.value), r.report_id.encode(), r.model_dump_json().encode()) for r in reports]
    return prefix, names, dict(expected), values


def preload(bootstrap: str, n: int, prefix: str | None = None) -> tuple[str, Any, dict[str, int], int, int]:
    """A bus (fresh unless ``prefix``) holding n more reports; returns (prefix, names, expected
    referrals per topic, total, bytes)."""
    from tests.integration.support import produce

    prefix, names, expected, values = prepare(bootstrap, n, prefix)
    produce(bootstrap, values)
    return prefix, names, expected, sum(expected.values()), sum(len(v) for _, _, v in values)


# Every timed run starts on a bus that has carried traffic. On this machine the broker's first
# writes to a new partition are slow: appending the first index entries of its segment (offset
# and time index, mmap'd files of 10 MiB) took two major page faults per partition, each of
# 5-28 ms of kernel time on a request-handler thread, holding the partition and the whole
# produce request. 48 fresh topics x 3 partitions, bursts of 16,000 records of 3.2 KB: the first
# burst made 288 faults and took 1.4-8.0 s, the next ones 0.4-0.6 s with no fault. On fresh
# topics the router's produce requests took 0.3-3.3 s in the first seconds of a round, with the
# broker thread 1.0 core busy in the kernel and the router waiting on its full decision batch:
# the "slow rounds". A bus in service has warm partitions (a segment rolls per GiB), so the
# warm-up routes WARMUP_REPORTS reports through the same services first, untimed.
WARMUP_REPORTS = 600


def wait_for(offsets: EndOffsets, total: int, procs: list[subprocess.Popen[bytes]], logs: Path, timeout: float) -> None:
    """Poll ``offsets`` until they hold ``total`` records (a warm-up done); exits if a service
    exits or the time runs out."""
    deadline = time.monotonic() + timeout
    while offsets.total() < total:
        if any(p.poll() is not None for p in procs):
            raise SystemExit(f"a service exited during the warm-up; see {logs}")
        if time.monotonic() > deadline:
            raise SystemExit(f"the warm-up did not complete in {timeout:.0f} s; see {logs}")
        time.sleep(0.05)


def warm_up(bootstrap: str, tracker: bool, work: Path, reports: int = WARMUP_REPORTS, timeout: float = 120.0) -> str:
    """A fresh bus through which ``reports`` reports were routed (and tracked), services stopped again."""
    prefix, names, expected, total, _ = preload(bootstrap, reports)
    env = service_env(bootstrap, prefix, work / prefix / "state")
    logs = work / prefix / "logs"
    offsets = EndOffsets(bootstrap, [*sorted(expected), names.decisions])
    procs = []
    try:
        if tracker:
            procs.append(start("tracker", ["tracker", "--metrics-port", "0"], env, logs))
        procs.append(start("router", ["router", "--metrics-port", "0"], env, logs))
        wait_for(offsets, total + reports, procs, logs, timeout)
        time.sleep(2.0)  # past a commit interval (1 s): the timed run starts after the warm-up's offsets
    finally:
        for proc in reversed(procs):
            stop(proc)
        offsets.close()
    return prefix


def run_router(
    bootstrap: str,
    n: int,
    tracker: bool,
    work: Path,
    profile_to: Path | None = None,
    timeout: float = 180.0,
    spy_on: str = "router",
) -> dict[str, Any]:
    """One timed run; with ``profile_to``, py-spy records the ``spy_on`` process ("router" or "tracker")."""
    prefix, names, expected, total, value_bytes = preload(bootstrap, n, warm_up(bootstrap, tracker, work))
    env = service_env(bootstrap, prefix, work / prefix / "state")
    logs = work / prefix / "logs"
    offsets = Progress(bootstrap, sorted(expected))
    decisions = Progress(bootstrap, [names.decisions])
    deadletters = Progress(bootstrap, [names.deadletter])
    procs = []
    spy = None
    try:
        tracker_proc = start("tracker", ["tracker", "--metrics-port", "0"], env, logs) if tracker else None
        if tracker_proc is not None:
            procs.append(tracker_proc)
        launched = time.monotonic()
        router = start("router", ["router", "--metrics-port", "0"], env, logs)
        procs.append(router)
        spied = tracker_proc if spy_on == "tracker" and tracker_proc is not None else router
        first = None
        seen = 0
        cpu_at_first: dict[str, float] = {}
        machine_at_first = 0.0
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seen = offsets.total()
            now = time.monotonic()
            if seen and first is None:
                first = now
                cpu_at_first, machine_at_first = cpu_seconds(procs), machine_busy_seconds()
                if profile_to is not None:  # attached at the first referral: the profile skips start-up
                    spy = subprocess.Popen(
                        [
                            str(PYSPY),
                            "record",
                            "--pid",
                            str(spied.pid),
                            "--nonblocking",
                            "--rate",
                            "100",
                            "--format",
                            "raw",
                            "--output",
                            str(profile_to),
                        ],
                        stdout=subprocess.DEVNULL,
                        stderr=open(logs / "py-spy.log", "wb"),
                    )  # noqa: SIM115
            if seen >= total:
                break
            if router.poll() is not None:
                raise SystemExit(f"router exited ({router.returncode}); see {logs}/router.log")
            time.sleep(0.05)
        done = time.monotonic()
        cpu_at_done, machine_at_done = cpu_seconds(procs), machine_busy_seconds()
        dead = deadletters.total()
        decided = decisions.total()
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
            try:
                spy.wait(60)
            except subprocess.TimeoutExpired:
                spy.kill()
        for proc in reversed(procs):
            stop(proc)
        for progress in (offsets, decisions, deadletters):
            progress.close()
    seconds = done - (first or done)
    busy = {
        name: round((cpu_at_done.get(name, 0.0) - cpu_at_first.get(name, 0.0)) / max(seconds, 1e-9), 2)
        for name in cpu_at_done
    }
    # The first referral marks the end of start-up; its own report is counted, the spread of
    # the polling interval (50 ms) is small next to the run.
    return {
        "prefix": prefix,
        "reports": n,
        "report_bytes_mean": round(value_bytes / n),
        "referrals_expected": total,
        "referrals_seen": seen,
        "complete": seen >= total,
        "dead_letters": dead,
        "decisions": decided,  # more than ``reports``: a warm-up report was routed again
        "warmup_reports": WARMUP_REPORTS,
        "startup_s": round((first or done) - launched, 2),
        "seconds": round(seconds, 3),
        "reports_per_s": round(n * min(1.0, seen / total) / max(seconds, 1e-9), 1),
        "referrals_per_s": round(seen / max(seconds, 1e-9), 1),
        "fan_out": round(total / n, 2),
        "tracker": tracker,
        "cpu_cores_busy": busy,  # CPU seconds per wall second over the timed span, per process
        "router_cpu_ms_per_report": round(
            1000 * (cpu_at_done.get("router", 0.0) - cpu_at_first.get("router", 0.0)) / max(n, 1), 3
        ),
        "machine_cores_busy": round((machine_at_done - machine_at_first) / max(seconds, 1e-9), 2),
    }


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy so far (all cores, /proc/stat): is it saturated?"""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # less idle and iowait


def cpu_seconds(procs: list[subprocess.Popen[bytes]]) -> dict[str, float]:
    """User + system CPU seconds of each service process so far (from /proc)."""
    out = {}
    for proc in procs:
        try:
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[proc.args[1]] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def runqueue_wait_seconds(procs: list[subprocess.Popen[bytes]]) -> dict[str, float]:
    """Seconds each service's threads have spent ready to run but waiting for a core, so far
    (the second field of ``/proc/<pid>/task/<tid>/schedstat``, summed over its threads): on a
    full machine a service waits here, not in its own code."""
    out = {}
    for proc in procs:
        total = 0
        for stat in Path(f"/proc/{proc.pid}/task").glob("*/schedstat"):
            try:
                total += int(stat.read_text().split()[1])
            except (OSError, IndexError, ValueError):  # a thread that just ended
                continue
        out[proc.args[1]] = total / 1e9
    return out


# Frames every sample passes through (entry point, click, event loop, worker): left out of the
# cumulative list, where they would fill the top places and say nothing.
PLUMBING = (
    "click/",
    "asyncio/",
    "mode/worker.py",
    "selectors.py",
    "runpy.py",
    "<frozen",
    "bin/cluebus",
    "services/cli.py",
    "services/__main__.py",
    "services/router/cli.py",
)


def top_functions(raw: Path, limit: int = 15) -> dict[str, Any]:
    """Top functions by cumulative and by own samples from py-spy's collapsed stacks."""
    cumulative: Counter[str] = Counter()
    own: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        samples += count
        frames = []
        for frame in stack.split(";")[1:]:  # the first element names the thread
            name, _, where = frame.rpartition(" (")
            file = where.rsplit(":", 1)[0].rstrip(")")
            if "/site-packages/" in file:
                file = file.split("/site-packages/", 1)[1]
            elif str(REPO) in file:
                file = file.split(str(REPO) + "/", 1)[1]
            frames.append(f"{name or frame} ({file})")
        for f in set(frames):  # once per sample, however deep the recursion
            if not any(p in f for p in PLUMBING) and "run_worker" not in f:
                cumulative[f] += count
        if frames:
            own[frames[-1]] += count

    def rows(counter: Counter[str]) -> list[dict[str, Any]]:
        return [
            {"function": f, "samples": c, "percent": round(100 * c / max(samples, 1), 1)}
            for f, c in counter.most_common(limit)
        ]

    return {
        "samples": samples,
        "cumulative_excludes": [*PLUMBING, "run_worker"],
        "top_cumulative": rows(cumulative),
        "top_own": rows(own),
    }


TARGET_ALONE_REPORTS_PER_S = 1000.0
TARGET_REFERRAL_RATIO = 0.2
TARGET_CPU_MS_PER_REPORT = 0.8


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        **sorted(runs, key=lambda r: r["reports_per_s"])[len(runs) // 2],
        "rounds": [r["reports_per_s"] for r in runs],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reports", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=1, help="alternating runs alone / with the tracker; medians")
    parser.add_argument("--profile", choices=("separate", "off"), default="separate")
    parser.add_argument("--profile-reports", type=int, default=None, help="default: --reports")
    parser.add_argument("--profile-tracker", action="store_true", help="profile a run with the tracker beside it")
    parser.add_argument(
        "--profile-process",
        choices=("router", "tracker"),
        default="router",
        help="the process py-spy records (tracker: implies --profile-tracker)",
    )
    parser.add_argument("--profile-raw", type=Path, default=None, help="keep py-spy's collapsed stacks here")
    parser.add_argument("--bootstrap", default=kb.DEFAULT_BOOTSTRAP)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if not kb.kafka_reachable(args.bootstrap):
        raise SystemExit(f"no broker at {args.bootstrap}")

    work = Path(tempfile.mkdtemp(prefix="cluebus-bench-router-"))
    # At least as many events as kafka_baseline: with only a few thousand, one 0.5 s fetch wait
    # in a round cut the passthrough rate to a fifth, which flattered the ratio.
    base = kb.passthrough(args.bootstrap, max(args.reports, PASSTHROUGH_MIN_EVENTS))
    alone_runs, tracker_runs = [], []
    for _ in range(args.rounds):
        alone_runs.append(run_router(args.bootstrap, args.reports, False, work))
        tracker_runs.append(run_router(args.bootstrap, args.reports, True, work))
    alone, result = median_run(alone_runs), median_run(tracker_runs)

    profile: dict[str, Any]
    if args.profile == "off":
        profile = {"status": "off"}
    elif not PYSPY.exists():
        profile = {"status": "impossible: py-spy is not installed in .venv"}
    else:
        raw = work / "router-profile.txt"
        with_tracker = args.profile_tracker or args.profile_process == "tracker"
        profiled = run_router(
            args.bootstrap, args.profile_reports or args.reports, with_tracker, work, raw, spy_on=args.profile_process
        )
        if raw.exists() and raw.stat().st_size:
            profile = {
                "status": "ok",
                "tool": f"py-spy record --nonblocking --rate 100 ({args.profile_process} process)",
                "note": "attached at the first referral until all were out; idle samples excluded; "
                + ("tracker running" if with_tracker else "router alone"),
                "run": {k: profiled[k] for k in ("reports", "seconds", "reports_per_s", "complete", "tracker")},
                **top_functions(raw),
            }
        else:
            log = (work / profiled["prefix"] / "logs" / "py-spy.log").read_text(errors="replace")[-500:]
            profile = {"status": f"impossible: py-spy wrote no profile ({log.strip()})"}

    ratio = result["referrals_per_s"] / max(base["events_per_s"], 1e-9)
    met = {
        "router_alone_reports_per_s": alone["reports_per_s"] >= TARGET_ALONE_REPORTS_PER_S,
        "referrals_to_passthrough_with_tracker": ratio >= TARGET_REFERRAL_RATIO,
        "router_cpu_ms_per_report_alone": alone["router_cpu_ms_per_report"] <= TARGET_CPU_MS_PER_REPORT,
    }
    report = {
        **kb.header("router_throughput"),
        "settings": {
            "bootstrap": args.bootstrap,
            "partitions": kb.PARTITIONS,
            "reports": args.reports,
            "rounds": args.rounds,
            "rules": str(RULES_FILE.relative_to(REPO)),
            "router": "cluebus router --metrics-port 0, log level warning, json logs, memory:// store",
        },
        "router_alone": alone,
        "router": result,  # with the tracker running
        "passthrough": base,
        "ratio_referrals_to_passthrough": round(ratio, 3),
        "targets": {
            "router_alone_reports_per_s": TARGET_ALONE_REPORTS_PER_S,
            "referrals_to_passthrough_with_tracker": TARGET_REFERRAL_RATIO,
            "router_cpu_ms_per_report_alone": TARGET_CPU_MS_PER_REPORT,
        },
        "met": met,
        "profile": profile,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    if args.profile_raw is not None and (work / "router-profile.txt").exists():
        shutil.copyfile(work / "router-profile.txt", args.profile_raw)
    shutil.rmtree(work, ignore_errors=True)
    for label, r in (("router alone", alone), ("router, tracker on", result)):
        print(
            f"{label}: {r['reports']} reports, {r['referrals_seen']}/{r['referrals_expected']} referrals "
            f"in {r['seconds']} s (start-up {r['startup_s']} s): {r['reports_per_s']} reports/s "
            f"(rounds {r['rounds']}), {r['referrals_per_s']} referrals/s, fan-out {r['fan_out']}, "
            f"dead letters {r['dead_letters']}, router CPU {r['router_cpu_ms_per_report']} ms/report, "
            f"CPU cores busy {r['cpu_cores_busy']}, machine {r['machine_cores_busy']}"
        )
    print(f"aiokafka passthrough: {base['events_per_s']} events/s")
    print(
        f"router alone {alone['reports_per_s']} reports/s (target >= {TARGET_ALONE_REPORTS_PER_S:,.0f}); "
        f"referrals/s with the tracker / passthrough events/s: {ratio:.3f} (target >= {TARGET_REFERRAL_RATIO}); "
        f"router CPU {alone['router_cpu_ms_per_report']} ms/report (target <= {TARGET_CPU_MS_PER_REPORT})"
    )
    if profile.get("status") == "ok":
        print("where the time goes (cumulative % of router samples):")
        for row in profile["top_cumulative"]:
            print(f"  {row['percent']:>5}%  {row['function']}")
    else:
        print(f"profile: {profile['status']}")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
