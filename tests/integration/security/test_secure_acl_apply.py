"""`cluebus acl apply` on the secure broker: idempotent; removes what is no longer derived."""

from __future__ import annotations

import uuid

from kafka.admin import ACL, ACLOperation, ACLPermissionType, ResourcePattern, ResourceType
from kafka.errors import GroupAuthorizationFailedError, TopicAuthorizationFailedError

from services.acl.kafka_acls import existing_grants
from services.common import kafka as clients
from tests.small_rules import small_rules_text

from .helpers import consume_key, fetch_assigned, make_bus, produce, refused


def grants_on_broker(bus):
    admin = clients.admin(bus.settings("admin"))
    try:
        return existing_grants(admin)
    finally:
        admin.close()


def test_second_apply_changes_nothing(secure_bus):
    result = secure_bus.cli("acl", "apply", "--rules", str(secure_bus.rules_file))
    assert "applied: 0 added, 0 removed" in result.output
    plan = secure_bus.cli("acl", "plan", "--diff", "--rules", str(secure_bus.rules_file))
    assert "0 to add, 0 to remove" in plan.output


def test_removing_a_department_removes_its_acls(secure_broker, tmp_path):
    bus = make_bus(secure_broker, tmp_path, departments=("police", "education", "civil_affairs"))
    names, key = bus.names, uuid.uuid4().hex.encode()
    civil = bus.settings("dept-civil_affairs")
    produce(bus.settings("router"), names.referral("civil_affairs"), b"r", key)
    civil_group = names.app_id("inbox-civil_affairs")
    assert consume_key(civil, names.referral("civil_affairs"), civil_group, key) == b"r"

    bus.rules_file.write_text(small_rules_text(["police", "education"]))
    result = bus.cli("acl", "apply", "--rules", str(bus.rules_file))
    # its referral topic (read), group, acks and access records (write); the router's write to its topic
    assert "applied: 0 added, 5 removed" in result.output
    assert "-  User:dept-civil_affairs" in result.output
    assert "-  User:router" in result.output and "referrals.civil_affairs" in result.output
    left = [g for g in grants_on_broker(bus) if g.name.startswith(bus.prefix)]
    assert not [g for g in left if "civil_affairs" in g.principal + g.name]
    assert [g for g in left if g.principal == "User:dept-police"]  # the others stay
    # Its group is gone first: FindCoordinator is refused before the topic is looked at.
    refused(
        (GroupAuthorizationFailedError, TopicAuthorizationFailedError),
        fetch_assigned,
        civil,
        names.referral("civil_affairs"),
        civil_group,
    )
    refused(TopicAuthorizationFailedError, produce, bus.settings("router"), names.referral("civil_affairs"), b"r")
    again = bus.cli("acl", "apply", "--rules", str(bus.rules_file))
    assert "applied: 0 added, 0 removed" in again.output


def test_only_acls_under_the_prefix_are_managed(secure_broker, tmp_path):
    bus = make_bus(secure_broker, tmp_path, departments=("police",))
    elsewhere = f"other{uuid.uuid4().hex[:6]}.topic"

    def acl(name):
        return ACL(
            "User:auditor", "*", ACLOperation.READ, ACLPermissionType.ALLOW, ResourcePattern(ResourceType.TOPIC, name)
        )

    admin = clients.admin(bus.settings("admin"))
    try:
        created = admin.create_acls([acl(bus.names.decisions), acl(elsewhere)])
        assert not created["failed"]
        result = bus.cli("acl", "apply", "--rules", str(bus.rules_file))
        assert "applied: 0 added, 1 removed" in result.output
        auditor = {g.name for g in grants_on_broker(bus) if g.principal == "User:auditor"}
        assert auditor == {elsewhere}  # not ours: left alone
    finally:
        from services.acl.kafka_acls import to_exact_filter
        from services.acl.model import Grant

        mine = Grant("User:auditor", "READ", "TOPIC", "LITERAL", elsewhere)
        admin.delete_acls([to_exact_filter(mine)])
        admin.close()
