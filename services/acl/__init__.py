"""Principals and ACLs as code.

:mod:`services.acl.model` derives every ACL the bus needs from the departments
of ``routing_rules.toml`` (as ``load_rules`` reads them, referral topic overrides
included) and the fixed list of services;
:mod:`services.acl.kafka_acls` compares them with the broker and applies the
difference; :mod:`services.acl.users` sets each principal's SCRAM credential
from secrets kept outside the repository. The commands are ``cluebus acl plan``,
``cluebus acl apply`` and ``cluebus acl users``.
"""

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
    "derive_grants",
    "diff",
    "is_managed",
    "render_table",
]
