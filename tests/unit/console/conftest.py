"""A console app over real inbox stores with routed example referrals; Kafka's side is a recording producer."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from schemas import parse_report
from schemas.examples import load_examples
from services.common.settings import KafkaSettings, TopicSettings
from services.console.app import Console, create_app
from services.console.metrics import ConsoleMetrics
from services.console.runtime import DepartmentWorker
from services.console.settings import ConsoleSettings
from services.console.users import UsersFile
from services.inbox.client import DepartmentInbox
from services.router.routing import route_report
from services.rules import load_rules
from tests.conftest import REPO

from ..inbox.test_inbox_actions import RecordingProducer

PASSWORD = "correct horse battery staple"  # noqa: S105 - test accounts
DEPARTMENTS = ("police", "education")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="session")
def rules():
    return load_rules(REPO / "routing_rules.toml")


@pytest.fixture
def referrals(rules):
    """The school examples routed now (one overdue: routed two days ago); referrals by department."""
    out: dict[str, list] = {d: [] for d in DEPARTMENTS}
    for name, data in load_examples("v1", "reports").items():
        if not name.startswith("school-"):
            continue
        report = parse_report(json.dumps(data))
        routed = datetime.now(UTC) - (timedelta(days=2) if name == "school-child_at_risk" else timedelta(0))
        for referral in route_report(rules, report, routed).referrals:
            if referral.department in out:
                out[referral.department].append(referral)
    return out


@pytest.fixture(scope="session")
def users_template(tmp_path_factory):
    """The test accounts, hashed once per run (scrypt costs ~0.1 s a hash by design)."""
    users = UsersFile(tmp_path_factory.mktemp("users") / "users.toml")
    users.add("officer.1", "police", "staff", PASSWORD)
    users.add("chief.1", "police", "supervisor", PASSWORD)
    users.add("teacher.1", "education", "staff", PASSWORD)
    users.add("office.1", "joint_meeting", "joint_meeting", PASSWORD)
    users.add("admin.1", "police", "admin", PASSWORD)
    return users.path.read_bytes()


@pytest.fixture
def console(tmp_path, rules, referrals, users_template):
    (tmp_path / "users.toml").write_bytes(users_template)
    users = UsersFile(tmp_path / "users.toml")
    producers: dict[str, RecordingProducer] = {}

    def make(department):
        def inbox():
            box = DepartmentInbox(
                KafkaSettings(bootstrap="127.0.0.1:1"),
                TopicSettings(prefix="u"),
                rules,
                department,
                store=tmp_path / f"inbox-{department}.sqlite3",
                user="cluebus-console",
            )
            with box.store.transaction() as db:
                for referral in referrals[department]:
                    box.store.add(db, referral)
            box._producer = producers[department] = RecordingProducer()
            box.sync = lambda timeout_s=0: None  # no broker in unit tests: the store is the inbox
            return box

        return inbox

    workers = {d: DepartmentWorker(d, make(d), sync_interval_s=60) for d in DEPARTMENTS}
    settings = ConsoleSettings(lockout_failures=3, lockout_s=600, address_failures=50, idle_timeout_s=60)
    console = Console(settings, rules, users, workers, feed=None, metrics=ConsoleMetrics(), clock=Clock())
    console.producers = producers  # type: ignore[attr-defined]
    return console


@pytest.fixture
def client(console):
    with TestClient(create_app(console), base_url="https://testserver") as c:
        yield c


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def sign_in(client, username, password=PASSWORD, expect=303):
    page = client.get("/signin")
    answer = client.post(
        "/signin",
        data={"username": username, "password": password, "csrf": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert answer.status_code == expect, answer.text
    return answer
