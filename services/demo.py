"""`cluebus demo`: run the whole bus locally and walk through one day of reports.

Starts the five adapters, the router and the tracker as separate processes,
posts one report from each sector through its adapter (as a departmental
system would), shows who each report was routed to, lets the police work its
inbox (receive, accept with a case owner, complete), and shows the status fed
back to the reporting hospital. It also starts the web console with demo
accounts (one password for all, printed at the end) and the reconciler, and keeps
the bus and the console running until Ctrl-C, so the referrals can be worked in a
browser (``--exit`` stops after the walkthrough). Needs a running Kafka (`cluebus
kafka up`) and the topics (`cluebus topics ensure`); `make demo` does both.

The adapters serve HTTPS with mutual TLS: the local CA (``services/devkafka/local_ca.py``)
issues their certificate and one client certificate per demo system into
``.run/demo/tls`` (``cluebus adapter dev-tls``), and every post presents its system's.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import time
import uuid
from pathlib import Path

import click

from schemas.enums import Source
from services.adapters import DEFAULT_PORTS as ADAPTER_PORTS
from services.common import settings as cfg

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "deploy" / "adapters" / "examples"
DEMO_TOKENS = REPO / "deploy" / "adapters" / "demo-tokens.toml"
CONSOLE_PORT = 8443
DEMO_PASSWORD = "jinghai-demo-2026"  # noqa: S105 - printed for the demo's own throw-away accounts
DEMO_USERS = (  # staff id, department, role
    ("officer.0042", "police", "staff"),
    ("chief.0001", "police", "supervisor"),
    ("teacher.0100", "education", "staff"),
    ("head.0101", "education", "supervisor"),
    ("clerk.0200", "civil_affairs", "staff"),
    ("office.0001", "joint_meeting", "joint_meeting"),
    ("admin.0001", "police", "admin"),
)


def _say(text: str = "") -> None:
    click.echo(text)


class Processes:
    """The services of the demo, each its own process with a log file."""

    def __init__(self, log_dir: Path, env: dict[str, str]) -> None:
        self.log_dir = log_dir
        self.env = env
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *args: str, **extra_env: str) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - the child keeps it
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "services", *args],
            env={**self.env, **extra_env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=REPO,
        )

    def check(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise click.ClickException(f"{name} stopped (exit {proc.returncode}); see {self.log_dir / name}.log")

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def _wait(predicate, what: str, procs: Processes, timeout: float = 90.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        procs.check()
        try:
            value = predicate()
        except Exception:  # noqa: BLE001 - services are still starting
            value = None
        if value:
            return value
        time.sleep(0.5)
    raise click.ClickException(f"timed out waiting for {what}; logs are in {procs.log_dir}")


def _demo_users(state_dir: Path) -> None:
    """The demo's console accounts in the demo's own users file (made once)."""
    from services.console.users import UsersFile

    users = UsersFile(state_dir / "console-users.toml")
    existing = users.load()
    for username, department, role in DEMO_USERS:
        if username not in existing:
            users.add(username, department, role, DEMO_PASSWORD)


@click.command("demo")
@click.option("--exit", "exit_after", is_flag=True, help="Stop the services after the walkthrough.")
@click.option("--keep-running", is_flag=True, hidden=True, help="The default now: kept for old scripts.")
def demo_command(exit_after: bool, keep_running: bool) -> None:
    """Run the whole bus and the web console locally with a short walkthrough."""
    import httpx

    from services.common.logging import configure

    configure(level="warning", fmt="console")  # the walkthrough speaks; the services log to files
    kafka = cfg.load(cfg.KafkaSettings)
    topics = cfg.load(cfg.TopicSettings)
    state = REPO / ".run" / "demo"
    env = {
        **os.environ,
        "CLUEBUS_KAFKA_BOOTSTRAP": kafka.bootstrap,
        "CLUEBUS_STATE_DIR": str(state / "state"),
        "CLUEBUS_RULES_FILE": str(REPO / "routing_rules.toml"),
        "CLUEBUS_ADAPTER_TOKENS_FILE": str(DEMO_TOKENS),
        "CLUEBUS_LOG_FORMAT": "json",
        "PYTHONUNBUFFERED": "1",
    }
    from services.adapters.tls_dev import make_dev_tls

    tls = make_dev_tls(state / "tls", [f"demo-{source}-sys" for source in Source])
    env |= tls.env(mutual=True)
    procs = Processes(state / "logs", env)
    _say(f"cluebus demo: Kafka at {kafka.bootstrap}, topics under '{topics.prefix}', logs in {procs.log_dir}")
    try:
        _demo_users(state / "state")
        procs.start("router", "router", "--metrics-port", "9301")
        procs.start("tracker", "tracker", "--metrics-port", "9302")
        for source in Source:
            procs.start(f"adapter-{source}", "adapter", source)
        procs.start("reconciler", "reconciler", "--metrics-port", "9303")
        procs.start("console", "console", "--dev-tls", "--port", str(CONSOLE_PORT))
        clients = {source: _client(tls, source) for source in Source}
        client = httpx.Client(timeout=10)  # the tracker's plain metrics endpoint
        for source in Source:
            _wait(
                lambda s=source: clients[s].get(f"https://localhost:{ADAPTER_PORTS[s]}/readyz").status_code == 200,
                f"the {source} adapter",
                procs,
            )
        ca = state / "state" / "console-tls" / "ca.pem"
        _wait(lambda: ca.exists(), "the console's certificate", procs)
        secure = httpx.Client(timeout=10, verify=ssl.create_default_context(cafile=str(ca)))
        _wait(lambda: secure.get(f"https://127.0.0.1:{CONSOLE_PORT}/healthz").status_code == 200, "the console", procs)
        _say(
            "services up: 5 adapters (HTTPS, mutual TLS, 8101-8105), router (metrics 9301), "
            f"tracker (metrics 9302), reconciler (metrics 9303), console (https {CONSOLE_PORT})\n"
        )

        _say("1. Each sector's system posts a report to its adapter:")
        receipts = {}
        for source in Source:
            body = json.loads((EXAMPLES / f"{source}.json").read_text())
            body["source_ref"] = f"demo-{source}-{uuid.uuid4().hex[:8]}"
            answer = clients[source].post(
                f"https://localhost:{ADAPTER_PORTS[source]}/v1/reports",
                json=body,
                headers={"Authorization": f"Bearer demo-{source}-token"},
            )
            if answer.status_code != 202:
                raise click.ClickException(f"{source} adapter answered {answer.status_code}: {answer.text}")
            receipts[source] = (answer.json()["report_id"], body["category"])
            _say(f"   {source:<9} {body['category']:<30} 202 Accepted, report {receipts[source][0]}")

        _say("\n2. The router forwards each report to the departments that must act:")
        statuses = {}
        for source, (report_id, _category) in receipts.items():

            def routed(s=source, r=report_id):  # type: ignore[no-untyped-def]
                view = (
                    clients[s]
                    .get(
                        f"https://localhost:{ADAPTER_PORTS[s]}/v1/reports/{r}",
                        headers={"Authorization": f"Bearer demo-{s}-token"},
                    )
                    .json()
                )
                return view if view.get("status") else None

            statuses[source] = _wait(routed, f"the routing of the {source} report", procs)
            departments = ", ".join(
                f"{d['department']} ({d['role']})" for d in statuses[source]["status"]["departments"]
            )
            _say(f"   {source:<9} -> {departments}")

        _say("\n3. The police work their inbox (`cluebus inbox police ...`):")
        _police_inbox(kafka, topics, state, receipts["hospital"][0], procs)

        _say("\n4. The hospital sees where its report stands (GET /v1/reports/{id}):")
        hospital_id = receipts["hospital"][0]

        def police_done():  # type: ignore[no-untyped-def]
            view = (
                clients["hospital"]
                .get(
                    f"https://localhost:8101/v1/reports/{hospital_id}",
                    headers={"Authorization": "Bearer demo-hospital-token"},
                )
                .json()
            )
            police = [d for d in view["status"]["departments"] if d["department"] == "police"]
            return view if police and police[0]["stage"] == "completed" else None

        view = _wait(police_done, "the police's completion to reach the hospital", procs)
        for d in view["status"]["departments"]:
            extra = f", outcome {d['outcome_code']}" if d.get("outcome_code") else ""
            _say(f"   {d['department']:<20} {d['stage']}{extra}")

        _say("\n5. Administrators watch acknowledgement delays (http://127.0.0.1:9302/metrics):")
        metrics = client.get("http://127.0.0.1:9302/metrics").text
        for line in metrics.splitlines():
            if line.startswith(
                (
                    'cluebus_referrals_outstanding{department="police"',
                    'cluebus_ack_delay_seconds_count{department="police"',
                )
            ):
                _say(f"   {line}")
        _say(f"\n6. Work the referrals in a browser: https://127.0.0.1:{CONSOLE_PORT}/")
        _say(f"   (certificate from a local CA made for this demo: trust {ca}, or accept it once in the browser)")
        _say(f"   demo sign-ins, password {DEMO_PASSWORD} for all:")
        for username, department, role in DEMO_USERS:
            _say(f"   {username:<14} {department:<15} {role}")
        _say("   Every opening of a referral is recorded: .venv/bin/cluebus audit --user officer.0042")
        _say("\nDone. Try: .venv/bin/cluebus rules explain schemas/examples/v1/reports/school-missing_child.json")
        if not exit_after:
            _say("The bus and the console keep running; stop them with Ctrl-C.")
            while True:
                procs.check()
                time.sleep(2)
    except KeyboardInterrupt:
        _say("\nstopping the demo's services")
    finally:
        procs.stop()


def _client(tls, source: str):  # type: ignore[no-untyped-def]
    """An HTTPS client that trusts the local CA and presents the demo system's certificate."""
    import ssl

    import httpx

    ctx = ssl.create_default_context(cafile=tls.ca)
    ctx.load_cert_chain(*tls.client(f"demo-{source}-sys"))
    return httpx.Client(timeout=10, verify=ctx)


