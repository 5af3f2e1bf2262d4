"""A department's ``topic`` override on the real broker: ``topics ensure`` creates it, the router writes
the police's referral there (not to the default topic), ``cluebus inbox police`` reads it there, and
the console's inbox and the ACL plan name the same topic (issue 16 item 1)."""

from __future__ import annotations

import subprocess

from schemas import Referral, referral_id_for
from services.acl.model import derive_grants
from services.rules import load_rules
from tests.unit.test_referral_topic_override import console_inbox_topic

from .support import CLUEBUS, collect, free_port, many_reports, produce, wait_until


def test_router_inbox_console_and_acls_agree_on_an_overridden_topic(
    kafka_bootstrap, topic_settings, rules_file, services, service_env, monkeypatch, tmp_path
):
    names = topic_settings.names
    override = f"{topic_settings.prefix}.referrals.police-v2"
    text = rules_file.read_text()
    rules_file.write_text(text.replace("[departments.police]\n", f'[departments.police]\ntopic = "{override}"\n', 1))
    rules = load_rules(rules_file)

    def cluebus(*args: str, env: dict[str, str] = service_env) -> str:
        result = subprocess.run([CLUEBUS, *args], env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    ensured = cluebus("topics", "ensure")
    assert f"created  {override}\n" in ensured and f"created  {names.referral('police')}\n" not in ensured

    services("router", ["router", "--metrics-port", str(free_port())], service_env)
    (report,) = many_reports(1, ("school-suspected_trafficking_child",))  # police lead
    produce(kafka_bootstrap, [(names.report("school"), report.report_id.encode(), report.model_dump_json().encode())])
    referral_id = referral_id_for(report.report_id, "police")

    # The inbox command finds the referral on the override, as the router wrote it.
    inbox_env = {**service_env, "CLUEBUS_INBOX_USER": "officer.0042"}
    wait_until(lambda: referral_id in cluebus("inbox", "police", "list", env=inbox_env), 90)
    written = collect(kafka_bootstrap, [override], done=lambda ms: len(ms) >= 1, timeout=30)
    assert [Referral.model_validate_json(m.value).referral_id for m in written] == [referral_id]

    # The console's police inbox reads the same topic; the ACLs let the router write it and the police read it.
    for key, value in service_env.items():
        if key.startswith("CLUEBUS_"):
            monkeypatch.setenv(key, value)
    assert console_inbox_topic(monkeypatch, tmp_path / "console-state", "police") == override
    grants = derive_grants(topic_settings.prefix, rules)
    assert {(g.user, g.operation) for g in grants if g.name == override} == {
        ("router", "WRITE"),
        ("dept-police", "READ"),
    }
    assert not [g for g in grants if g.name == names.referral("police")]
