"""What a department's copy of a report holds and why: the grants applied and what they withheld.

Carried by every ``Referral`` (so the recipient sees why it may see what it sees) and by
every recipient of a ``RoutingDecision`` (MASH's record of "the decision to share and
why"). Field groups and roles of subjects only, never a value: the exact paths a copy may
hold are its ``fields``, and each grant's paths are in the rules of its ``rules_version``
(``cluebus rules explain``). Groups, not paths, because a report goes to about eight
departments with four or five grants each: with paths the grant records tripled the bytes
of every decision (measured over the example and corpus reports: 7.7 KB to 21 KB).
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, ValidationInfo, field_validator

from schemas.base import Model
from schemas.enums import SubjectRole

REASON_PATTERN = r"^[^\n\r\t]*\S[^\n\r\t]*$"  # one line, not blank


FIELD_GROUP = r"^[a-z][a-z0-9_]{0,63}$"


class GrantBasis(StrEnum):
    """Where a grant comes from in ``routing_rules.toml`` (``always_shared``, no personal data, is not recorded)."""

    summary = "summary"  # the case summary: every recipient, lead or cooperating
    department = "department"  # the department's own grants, when it leads
    route = "route"  # a route that matched grants it more, in either role


class SharedGrant(Model):
    """One grant of the rules as applied to one copy: which fields it shared, of whom, and why."""

    basis: GrantBasis
    route: tuple[str, ...] | None = Field(
        None,
        min_length=1,
        validate_default=True,
        description="The granting route (its path of names); only for basis 'route'.",
    )
    reason: str = Field(min_length=1, max_length=300, pattern=REASON_PATTERN, description="Why, as the rules say.")
    subjects: tuple[SubjectRole, ...] = Field(
        (), description="Roles of the report's subjects whose fields this grant shared (none: no subject's fields)."
    )
    field_groups: tuple[str, ...] = Field(
        min_length=1,
        description="Groups of the fields this grant shared (first segment of each path: subjects, narrative, "
        "details...), as in access records; never values.",
    )

    # A field validator, not a model validator: pydantic reruns "after" model validators on every
    # instance passed into a referral and a decision (measured: twice per grant per routed report).
    def describe(self) -> str:
        """One line: what this grant shared, of whom, and why (names and roles, never values)."""
        by = "route " + " > ".join(self.route) if self.route else self.basis.value
        of = f" of {', '.join(r.value for r in self.subjects)}" if self.subjects else ""
        return f"shared by {by}{of} ({', '.join(self.field_groups)}): {self.reason}"

    @field_validator("route")
    @classmethod
    def _route_iff_route_basis(cls, route: tuple[str, ...] | None, info: ValidationInfo) -> tuple[str, ...] | None:
        basis = info.data.get("basis")
        if basis is not None and (basis == GrantBasis.route) != (route is not None):
            raise ValueError("route is given exactly when basis is 'route'")
        return route


class Withheld(Model):
    """What the rules kept from a copy of what the report's shape holds (roles and field names only)."""

    identity: tuple[SubjectRole, ...] = Field(
        (), description="Roles of the report's subjects whose identity (name, id, phone, description) is not shared."
    )
    free_text: tuple[str, ...] = Field(
        (),
        description="Free-text fields the grants allow but this copy does not hold: they may name people whose "
        "identity this department may not see (the narrative goes only where every subject's identity may go).",
    )

    def __bool__(self) -> bool:
        return bool(self.identity or self.free_text)

    def describe(self) -> list[str]:
        """What was kept back, one line each (roles and field names, never values)."""
        out = []
        if self.identity:
            out.append(f"withheld: the identity of {', '.join(r.value for r in self.identity)}")
        if self.free_text:
            out.append(f"withheld: free text ({', '.join(self.free_text)}): the copy may not identify every subject")
        return out
