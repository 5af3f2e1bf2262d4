"""ACL derivation, plan output and diff logic, without a broker."""

import random

import pytest

from schemas.enums import Source
from services.acl.model import Grant, all_principals, derive_grants, diff, is_managed, render_table
from tests.small_rules import small_rules

SOURCES = [s.value for s in Source]

RULES = small_rules(["police", "education"])


def acls(grants, principal):
    """(operation, resource type, pattern, name) of one principal's grants."""
    return {(g.operation, g.resource_type, g.pattern, g.name) for g in grants if g.principal == f"User:{principal}"}


@pytest.fixture
def grants():
    return derive_grants("p", RULES)


def test_departments_come_from_the_rules_tables(grants):
    # Bad department tables are refused by the rules loader: tests/unit/rules/test_departments.py.
    assert sorted({g.user for g in grants if g.user.startswith("dept-")}) == ["dept-education", "dept-police"]


def test_department_reads_only_its_referrals_and_writes_acks_and_access_records(grants):
    assert acls(grants, "dept-police") == {
        ("READ", "TOPIC", "LITERAL", "p.referrals.police"),
        ("READ", "GROUP", "LITERAL", "p-inbox-police"),
        ("WRITE", "TOPIC", "LITERAL", "p.acks"),
        ("WRITE", "TOPIC", "LITERAL", "p.audit.access"),
    }


def test_console_reads_escalations_and_status_only(grants):
    assert acls(grants, "console") == {
        ("READ", "TOPIC", "LITERAL", "p.escalations"),
        ("READ", "TOPIC", "LITERAL", "p.status"),
    }
    assert acls(grants, "dept-education") == {
        ("READ", "TOPIC", "LITERAL", "p.referrals.education"),
        ("READ", "GROUP", "LITERAL", "p-inbox-education"),
        ("WRITE", "TOPIC", "LITERAL", "p.acks"),
        ("WRITE", "TOPIC", "LITERAL", "p.audit.access"),
    }


@pytest.mark.parametrize("source", SOURCES)
def test_adapter_writes_only_its_own_report_topic(grants, source):
    # WRITE alone: Kafka 4.1 allows an idempotent producer's InitProducerId with
    # WRITE on any topic, so no IdempotentWrite on the cluster.
    assert acls(grants, f"adapter-{source}") == {
        ("WRITE", "TOPIC", "LITERAL", f"p.reports.{source}"),
        ("READ", "TOPIC", "LITERAL", "p.status"),
        ("READ", "GROUP", "LITERAL", f"p-adapter-{source}-status"),
    }


def test_router_grants(grants):
    assert acls(grants, "router") == {
        *{("READ", "TOPIC", "LITERAL", f"p.reports.{s}") for s in SOURCES},
        ("READ", "GROUP", "LITERAL", "p-router"),
        ("WRITE", "TOPIC", "LITERAL", "p.referrals.police"),
        ("WRITE", "TOPIC", "LITERAL", "p.referrals.education"),
        ("WRITE", "TOPIC", "LITERAL", "p.decisions"),
        ("WRITE", "TOPIC", "LITERAL", "p.deadletter"),
        ("CREATE", "TOPIC", "PREFIXED", "p-router-"),
        ("READ", "TOPIC", "PREFIXED", "p-router-"),
        ("WRITE", "TOPIC", "PREFIXED", "p-router-"),
    }


def test_tracker_grants(grants):
    assert acls(grants, "tracker") == {
        ("READ", "TOPIC", "LITERAL", "p.decisions"),
        ("READ", "TOPIC", "LITERAL", "p.acks"),
        ("READ", "TOPIC", "LITERAL", "p.tracker.ticks"),
        ("WRITE", "TOPIC", "LITERAL", "p.tracker.ticks"),
        ("WRITE", "TOPIC", "LITERAL", "p.escalations"),
        ("WRITE", "TOPIC", "LITERAL", "p.status"),
        ("WRITE", "TOPIC", "LITERAL", "p.deadletter"),
        ("READ", "GROUP", "LITERAL", "p-tracker"),
        ("CREATE", "TOPIC", "PREFIXED", "p-tracker-"),
        ("READ", "TOPIC", "PREFIXED", "p-tracker-"),
        ("WRITE", "TOPIC", "PREFIXED", "p-tracker-"),
    }


def test_reconciler_reads_what_it_compares_and_writes_only_to_redrive(grants):
    assert acls(grants, "reconciler") == {
        *{("READ", "TOPIC", "LITERAL", f"p.reports.{s}") for s in SOURCES},
        *{("WRITE", "TOPIC", "LITERAL", f"p.reports.{s}") for s in SOURCES},
        ("READ", "TOPIC", "LITERAL", "p.decisions"),
        ("WRITE", "TOPIC", "LITERAL", "p.decisions"),
        ("READ", "TOPIC", "LITERAL", "p.status"),
        ("READ", "TOPIC", "LITERAL", "p.deadletter"),
    }


def test_nothing_else_is_granted(grants):
    principals = {g.principal for g in grants}
    assert principals == {f"User:{p}" for p in all_principals(["police", "education"])}
    assert "User:admin" not in principals  # super user, needs no ACLs
    assert all(g.permission == "ALLOW" and g.host == "*" for g in grants)
    assert not [g for g in grants if g.resource_type == "CLUSTER"]
    # adapters, departments, router (reports, group, referrals, 2 bus topics, 3 faust), tracker, reconciler,
    # console
    assert len(grants) == len(set(grants)) == 5 * 3 + 2 * 4 + (5 + 1 + 2 + 2 + 3) + 11 + (5 + 5 + 4) + 2


