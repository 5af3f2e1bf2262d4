"""Intake benchmark: one adapter process against a trivial 202 endpoint on the same HTTP stack.

    .venv/bin/python bench/adapter_intake.py [--requests 5000] [--concurrency 32] \
        [--source hospital]

Starts (1) ``cluebus adapter <source>`` with a private state folder and a bench
token, relaying to Kafka when one answers (CLUEBUS_KAFKA_BOOTSTRAP, default
127.0.0.1:19092, under a fresh topic prefix), and (2) a trivial FastAPI app whose
``POST /v1/reports`` answers 202 with a fixed receipt, run by uvicorn with the
same settings. Both run side by side; a separate load process drives each in
turn over loopback, alternating for a few rounds, with a fixed number of
distinct, valid submissions at bounded concurrency (keep-alive HTTP/1.1
connections, a minimal client so that the client is not the bottleneck), after
a warm-up; each target's figures are those of its median round. It prints and writes
``bench/results/adapter_intake.json``: throughput and p50/p99 latency of both and
the ratio adapter/trivial (a later issue targets at least 0.5).

Unless ``--no-without-outbox``, a third target runs in the same rounds: the adapter
with its store() answered from memory (no fsync, nothing to relay). It is a
diagnostic, never the product: it shows how much of the gap to the trivial endpoint
is the request work itself (validation, stamping, encoding, logging) and how much is
durability.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import kafka_baseline as kb
from fastapi import Request  # module level: the trivial app's annotations resolve here
from fastapi.responses import Response

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "adapter_intake.json"
CLUEBUS = str(REPO / ".venv" / "bin" / "cluebus")
TOKEN = "bench-token-" + "x" * 20
UVICORN_OPTIONS: dict[str, Any] = {
    "host": "127.0.0.1",
    "log_config": None,
    "access_log": False,
    "server_header": False,
    "timeout_graceful_shutdown": 10,
    "backlog": 2048,
}


# -- the trivial endpoint -------------------------------------------------------------------
def serve_trivial(port: int) -> None:
    import uvicorn
    from fastapi import FastAPI

    app = FastAPI()
    receipt = json.dumps(
        {
            "report_id": "01890000-0000-7000-8000-000000000001",
            "received_at": "2026-01-01T00:00:00Z",
            "duplicate": False,
        }
    ).encode()

    @app.post("/v1/reports", status_code=202)
    async def post_report(request: Request) -> Response:  # reads the body, answers a fixed receipt
        await request.body()
        return Response(receipt, 202, media_type="application/json")

    @app.get("/healthz")
    async def healthz() -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    uvicorn.run(app, port=port, **UVICORN_OPTIONS)


# -- the adapter without its durable outbox (a diagnostic, never the product) ------------------
def serve_adapter_without_outbox(source: str, port: int) -> None:
    """``cluebus adapter <source>`` whose store() answers at once from memory: no fsync, no
    relay work. It measures what HTTP, authentication, validation, stamping, encoding and
    logging alone reach, so the gap to the trivial endpoint splits into the request work
    and the durability (outbox and relay) part."""
    from schemas import Source  # the repository is on sys.path through kafka_baseline
    from services.adapters.cli import _run_adapter
    from services.adapters.outbox import Intake, Receipt
    from services.adapters.runtime import AdapterRuntime

    async def store_in_memory(self: Any, intakes: list[Intake]) -> list[Receipt]:
        return [Receipt(i.report_id, i.received_at, False) for i in intakes]

    AdapterRuntime.store = store_in_memory  # type: ignore[method-assign]
    _run_adapter(Source(source), None, port)


# -- the load generator ------------------------------------------------------------------------
async def _one_connection(
    port: int,
    bodies: list[bytes],
    next_index: list[int],
    token: str,
    latencies: list[float],
    errors: list[int],
    deadline: float,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        f"POST /v1/reports HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
        "Content-Type: application/json\r\n"
    ).encode()
    try:
        while next_index[0] < len(bodies) and time.monotonic() < deadline:
            body = bodies[next_index[0]]
            next_index[0] += 1
            request = head + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
            started = time.perf_counter()
            writer.write(request)
            status_line = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if not status_line.startswith(b"HTTP/1.1 202"):
                errors.append(int(status_line.split()[1]) if len(status_line.split()) > 1 else 0)
    finally:
        writer.close()


async def _drive(port: int, bodies: list[bytes], concurrency: int, token: str, max_seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    errors: list[int] = []
    next_index = [0]
    started = time.perf_counter()
    deadline = time.monotonic() + max_seconds
    await asyncio.gather(
        *(_one_connection(port, bodies, next_index, token, latencies, errors, deadline) for _ in range(concurrency))
    )
    elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 2) if latencies else 0.0

    return {
        "requests": len(latencies),
        "errors": len(errors),
        "error_statuses": sorted(set(errors)),
        "seconds": round(elapsed, 3),
        "throughput_rps": round(len(latencies) / elapsed, 1),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": round(latencies[-1] * 1000, 2) if latencies else 0.0,
    }


def load(
    port: int, source: str, n: int, warmup: int, concurrency: int, token: str, max_seconds: float
) -> dict[str, Any]:
    sys.path.insert(0, str(REPO))
    from schemas.examples import load_examples

    envelope = ("schema_version", "report_id", "source", "source_system", "received_at")
    examples = [
        {k: v for k, v in e.items() if k not in envelope} for e in load_examples("v1").values() if e["source"] == source
    ]
    run = uuid.uuid4().hex[:8]
    bodies = []
    for i in range(warmup + n):
        data = dict(examples[i % len(examples)])
        data["source_ref"] = f"bench-{run}-{i}"
        bodies.append(json.dumps(data, ensure_ascii=False).encode())
    asyncio.run(_drive(port, bodies[:warmup], concurrency, token, max_seconds))
    return asyncio.run(_drive(port, bodies[warmup:], concurrency, token, max_seconds))


# -- orchestration -------------------------------------------------------------------------------
def run_load(port: int, args: argparse.Namespace, token: str) -> dict[str, Any]:
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--load-port",
            str(port),
            "--source",
            args.source,
            "--requests",
            str(args.requests),
            "--warmup",
            str(args.warmup),
            "--concurrency",
            str(args.concurrency),
            "--max-seconds",
            str(args.max_seconds),
            "--token",
            token,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default="hospital")
    parser.add_argument("--requests", type=int, default=4000, help="per target and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--max-seconds", type=float, default=60.0)
    parser.add_argument("--bootstrap", default=os.environ.get("CLUEBUS_KAFKA_BOOTSTRAP", "127.0.0.1:19092"))
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--log-level", default="info", help="the adapter's CLUEBUS_LOG_LEVEL")
    parser.add_argument(
        "--without-outbox",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also measure the adapter with its store() answered from memory (a diagnostic)",
    )
    parser.add_argument("--serve-trivial", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serve-without-outbox", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--load-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--token", default=TOKEN, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_trivial:
        serve_trivial(args.serve_trivial)
        return
    if args.serve_without_outbox:
        serve_adapter_without_outbox(args.source, args.serve_without_outbox)
        return
    if args.load_port:
        print(
            json.dumps(
                load(
                    args.load_port,
                    args.source,
                    args.requests,
                    args.warmup,
                    args.concurrency,
                    args.token,
                    args.max_seconds,
                )
            )
        )
        return

    work = Path(tempfile.mkdtemp(prefix="cluebus-bench-"))
    tokens = work / "tokens.toml"
    tokens.write_text(
        f'[systems.bench-sys]\nsource = "{args.source}"\n'
        f'token_sha256 = "{hashlib.sha256(TOKEN.encode()).hexdigest()}"\n'
    )
    prefix = kb.fresh_prefix(args.bootstrap)
    with_kafka = kb.kafka_reachable(args.bootstrap)
    env = {
        **os.environ,
        "CLUEBUS_KAFKA_BOOTSTRAP": args.bootstrap,
        "CLUEBUS_TOPICS_PREFIX": prefix,
        "CLUEBUS_ADAPTER_TOKENS_FILE": str(tokens),
        # The bench measures intake on loopback: plain HTTP (as the trivial endpoint), and
        # rate limits out of the way of one address posting thousands of reports a second.
        "CLUEBUS_ADAPTER_PLAIN_HTTP": "true",
        "CLUEBUS_ADAPTER_RATE_PER_ADDRESS": "1e6",
        "CLUEBUS_ADAPTER_BURST_PER_ADDRESS": "1000000",
        "CLUEBUS_ADAPTER_RATE_PER_SYSTEM": "1e6",
        "CLUEBUS_ADAPTER_BURST_PER_SYSTEM": "1000000",
        "CLUEBUS_LOG_FORMAT": "json",
        "CLUEBUS_LOG_LEVEL": args.log_level,
        "PYTHONUNBUFFERED": "1",
    }
    if with_kafka:
        sys.path.insert(0, str(REPO))
        from services.common.settings import KafkaSettings, TopicSettings
        from services.common.topic_admin import ensure_topics, topic_specs

        ensure_topics(KafkaSettings(bootstrap=args.bootstrap), topic_specs(TopicSettings(prefix=prefix)))

    # Both servers run side by side; the load alternates between them for ``rounds`` rounds
    # so that a burst of other work on the machine hits both alike. Each target's figures
    # are those of its median round (by throughput); every round is kept in the JSON.
    procs: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    targets = ("trivial", "adapter") + (("without_outbox",) if args.without_outbox else ())
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
    try:
        for name in targets:
            port = kb.free_port()
            cmd = {
                "trivial": [sys.executable, __file__, "--serve-trivial", str(port)],
                "adapter": [CLUEBUS, "adapter", args.source, "--port", str(port)],
                "without_outbox": [
                    sys.executable,
                    __file__,
                    "--source",
                    args.source,
                    "--serve-without-outbox",
                    str(port),
                ],
            }[name]
            # The diagnostic gets its own (unused) outbox, so it never relays the adapter's rows.
            own_env = {**env, "CLUEBUS_STATE_DIR": str(work / f"state-{name}")}
            with open(work / f"{name}.log", "wb") as log:
                procs[name] = (
                    subprocess.Popen(cmd, env=own_env, stdout=log, stderr=subprocess.STDOUT),
                    port,
                )
            kb.wait_http(port, procs[name][0])
        for _ in range(args.rounds):
            for name in targets:
                rounds[name].append(run_load(procs[name][1], args, TOKEN))
                if name == "adapter" and with_kafka:
                    rounds[name][-1]["drained_s"] = _wait_drained(procs[name][1])
    finally:
        for proc, _port in procs.values():
            proc.terminate()
            proc.wait(30)
    results: dict[str, Any] = {}
    for name, runs in rounds.items():
        median = sorted(runs, key=lambda r: r["throughput_rps"])[len(runs) // 2]
        results[name] = {**median, "rounds_rps": [r["throughput_rps"] for r in runs]}

    ratio = results["adapter"]["throughput_rps"] / max(results["trivial"]["throughput_rps"], 1e-9)
    report = {
        "benchmark": "adapter_intake",
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "settings": {
            "source": args.source,
            "requests_per_round": args.requests,
            "rounds": args.rounds,
            "warmup": args.warmup,
            "concurrency": args.concurrency,
            "http": "uvicorn (h11, asyncio), 1 worker, keep-alive",
            "kafka": args.bootstrap if with_kafka else None,
            "adapter_log_level": args.log_level,
        },
        "trivial_202": results["trivial"],
        "adapter": results["adapter"],
        "ratio_adapter_to_trivial": round(ratio, 3),
        "target_ratio": 0.5,
    }
    if "without_outbox" in results:
        report["adapter_without_outbox"] = results["without_outbox"]
        report["ratio_without_outbox_to_trivial"] = round(
            results["without_outbox"]["throughput_rps"] / results["trivial"]["throughput_rps"], 3
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{'':18}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}")
    rows = [("trivial 202", results["trivial"]), (f"adapter {args.source}", results["adapter"])]
    if "without_outbox" in results:
        rows.append(("  without outbox", results["without_outbox"]))
    for label, r in rows:
        row = f"{r['throughput_rps']:>10}{r['p50_ms']:>10}{r['p99_ms']:>10}{r['errors']:>8}"
        print(f"{label:18}{row}")
    print(f"ratio adapter/trivial: {ratio:.3f} (target >= 0.5)   written to {args.out}")
    if "without_outbox" in results:
        print(f"ratio adapter without outbox/trivial (diagnostic): {report['ratio_without_outbox_to_trivial']:.3f}")


def _wait_drained(port: int, timeout: float = 120.0) -> float | None:
    """Seconds until the relay has published the whole backlog (None if not within timeout)."""
    import urllib.error
    import urllib.request

    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:  # noqa: S310
                body = json.loads(r.read())
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read())
        if body.get("backlog") == 0:
            return round(time.monotonic() - started, 2)
        time.sleep(0.2)
    return None


if __name__ == "__main__":
    main()
