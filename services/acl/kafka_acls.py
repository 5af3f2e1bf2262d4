"""Reading and changing the broker's ACLs with kafka-python's admin client."""

from __future__ import annotations

import time
from dataclasses import dataclass

from kafka.admin import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    KafkaAdminClient,
    ResourcePattern,
    ResourcePatternFilter,
    ResourceType,
)
from kafka.errors import KafkaError, NoError, SecurityDisabledError

from services.acl.model import Diff, Grant, diff


class AclError(RuntimeError):
    """The broker refused to list or change ACLs; the message says why."""


def to_acl(grant: Grant) -> ACL:
    return ACL(
        principal=grant.principal,
        host=grant.host,
        operation=ACLOperation[grant.operation],
        permission_type=ACLPermissionType[grant.permission],
        resource_pattern=ResourcePattern(
            ResourceType[grant.resource_type], grant.name, ACLResourcePatternType[grant.pattern]
        ),
    )


def to_exact_filter(grant: Grant) -> ACLFilter:
    """A filter that matches this one ACL and nothing else."""
    return ACLFilter(
        principal=grant.principal,
        host=grant.host,
        operation=ACLOperation[grant.operation],
        permission_type=ACLPermissionType[grant.permission],
        resource_pattern=ResourcePatternFilter(
            ResourceType[grant.resource_type], grant.name, ACLResourcePatternType[grant.pattern]
        ),
    )


def from_acl(acl: ACL) -> Grant:
    pattern = acl.resource_pattern
    return Grant(
        principal=acl.principal,
        operation=acl.operation.name,
        resource_type=pattern.resource_type.name,
        pattern=pattern.pattern_type.name,
        name=pattern.resource_name,
        host=acl.host,
        permission=acl.permission_type.name,
    )


ALL = ACLFilter(
    principal=None,
    host=None,
    operation=ACLOperation.ANY,
    permission_type=ACLPermissionType.ANY,
    resource_pattern=ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY),
)


def existing_grants(admin: KafkaAdminClient) -> list[Grant]:
    """Every ACL on the broker."""
    try:
        acls, error = admin.describe_acls(ALL)
    except SecurityDisabledError:
        raise AclError("the broker has no authorizer; start it with `--profile secure`") from None
    except KafkaError as exc:
        raise AclError(f"cannot list ACLs: {type(exc).__name__}: {exc}") from None
    if error is not NoError:
        raise AclError(f"cannot list ACLs: {error.__name__}")
    return [from_acl(a) for a in acls]


def plan_against(admin: KafkaAdminClient, desired: list[Grant], prefix: str) -> Diff:
    return diff(desired, existing_grants(admin), prefix)


@dataclass
class ApplyResult:
    added: list[Grant]
    removed: list[Grant]
    unchanged: list[Grant]


def apply(admin: KafkaAdminClient, desired: list[Grant], prefix: str, settle_timeout_s: float = 15.0) -> ApplyResult:
    """Make the managed ACLs equal ``desired``: add what is missing first, then remove the rest.

    Adding before removing means that a grant which only moves never lapses. ACL
    changes reach the brokers' authorizers through the metadata log, a moment
    after the controller accepts them; ``apply`` returns once the broker shows
    them, so that running it again changes nothing and the grants are in force.
    """
    changes = plan_against(admin, desired, prefix)
    if changes.to_add:
        try:
            result = admin.create_acls([to_acl(g) for g in changes.to_add])
        except KafkaError as exc:
            raise AclError(f"cannot create ACLs: {type(exc).__name__}: {exc}") from None
        if result["failed"]:
            names = sorted({getattr(e, "__name__", type(e).__name__) for e in result["failed"]})
            raise AclError(f"{len(result['failed'])} ACLs were not created: {', '.join(names)}")
    if changes.to_remove:
        try:
            results = admin.delete_acls([to_exact_filter(g) for g in changes.to_remove])
        except KafkaError as exc:
            raise AclError(f"cannot delete ACLs: {type(exc).__name__}: {exc}") from None
        failed = [(f, e) for f, _matched, e in results if e is not NoError]
        if failed:
            raise AclError(
                f"{len(failed)} ACLs were not deleted: " + ", ".join(sorted({e.__name__ for _f, e in failed}))
            )
    if not changes.empty:
        wait_until_visible(admin, desired, prefix, settle_timeout_s)
    return ApplyResult(changes.to_add, changes.to_remove, changes.unchanged)


def wait_until_visible(admin: KafkaAdminClient, desired: list[Grant], prefix: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        pending = plan_against(admin, desired, prefix)
        if pending.empty:
            return
        if time.monotonic() > deadline:
            raise AclError(
                f"{len(pending.to_add)} added and {len(pending.to_remove)} removed ACLs are still "
                f"not visible on the broker after {timeout_s:.0f}s"
            )
        time.sleep(0.2)
