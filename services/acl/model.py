"""The ACLs of the bus, derived from its departments and services, and how they differ.

Every grant is an ALLOW for one principal on one resource from any host. With
``allow.everyone.if.no.acl.found=false`` on the broker, whatever is not granted
here is refused. Kafka's authorizer lets READ and WRITE imply DESCRIBE on the
same resource, so no separate DESCRIBE grants are made.

Who may do what (``<p>`` is the topic prefix, ``TopicNames(<p>)``):

``adapter-<source>`` (hospital, school, labour, marriage, venue)
    WRITE its own ``<p>.reports.<source>``; its idempotent producer needs nothing
    more in Kafka 4.1 (InitProducerId without a transactional id is allowed with
    IdempotentWrite on the cluster *or* WRITE on any topic, KIP-679).
    READ ``<p>.status`` and its group ``<p>-adapter-<source>-status``, for
    feedback to the reporter.
``router``
    READ every report topic with group ``<p>-router`` (its faust app id); WRITE
    each department's referral topic, decisions and dead letter;
    CREATE, READ and WRITE topics prefixed ``<p>-router-`` (faust's own topics:
    table changelogs, repartition topics and ``-__assignor-__leader``).
``tracker``
    READ decisions, acks and ``<p>.tracker.ticks`` with group ``<p>-tracker``;
    WRITE escalations, status, dead letter and ticks; CREATE, READ and WRITE
    topics prefixed ``<p>-tracker-`` (its faust topics).
``reconciler``
    READ every report topic, decisions, status and dead letter (no group: it commits
    nothing); WRITE every report topic and decisions, to re-drive what was not routed
    or not taken in by the tracker.
``dept-<department>``
    READ its own ``<p>.referrals.<department>`` with group
    ``<p>-inbox-<department>``; WRITE ``<p>.acks`` and ``<p>.audit.access`` (the
    access record of every opening of a referral's personal data).
``console``
    READ ``<p>.escalations`` and ``<p>.status`` (ids, stages and clocks: the
    supervisors' and the joint meeting office's views). The console reads and
    acknowledges each department's referrals as that department's ``dept-*``.
``admin``
    super user (``super.users``), manages topics, ACLs and credentials; no ACLs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from schemas.enums import Source
from services.common.topics import TopicNames
from services.rules import CompiledRules

ROUTER = "router"
TRACKER = "tracker"
RECONCILER = "reconciler"
CONSOLE = "console"
ADMIN = "admin"

# Principals cluebus owns; used to recognise its ACLs on the (prefix-less) cluster resource.
CLUEBUS_PRINCIPAL = re.compile(r"^User:(router|tracker|reconciler|console|adapter-[a-z0-9_]+|dept-[a-z0-9_]+)$")

RESOURCE_ORDER = {"TOPIC": 0, "GROUP": 1, "TRANSACTIONAL_ID": 2, "CLUSTER": 3}
OPERATION_ORDER = {"READ": 0, "WRITE": 1, "CREATE": 2, "DESCRIBE": 3, "IDEMPOTENT_WRITE": 4}


def adapter_principal(source: str) -> str:
    return f"adapter-{source}"


def department_principal(department: str) -> str:
    return f"dept-{department}"


def adapter_status_group(names: TopicNames, source: str) -> str:
    """Consumer group with which an adapter follows the status topic."""
    return names.app_id(f"adapter-{source}-status")


@dataclass(frozen=True)
class Grant:
    """One ACL binding. ``reason`` explains it and takes no part in equality."""

    principal: str  # "User:<name>"
    operation: str  # kafka-python ACLOperation name: READ, WRITE, CREATE, ...
    resource_type: str  # TOPIC, GROUP, CLUSTER, TRANSACTIONAL_ID
    pattern: str  # LITERAL or PREFIXED
    name: str
    host: str = "*"
    permission: str = "ALLOW"
    reason: str = field(default="", compare=False)

    @property
    def user(self) -> str:
        return self.principal.split(":", 1)[1]

    def sort_key(self) -> tuple[object, ...]:
        return (
            self.principal,
            RESOURCE_ORDER.get(self.resource_type, 9),
            self.name,
            self.pattern,
            OPERATION_ORDER.get(self.operation, 9),
            self.operation,
            self.permission,
            self.host,
        )


def _topic(user: str, operation: str, name: str, reason: str) -> Grant:
    return Grant(f"User:{user}", operation, "TOPIC", "LITERAL", name, reason=reason)


def _group(user: str, name: str, reason: str) -> Grant:
    return Grant(f"User:{user}", "READ", "GROUP", "LITERAL", name, reason=reason)


def _faust_internals(user: str, app_id: str) -> list[Grant]:
    prefix = f"{app_id}-"
    why = "faust internal topics (changelogs, repartition, assignor leader)"
    return [
        Grant(f"User:{user}", op, "TOPIC", "PREFIXED", prefix, reason=f"{verb} {why}")
        for op, verb in (("READ", "read"), ("WRITE", "write"), ("CREATE", "create"))
    ]


def derive_grants(prefix: str, rules: CompiledRules, sources: Iterable[str] = tuple(Source)) -> list[Grant]:
    """Every ACL of the bus for one topic prefix and the rules' departments, sorted; no duplicates.

    A department's referral topic is the one the rules name (``CompiledRules.referral_topic``).
    """
    names = TopicNames(prefix)
    departments = sorted(rules.departments)
    referral_topic = {d: rules.referral_topic(d, names) for d in departments}
    sources = sorted(set(sources))
    grants: list[Grant] = []

    for source in sources:
        user = adapter_principal(source)
        grants += [
            _topic(user, "WRITE", names.report(source), "publish its own sector's reports"),
            _topic(user, "READ", names.status, "feed report status back to the reporter"),
            _group(user, adapter_status_group(names, source), "its status consumer group"),
        ]

    router_id = names.app_id(ROUTER)
    grants += [_topic(ROUTER, "READ", names.report(s), "route reports") for s in sources]
    grants.append(_group(ROUTER, router_id, "faust app id = consumer group"))
    grants += [_topic(ROUTER, "WRITE", referral_topic[d], "deliver referrals") for d in departments]
    grants += [
        _topic(ROUTER, "WRITE", names.decisions, "audit trail of routing decisions"),
        _topic(ROUTER, "WRITE", names.deadletter, "reports it cannot route"),
    ]
    grants += _faust_internals(ROUTER, router_id)

    tracker_id = names.app_id(TRACKER)
    grants += [
        _topic(TRACKER, "READ", names.decisions, "new referrals to track"),
        _topic(TRACKER, "READ", names.acks, "acknowledgements"),
        _topic(TRACKER, "READ", names.tracker_ticks, "its own clock ticks"),
        _topic(TRACKER, "WRITE", names.tracker_ticks, "its own clock ticks"),
        _topic(TRACKER, "WRITE", names.escalations, "escalate overdue referrals"),
        _topic(TRACKER, "WRITE", names.status, "report status"),
        _topic(TRACKER, "WRITE", names.deadletter, "events it cannot process"),
        _group(TRACKER, tracker_id, "faust app id = consumer group"),
    ]
    grants += _faust_internals(TRACKER, tracker_id)

    grants += [_topic(RECONCILER, "READ", names.report(s), "compare published with decided") for s in sources]
    grants += [_topic(RECONCILER, "WRITE", names.report(s), "re-drive unrouted reports") for s in sources]
    grants += [
        _topic(RECONCILER, "READ", names.decisions, "compare decided with tracked"),
        _topic(RECONCILER, "WRITE", names.decisions, "re-drive decisions the tracker never took in"),
        _topic(RECONCILER, "READ", names.status, "the tracker's first status proves it took a decision in"),
        _topic(RECONCILER, "READ", names.deadletter, "refused inputs are not silent"),
    ]

    grants += [
        _topic(CONSOLE, "READ", names.escalations, "supervisors' and joint meeting's escalations"),
        _topic(CONSOLE, "READ", names.status, "open and overdue counts for the joint meeting office"),
    ]

    for department in departments:
        user = department_principal(department)
        grants += [
            _topic(user, "READ", referral_topic[department], "its own referrals only"),
            _group(user, names.inbox_group(department), "its inbox consumer group"),
            _topic(user, "WRITE", names.acks, "acknowledge referrals"),
            _topic(user, "WRITE", names.access_audit, "record who opened a referral"),
        ]

    unique = {g: g for g in grants}  # first reason wins
    return sorted(unique.values(), key=Grant.sort_key)


def unmanaged(grants: Iterable[Grant], prefix: str) -> list[Grant]:
    """Derived grants outside the managed scope (a referral topic override outside the
    prefix): ``apply`` adds them but cannot tell when to remove them."""
    return [g for g in grants if not is_managed(g, prefix)]


def all_principals(departments: Iterable[str], sources: Iterable[str] = tuple(Source)) -> list[str]:
    """Every principal (user name) of the bus except the admin, sorted."""
    users = {ROUTER, TRACKER, RECONCILER, CONSOLE}
    users |= {adapter_principal(s) for s in sources}
    users |= {department_principal(d) for d in departments}
    return sorted(users)


def is_managed(grant: Grant, prefix: str) -> bool:
    """Whether cluebus owns this ACL for ``prefix`` (and so removes it when not derived).

    Owned: every ACL on a topic, group or transactional id named under the prefix
    (``<p>.`` or ``<p>-``), whoever it is for, since those resources carry the bus's
    data; and every ACL of a cluebus principal on the cluster resource (cluebus
    grants none). ACLs of other principals elsewhere are left alone.
    """
    if grant.resource_type == "CLUSTER":
        return bool(CLUEBUS_PRINCIPAL.match(grant.principal))
    return grant.name.startswith((f"{prefix}.", f"{prefix}-"))


@dataclass
class Diff:
    to_add: list[Grant]
    to_remove: list[Grant]
    unchanged: list[Grant]

    @property
    def empty(self) -> bool:
        return not self.to_add and not self.to_remove


def diff(desired: Iterable[Grant], existing: Iterable[Grant], prefix: str) -> Diff:
    """What to add and what to remove so that the managed ACLs equal ``desired``."""
    want = set(desired)
    have = {g for g in existing if is_managed(g, prefix)}
    return Diff(
        to_add=sorted(want - have, key=Grant.sort_key),
        to_remove=sorted(have - want, key=Grant.sort_key),
        unchanged=sorted(want & have, key=Grant.sort_key),
    )


HEADER = ("PRINCIPAL", "OPERATION", "RESOURCE", "PATTERN", "NAME")


def render_table(grants: Iterable[Grant], *, marks: dict[Grant, str] | None = None, why: bool = False) -> str:
    """A fixed-width table, one ACL a line, in the grants' sort order."""
    rows: list[tuple[str, ...]] = []
    header = ("", *HEADER) if marks is not None else HEADER
    if why:
        header = (*header, "WHY")
    for g in sorted(grants, key=Grant.sort_key):
        operation = g.operation if g.permission == "ALLOW" else f"{g.permission} {g.operation}"
        if g.host != "*":
            operation += f" from {g.host}"
        row: tuple[str, ...] = (g.principal, operation, g.resource_type, g.pattern, g.name)
        if marks is not None:
            row = (marks.get(g, " "), *row)
        if why:
            row = (*row, g.reason)
        rows.append(row)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]]
    return "\n".join(lines)
