"""The whole bus for the console's tests: school adapter, router, tracker and `cluebus console` as processes.

One stack per test module (starting five processes takes ~20 s on the 2-core
machine): its own topic prefix, the shipped rules with *normal* clocks of
seconds (so those referrals are overdue and escalated while the tests run)
and the clocks around the clock; critical and high clocks as shipped.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from schemas import referral_id_for
from services.common.settings import TopicSettings
from services.common.topic_admin import delete_prefixed_topics, ensure_topics, topic_specs
from services.rules import load_rules

from ...unit.adapters.support import auth, submission, write_tokens
from ..support import CLUEBUS, REPO, Service, free_port, wait_until

PASSWORD = "demo-password-for-tests"  # noqa: S105 - throw-away test accounts
USERS = {
    "officer.0042": ("police", "staff"),
    "inspector.0007": ("police", "staff"),
    "chief.0001": ("police", "supervisor"),
    "teacher.0100": ("education", "staff"),
    "head.0101": ("education", "supervisor"),
    "office.0001": ("joint_meeting", "joint_meeting"),
}
DEPARTMENTS = "police,education,joint_meeting"
REPORTS = {  # name -> the school example it is made from
    "trafficking": "school-suspected_trafficking_child",  # critical: police (case owner) and education lead
    "abuse": "school-sexual_abuse_minor",  # high: police and education lead
    "dropout": "school-school_dropout_risk",  # normal: education only, overdue in seconds
}


def short_normal_clocks(text: str) -> str:
    text = text.replace(
        '[defaults.clocks.normal]\nreceived = "4h"\ndecided = "1d"',
        '[defaults.clocks.normal]\nreceived = "3s"\ndecided = "6s"',
    )
    assert 'received = "3s"' in text, "the shipped rules' normal clocks moved: update this fixture"
    return text.replace('[defaults]\ncalendar = "office"', '[defaults]\ncalendar = "always"')


@dataclass
class Stack:
    url: str
    adapter: str
    ca: Path
    names: object
    bootstrap: str
    env: dict[str, str]
    reports: dict[str, str] = field(default_factory=dict)  # name -> report id
    console: Service | None = None
    tracker_metrics: int = 0
    console_metrics: int = 0

    def referral(self, name: str, department: str) -> str:
        return referral_id_for(self.reports[name], department)

    def http(self) -> httpx.Client:
        import ssl

        verify = ssl.create_default_context(cafile=str(self.ca))
        return httpx.Client(base_url=self.url, verify=verify, timeout=30, follow_redirects=False)

    def status(self, name: str) -> dict[str, str]:
        """The reporter's view: department -> stage, from GET /v1/reports/{id} on the school adapter."""
        body = httpx.get(f"{self.adapter}/v1/reports/{self.reports[name]}", headers=auth("school"), timeout=10).json()
        return {d["department"]: d["stage"] for d in (body.get("status") or {}).get("departments", [])}


