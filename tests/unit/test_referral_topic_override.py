"""A department's ``topic`` override, seen alike by the router, the inbox, the console, the ACLs and
``topics ensure``: each asks ``CompiledRules.referral_topic`` (issue 16 item 1)."""

from __future__ import annotations

from services.acl.model import derive_grants
from services.common.settings import KafkaSettings, TopicSettings
from services.common.topic_admin import topic_specs
from services.inbox.client import DepartmentInbox
from services.router.topics import RouterTopics
from services.rules import parse_rules
from tests.conftest import REPO

OVERRIDE = "p.referrals.police-v2"


class TopicNamesApp:
    """The part of a faust app RouterTopics uses: a topic object is its names here."""

    def topic(self, *names: str, **_options: object) -> tuple[str, ...]:
        return names


def console_inbox_topic(monkeypatch, state_dir, department: str) -> str:  # type: ignore[no-untyped-def]
    """The topic the console's inbox of ``department`` reads, configured by the environment (as served)."""
    from services.console.cli import build_console

    monkeypatch.setenv("CLUEBUS_STATE_DIR", str(state_dir))
    monkeypatch.setenv("CLUEBUS_CONSOLE_DEPARTMENTS", department)
    inbox = build_console().workers[department]._make_inbox()
    try:
        return inbox.topic
    finally:
        inbox.close()


def rules_text_with_override(topic: str = OVERRIDE) -> str:
    text = (REPO / "routing_rules.toml").read_text()
    assert "[departments.police]\n" in text
    return text.replace("[departments.police]\n", f'[departments.police]\ntopic = "{topic}"\n', 1)


def test_router_inbox_console_acls_and_topics_agree_on_the_override(tmp_path, monkeypatch):
    text = rules_text_with_override()
    rules = parse_rules(text)
    topics = TopicSettings(prefix="p")

    router = RouterTopics(TopicNamesApp(), topics.names)
    assert router.referral(rules, "police") == OVERRIDE
    assert router.referral(rules, "education") == "p.referrals.education"  # no override: the default

    inbox = DepartmentInbox(
        KafkaSettings(bootstrap="127.0.0.1:1"), topics, rules, "police", store=tmp_path / "i.sqlite3", user="a.b"
    )
    try:
        assert inbox.topic == OVERRIDE
    finally:
        inbox.close()

    (tmp_path / "rules.toml").write_text(text)
    monkeypatch.setenv("CLUEBUS_RULES_FILE", str(tmp_path / "rules.toml"))
    monkeypatch.setenv("CLUEBUS_TOPICS_PREFIX", "p")
    assert console_inbox_topic(monkeypatch, tmp_path / "state", "police") == OVERRIDE

    grants = derive_grants("p", rules)
    police_reads = {g.name for g in grants if g.user == "dept-police" and g.resource_type == "TOPIC"}
    router_writes = {g.name for g in grants if g.user == "router" and g.operation == "WRITE"}
    assert OVERRIDE in police_reads and "p.referrals.police" not in police_reads
    assert OVERRIDE in router_writes and "p.referrals.police" not in router_writes

    names = {s.name for s in topic_specs(topics, rules)}
    assert OVERRIDE in names and "p.referrals.police" not in names
