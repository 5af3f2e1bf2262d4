"""The shape of ``routing_rules.toml``, validated by pydantic at load.

The routing part is modelled on Alertmanager's routing tree: every report
enters at the root; a node's children are tried in order, a matching child
is followed, and unless it says ``continue = true`` its later siblings are
skipped. Every matched node below the root contributes its recipients (so a
child adds to what its parent routes); the root's recipients are the
fallback when no child matches, which is why no report is routed to nobody.
Options set on a node (``priority``, ``case_owner_required``) are inherited
by its children. The matchers of ``match`` / ``match_not`` are in
``services/rules/matchers.py``.

What each recipient may see is a set of **grants** (fields, of whom, why): the
``summary`` for every recipient, a department's own ``grants`` when it leads, and
a matched route's ``grants`` for the departments it names, in either role. Their
meaning and checks are in ``services/rules/grants.py``.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from schemas.enums import Category, Priority, Role
from schemas.events import DEPARTMENT_ID
from services.common.topics import TOPIC_NAME
from services.rules.clocks import Calendar, Duration, StageClocks
from services.rules.matchers import Matchers


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Party(StrEnum):
    """Whose personal data a grant covers: the report's subjects by role, or its reporter."""

    victim = "victim"
    suspect = "suspect"
    buyer = "buyer"
    guardian = "guardian"
    witness = "witness"
    other = "other"
    reporter = "reporter"


class Grant(_Strict):
    """Fields a department may see, of whom, and why (the reason is recorded with every copy)."""

    fields: tuple[str, ...] = Field(min_length=1, description="Paths, '@set' names or 'x.*'.")
    of: tuple[Party, ...] = Field(
        (),
        description="Whose: subject roles for 'subjects.*' fields, 'reporter' for 'reporter.*' fields; "
        "a person's field is granted only of the parties listed.",
    )
    reason: str = Field(min_length=3, max_length=300, pattern=r"^[^\n\r\t]*\S[^\n\r\t]*$")


class RouteGrant(Grant):
    """A grant of a route, for departments it (or a route above it) names, in either role."""

    to: tuple[str, ...] = Field(min_length=1, description="Department ids.")


class EscalationLevel(_Strict):
    after: Duration = Field(description="Delay after the stage's due time before this level fires.")
    to: str = Field(
        pattern=r"^(\{department\}|[a-z][a-z0-9_]*)(\.[a-z][a-z0-9_]*)?$",
        description="A department id, or department.role (e.g. 'police.duty_supervisor'); "
        "'{department}' stands for the referral's own department.",
    )


class EscalationChain(_Strict):
    levels: tuple[EscalationLevel, ...] = Field(min_length=1)
    repeat: Duration = Field(description="After the last level, escalate again at this interval.")
    on_lead_decline: str = Field("joint_meeting", description="Who hears at once when a lead department declines.")

    @model_validator(mode="after")
    def _levels_in_order(self) -> EscalationChain:
        afters = [level.after for level in self.levels]
        if afters != sorted(afters):
            raise ValueError("escalation levels must be in increasing order of 'after'")
        if self.repeat.total_seconds() < 60:
            raise ValueError("repeat must be at least 1m")
        return self


class Department(_Strict):
    name_zh: str = Field(min_length=1)
    name_en: str = Field(min_length=1)
    topic: str | None = Field(None, pattern=TOPIC_NAME, description="Referral topic; default <prefix>.referrals.<id>.")
    calendar: str | None = Field(None, description="Working-hours calendar (default: defaults.calendar).")
    grants: tuple[Grant, ...] = Field(
        (), description="What this department sees beyond the summary when it leads a referral."
    )
    clocks: dict[Priority, StageClocks] = Field(default_factory=dict)
    escalation: EscalationChain | None = None
    case_owner_categories: frozenset[Category] = Field(
        frozenset(), description="Categories whose acceptance by this department must name a case owner."
    )


class Recipient(_Strict):
    department: str = Field(pattern=DEPARTMENT_ID)
    role: Role


class Route(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    description: str = ""
    match: Matchers = Field(default_factory=Matchers)
    match_not: Matchers = Field(default_factory=Matchers)
    recipients: tuple[Recipient, ...] = ()
    grants: tuple[RouteGrant, ...] = Field(
        (), description="More fields for departments this route names, when it matches (lead or cooperating)."
    )
    priority: Priority | None = Field(
        None, description="Raise the priority of what this subtree routes to at least this (never lowers it)."
    )
    case_owner_required: bool | None = Field(
        None, description="Lead acceptance in this subtree must name a case owner."
    )
    continue_: bool = Field(False, alias="continue")
    routes: tuple[Route, ...] = ()

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _unique_children(self) -> Route:
        names = [r.name for r in self.routes]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"route '{self.name}' has children with the same name: {dupes}")
        return self


class Defaults(_Strict):
    calendar: str = "office"
    clocks: dict[Priority, StageClocks]
    escalation: EscalationChain

    @field_validator("clocks")
    @classmethod
    def _every_priority(cls, value: dict[Priority, StageClocks]) -> dict[Priority, StageClocks]:
        missing = [p.value for p in Priority if p not in value]
        if missing:
            raise ValueError(f"defaults.clocks needs every priority; missing {missing}")
        return value


class RulesFile(_Strict):
    """The whole file."""

    version: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
    police: str = Field("police", pattern=DEPARTMENT_ID, description="The department allowed DNA/biometric data.")
    offender_identity: tuple[str, ...] = Field(
        min_length=1,
        description="The only departments that may ever see a suspect's or a buyer's identity (the loader refuses "
        "any grant that gives it to another; free text follows identity, so theirs too).",
    )
    always_shared: tuple[str, ...] = Field(
        description="Fields every recipient gets (ids, category, times, codes); no personal data."
    )
    summary: tuple[Grant, ...] = Field(
        min_length=1,
        description="The case summary every recipient gets, lead or cooperating: facts, no identity, no free text "
        "but the reporter's shareable summary.",
    )
    field_sets: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    calendars: dict[str, Calendar] = Field(default_factory=dict)
    defaults: Defaults
    departments: dict[str, Department] = Field(min_length=1)
    route: Route
    anonymise: tuple[str, ...] = Field(
        description="Fields removed from non-police copies when an adult victim refused consent."
    )
    kind: Literal["cluebus-routing-rules"] = "cluebus-routing-rules"

    @field_validator("departments")
    @classmethod
    def _ids(cls, value: dict[str, Department]) -> dict[str, Department]:
        bad = [d for d in value if not re.fullmatch(DEPARTMENT_ID, d)]
        if bad:
            raise ValueError(f"department ids must be lower_snake_case: {bad}")
        return value