def test_no_department_can_read_anything_but_its_referrals(grants):
    reads = {
        g.name for g in grants if g.user.startswith("dept-") and g.operation == "READ" and g.resource_type == "TOPIC"
    }
    assert reads == {"p.referrals.police", "p.referrals.education"}


def test_plan_is_sorted_and_stable(grants):
    shuffled = list(grants)
    random.Random(4).shuffle(shuffled)  # noqa: S311 - test data
    assert render_table(shuffled) == render_table(grants)
    assert derive_grants("p", small_rules(["police", "education"])) == derive_grants(
        "p", small_rules(["education", "police"])
    )


def test_plan_table_text():
    table = render_table(derive_grants("p", small_rules(["police"]), sources=["venue"]))
    lines = table.splitlines()
    assert lines[0].split() == ["PRINCIPAL", "OPERATION", "RESOURCE", "PATTERN", "NAME"]
    assert lines[1:4] == [
        "User:adapter-venue  WRITE      TOPIC     LITERAL   p.reports.venue",
        "User:adapter-venue  READ       TOPIC     LITERAL   p.status",
        "User:adapter-venue  READ       GROUP     LITERAL   p-adapter-venue-status",
    ]
    assert lines[4:10] == [
        "User:console        READ       TOPIC     LITERAL   p.escalations",
        "User:console        READ       TOPIC     LITERAL   p.status",
        "User:dept-police    WRITE      TOPIC     LITERAL   p.acks",
        "User:dept-police    WRITE      TOPIC     LITERAL   p.audit.access",
        "User:dept-police    READ       TOPIC     LITERAL   p.referrals.police",
        "User:dept-police    READ       GROUP     LITERAL   p-inbox-police",
    ]
    # header, adapter, console, department, reconciler, router, tracker
    assert len(lines) == 1 + 3 + 2 + 4 + (1 + 1 + 4) + (1 + 1 + 1 + 2 + 3) + 11


def test_diff_adds_missing_and_removes_stale(grants):
    stale = Grant("User:dept-court", "READ", "TOPIC", "LITERAL", "p.referrals.court")
    existing = [*grants[2:], stale]
    changes = diff(grants, existing, "p")
    assert changes.to_add == grants[:2]
    assert changes.to_remove == [stale]
    assert changes.unchanged == grants[2:]
    assert diff(grants, grants, "p").empty


def test_diff_ignores_reasons(grants):
    bare = [Grant(g.principal, g.operation, g.resource_type, g.pattern, g.name) for g in grants]
    assert diff(grants, bare, "p").empty


def test_managed_scope():
    foreign_on_ours = Grant("User:auditor", "READ", "TOPIC", "LITERAL", "p.decisions")
    ours_elsewhere = Grant("User:router", "READ", "TOPIC", "LITERAL", "q.reports.school")
    other_prefix = Grant("User:x", "READ", "GROUP", "LITERAL", "pp-router")
    cluster_ours = Grant("User:adapter-school", "IDEMPOTENT_WRITE", "CLUSTER", "LITERAL", "kafka-cluster")
    cluster_foreign = Grant("User:ops", "DESCRIBE", "CLUSTER", "LITERAL", "kafka-cluster")
    assert is_managed(foreign_on_ours, "p")  # our data: only what the code grants
    assert not is_managed(ours_elsewhere, "p")  # another deployment's prefix
    assert not is_managed(other_prefix, "p")
    assert is_managed(cluster_ours, "p")
    assert not is_managed(cluster_foreign, "p")
    changes = diff([], [foreign_on_ours, ours_elsewhere, other_prefix, cluster_ours, cluster_foreign], "p")
    assert changes.to_remove == [cluster_ours, foreign_on_ours]


def test_removing_a_department_removes_exactly_its_acls():
    before = derive_grants("p", small_rules(["police", "education"]))
    after = derive_grants("p", small_rules(["police"]))
    changes = diff(after, before, "p")
    assert changes.to_add == []
    assert {(g.user, g.operation, g.resource_type, g.name) for g in changes.to_remove} == {
        ("dept-education", "READ", "TOPIC", "p.referrals.education"),
        ("dept-education", "READ", "GROUP", "p-inbox-education"),
        ("dept-education", "WRITE", "TOPIC", "p.acks"),
        ("dept-education", "WRITE", "TOPIC", "p.audit.access"),
        ("router", "WRITE", "TOPIC", "p.referrals.education"),
    }


def test_referral_topic_override_is_honoured():
    from services.acl.model import unmanaged

    # A topic that is not a topic name ("a b") is refused by the rules loader: tests/unit/rules/test_departments.py.
    grants = derive_grants("p", small_rules(["police", "court"], topics={"police": "p.referrals.police-v2"}))
    assert ("READ", "TOPIC", "LITERAL", "p.referrals.police-v2") in acls(grants, "dept-police")
    assert ("READ", "TOPIC", "LITERAL", "p.referrals.court") in acls(grants, "dept-court")
    assert ("WRITE", "TOPIC", "LITERAL", "p.referrals.police-v2") in acls(grants, "router")
    assert not unmanaged(grants, "p")
    outside = derive_grants("p", small_rules(["police"], topics={"police": "elsewhere.police"}))
    assert {g.name for g in unmanaged(outside, "p")} == {"elsewhere.police"}