@pytest.fixture(scope="module")
def stack(kafka_bootstrap, tmp_path_factory):
    from services.common.settings import KafkaSettings

    base = tmp_path_factory.mktemp("console-stack")
    topics = TopicSettings(prefix=f"t{uuid.uuid4().hex[:10]}", partitions=3)
    kafka = KafkaSettings(bootstrap=kafka_bootstrap)
    rules_file = base / "routing_rules.toml"
    rules_file.write_text(short_normal_clocks((REPO / "routing_rules.toml").read_text()))
    ensure_topics(kafka, topic_specs(topics, load_rules(rules_file).departments))
    console_port, adapter_port, tracker_port, console_metrics = free_port(), free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "CLUEBUS_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "CLUEBUS_TOPICS_PREFIX": topics.prefix,
        "CLUEBUS_TOPICS_PARTITIONS": "3",
        "CLUEBUS_RULES_FILE": str(rules_file),
        "CLUEBUS_STATE_DIR": str(base / "state"),
        "CLUEBUS_SESSION_TIMEOUT_S": "6",
        "CLUEBUS_LOG_FORMAT": "json",
        "CLUEBUS_LOG_LEVEL": "info",
        "CLUEBUS_TRACKER_TICK_INTERVAL_S": "0.5",
        "CLUEBUS_ADAPTER_TOKENS_FILE": str(write_tokens(base / "tokens.toml")),
        "CLUEBUS_ADAPTER_PLAIN_HTTP": "true",  # the stack's adapter is reached over plain http on 127.0.0.1
        "CLUEBUS_CONSOLE_METRICS_PORT": str(console_metrics),
        "CLUEBUS_CONSOLE_SYNC_INTERVAL_S": "1",
        "CLUEBUS_CONSOLE_LOCKOUT_FAILURES": "3",
        "PYTHONUNBUFFERED": "1",
    }
    for username, (department, role) in USERS.items():
        subprocess.run(
            [
                CLUEBUS,
                "console",
                "user",
                "add",
                username,
                "--department",
                department,
                "--role",
                role,
                "--password-stdin",
            ],
            input=PASSWORD + "\n",
            env=env,
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        )
    logs = base / "logs"
    started = [
        Service("router", ["router", "--metrics-port", "0"], env, logs).start(),
        Service("tracker", ["tracker", "--metrics-port", str(tracker_port)], env, logs).start(),
        Service("adapter-school", ["adapter", "school", "--port", str(adapter_port)], env, logs).start(),
        Service(
            "console",
            ["console", "--dev-tls", "--port", str(console_port), "--departments", DEPARTMENTS],
            env,
            logs,
        ).start(),
    ]
    stack = Stack(
        url=f"https://127.0.0.1:{console_port}",
        adapter=f"http://127.0.0.1:{adapter_port}",
        ca=base / "state" / "console-tls" / "ca.pem",
        names=topics.names,
        bootstrap=kafka_bootstrap,
        env=env,
        console=started[-1],
        tracker_metrics=tracker_port,
        console_metrics=console_metrics,
    )
    try:
        wait_until(lambda: httpx.get(f"{stack.adapter}/readyz", timeout=2).status_code == 200, 90)
        started[-1].wait_for("console listening", 60)
        wait_until(lambda: stack.http().get("/healthz").status_code == 200, 30)
        for name, example in REPORTS.items():
            body = submission("school", ref=f"console-{name}-{uuid.uuid4().hex[:6]}", index=_index(example))
            answer = httpx.post(f"{stack.adapter}/v1/reports", json=body, headers=auth("school"), timeout=10)
            assert answer.status_code == 202, answer.text
            stack.reports[name] = answer.json()["report_id"]
        wait_until(lambda: all(stack.status(n) for n in REPORTS), 90)
        # The whole chain is live before a test starts: the console's sync acknowledged receipt,
        # the tracker took it in, and the reporter's status says so (faust joins slowly under load).
        wait_until(
            lambda: (
                stack.status("trafficking").get("police") == "received"
                and stack.status("dropout").get("education") == "received"
            ),
            180,
        )
        yield stack
    finally:
        for service in started:
            service.stop(timeout=20)
        try:
            delete_prefixed_topics(kafka, topics.prefix, timeout_ms=10_000)
        except Exception:  # noqa: BLE001, S110 - best effort
            pass
        shutil.rmtree(base / "state" / "console-tls", ignore_errors=True)


def _index(example: str) -> int:
    """The position of a v1 example among the school submissions (``submission(..., index=)``)."""
    from schemas.examples import load_examples

    names = [n for n, d in load_examples("v1").items() if d["source"] == "school"]
    return names.index(example)


def sign_in(client: httpx.Client, username: str, password: str = PASSWORD) -> httpx.Response:
    import re

    page = client.get("/signin")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    return client.post("/signin", data={"username": username, "password": password, "csrf": csrf})


def pretty(data: object) -> str:
    return json.dumps(data, ensure_ascii=False, indent=2)