def _police_inbox(kafka, topics, state: Path, report_id: str, procs: Processes) -> None:  # type: ignore[no-untyped-def]
    from services.inbox.client import DepartmentInbox
    from services.inbox.store import inbox_store_path
    from services.rules import load_rules

    inbox = DepartmentInbox(
        kafka,
        topics,
        load_rules(REPO / "routing_rules.toml"),
        "police",
        # The console's store for the police: one inbox store (and consumer group) per department.
        store=inbox_store_path(state / "state", "police"),
        user="officer.0042",
    )
    try:

        def mine():  # type: ignore[no-untyped-def]
            inbox.sync(timeout_s=2)
            return [p for p in inbox.pending() if p.report_id == report_id]

        (item,) = _wait(mine, "the hospital report in the police inbox", procs)[:1]
        _say(f"   received automatically: referral {item.referral_id} ({item.category}, {item.priority})")
        owner = {"case_owner": "inspector.0007"} if item.case_owner_required else {}
        inbox.accept(item.referral_id, **owner)
        _say(f"   accepted{' with case owner inspector.0007' if owner else ''}")
        inbox.complete(item.referral_id, "case_opened", "Case opened; victim referred to the women's federation.")
        _say("   completed with outcome: case_opened")
    finally:
        inbox.close()


COMMANDS = [demo_command]
