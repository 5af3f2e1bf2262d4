"""Tracker recovery: how long a restarted tracker needs before its gauges are right again.

    .venv/bin/python bench/tracker_recovery.py [--referrals 100000]

Publishes routing decisions for enough reports to open about ``--referrals``
referrals (on a fresh topic prefix of the broker at CLUEBUS_KAFKA_BOOTSTRAP,
default 127.0.0.1:19092), runs the real tracker until its
``cluebus_referrals_outstanding`` gauges add up to that number, SIGKILLs it,
starts it again, and measures the time from the restart to the gauges adding up
again: faust replays the tracking table's changelog (memory store) and the
tracker rebuilds its indexes. Writes bench/results/tracker_recovery.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import kafka_baseline as kb  # noqa: E402
from kafka import KafkaProducer  # noqa: E402

from services.common.settings import KafkaSettings, TopicSettings  # noqa: E402
from services.common.topic_admin import ensure_topics, topic_specs  # noqa: E402
from services.router.routing import route_report  # noqa: E402
from services.rules import load_rules  # noqa: E402
from tests.integration.support import many_reports  # noqa: E402

RESULTS = REPO / "bench" / "results" / "tracker_recovery.json"


def outstanding(port: int) -> float | None:
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()  # noqa: S310
    except OSError:
        return None
    total = None
    for family in text_string_to_metric_families(text):
        if family.name == "cluebus_referrals_outstanding":
            total = sum(s.value for s in family.samples)
    return total


def start_tracker(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(REPO / ".venv/bin/cluebus"), "tracker", "--metrics-port", str(port)],
        env=env,
        stdout=open(log, "ab"),
        stderr=subprocess.STDOUT,  # noqa: SIM115
        start_new_session=True,
    )


def tracked_in(env: dict[str, str], log: Path, expected: int, timeout: float, stop: signal.Signals) -> float:
    """Start a tracker, time it until it tracks ``expected`` referrals, then stop it with ``stop``."""
    port = kb.free_port()
    proc = start_tracker(env, port, log)
    try:
        return wait_for(port, expected, proc, timeout)
    finally:
        os.killpg(proc.pid, stop)
        proc.wait(30)


def wait_for(port: int, expected: int, proc: subprocess.Popen[bytes], timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"tracker exited with {proc.returncode}")
        if outstanding(port) == expected:
            return time.monotonic() - start
        time.sleep(0.2)
    raise SystemExit(f"outstanding gauges never reached {expected} in {timeout}s (last {outstanding(port)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--referrals", type=int, default=100_000)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--bootstrap", default=os.environ.get("CLUEBUS_KAFKA_BOOTSTRAP", "127.0.0.1:19092"))
    args = parser.parse_args()

    bootstrap = args.bootstrap
    topics = TopicSettings(prefix=kb.fresh_prefix(bootstrap), partitions=kb.PARTITIONS)
    rules = load_rules(REPO / "routing_rules.toml")
    ensure_topics(KafkaSettings(bootstrap=bootstrap), topic_specs(topics, rules))

    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=20, batch_size=256 * 1024
    )
    opened = reports = 0
    now = datetime.now(UTC)
    while opened < args.referrals:
        for report in many_reports(1000):
            decision = route_report(rules, report, now).decision
            producer.send(
                topics.names.decisions, key=report.report_id.encode(), value=decision.model_dump_json().encode()
            )
            opened += len(decision.recipients)
            reports += 1
            if opened >= args.referrals:
                break
    producer.flush()
    producer.close()

    work = Path(tempfile.mkdtemp(prefix="cluebus-recovery-"))
    env = {
        **os.environ,
        "CLUEBUS_KAFKA_BOOTSTRAP": bootstrap,
        "CLUEBUS_TOPICS_PREFIX": topics.prefix,
        "CLUEBUS_TOPICS_PARTITIONS": "3",
        "CLUEBUS_STATE_DIR": str(work / "state"),
        "CLUEBUS_RULES_FILE": str(REPO / "routing_rules.toml"),
        "CLUEBUS_LOG_LEVEL": "warning",
        "CLUEBUS_LOG_FORMAT": "json",
        "CLUEBUS_SESSION_TIMEOUT_S": "6",
    }
    intake_s = tracked_in(env, work / "tracker-1.log", opened, args.timeout, stop=signal.SIGKILL)
    recovery_s = tracked_in(env, work / "tracker-2.log", opened, args.timeout, stop=signal.SIGTERM)

    result = {
        "benchmark": "tracker_recovery",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "settings": {"partitions": 3, "store": "memory://", "session_timeout_s": 6, "kafka": bootstrap},
        "reports": reports,
        "open_referrals": opened,
        "first_start_to_all_tracked_s": round(intake_s, 1),
        "restart_to_gauges_right_s": round(recovery_s, 1),
        "note": "restart time includes process start, the group join (the killed member's session "
        "must expire first) and the changelog replay",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
