"""The console on the secure broker: each department's inbox as its own principal, the feeds as `console`."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

from fastapi.testclient import TestClient

from schemas import AccessEvent, Ack, parse_report
from schemas.examples import load_examples
from services.console.app import create_app
from services.console.cli import build_console
from services.router.routing import route_report
from services.rules import load_rules

from ...conftest import REPO
from ..support import collect_as, wait_until
from .helpers import produce

PASSWORD = "secure-console-password"  # noqa: S105 - a throw-away test account


def test_console_works_as_each_department_s_principal(secure_bus, tmp_path, monkeypatch):
    names = secure_bus.names
    for key, value in {
        **secure_bus.admin_env,
        "CLUEBUS_RULES_FILE": str(REPO / "routing_rules.toml"),
        "CLUEBUS_STATE_DIR": str(tmp_path),
        "CLUEBUS_CONSOLE_KAFKA_SECRETS_DIR": str(secure_bus.secrets_dir),
        "CLUEBUS_CONSOLE_DEPARTMENTS": "police,education",
        "CLUEBUS_CONSOLE_SYNC_INTERVAL_S": "0.5",
    }.items():
        monkeypatch.setenv(key, value)
    rules = load_rules(REPO / "routing_rules.toml")
    report = parse_report(json.dumps(load_examples("v1", "reports")["school-suspected_trafficking_child"]))
    (referral,) = [r for r in route_report(rules, report, datetime.now(UTC)).referrals if r.department == "police"]
    produce(secure_bus.settings("router"), names.referral("police"), referral.model_dump_json().encode(), b"k")

    console = build_console()
    console.users.add("officer.0042", "police", "staff", PASSWORD)
    # No admin password anywhere near the console: each part connects as its own principal.
    assert {w: console.settings.kafka_for(console_kafka(), f"dept-{w}").username for w in console.workers} == {
        "police": "dept-police",
        "education": "dept-education",
    }
    with TestClient(create_app(console), base_url="https://testserver") as client:
        page = client.get("/signin")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        client.post("/signin", data={"username": "officer.0042", "password": PASSWORD, "csrf": csrf})
        wait_until(lambda: referral.referral_id in client.get("/queue").text, 60)
        page = client.get(f"/referrals/{referral.referral_id}")
        assert page.status_code == 200
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        done = client.post(
            f"/referrals/{referral.referral_id}/accept",
            data={"csrf": csrf, "case_owner": "inspector.0007"},
            follow_redirects=False,
        )
        assert done.status_code == 303
        assert console.workers["police"].last_error is None
        assert console.workers["education"].last_error is None  # its own topic, its own group
        assert console.feed is not None and console.feed.caught_up.wait(30) and console.feed.error is None

    admin = secure_bus.settings("admin")
    # (other tests on this shared secure bus write raw bytes to the acks topic: only acks are read here)
    rid = referral.referral_id.encode()
    values = collect_as(admin, names.acks, done=lambda vs: sum(rid in v and b'"accepted"' in v for v in vs) == 1)
    acks = [Ack.model_validate_json(v) for v in values if v.startswith(b"{")]
    assert [(a.stage.value, a.by) for a in acks if a.referral_id == referral.referral_id][-1] == (
        "accepted",
        "officer.0042",
    )
    records = [AccessEvent.model_validate_json(v) for v in collect_as(admin, names.access_audit, done=bool)]
    assert {(r.by, r.channel.value, r.department) for r in records} == {("officer.0042", "console", "police")}


def console_kafka():  # type: ignore[no-untyped-def]
    from services.common import settings as cfg

    return cfg.load(cfg.KafkaSettings)
