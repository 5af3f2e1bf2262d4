"""Principals and ACLs as code.

:mod:`services.acl.model` derives every ACL the bus needs from the department
list of ``routing_rules.toml`` and the fixed list of services;
:mod:`services.acl.kafka_acls` compares them with the broker and applies the
difference; :mod:`services.acl.users` sets each principal's SCRAM credential
from secrets kept outside the repository. The commands are ``cluebus acl plan``,
``cluebus acl apply`` and ``cluebus acl users``.
"""

from services.acl.departments import department_ids, department_ids_from_toml
from services.acl.model import (
    Grant,
    all_principals,
    derive_grants,
    diff,
    is_managed,
    render_table,
)

__all__ = [
    "Grant",
    "all_principals",
    "department_ids",
    "department_ids_from_toml",
    "derive_grants",
    "diff",
    "is_managed",
    "render_table",
]
