"""What `cluebus audit` asks and how access records join the routing decisions (pure, no I/O).

An access record says which *groups* of fields a person was shown; the routing
decision of the same report says which field *names* the department was sent and
by which rule. Read together they answer "who saw what of this report, and why
were they allowed to": both are keyed by report id and hold no values.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from schemas import AccessEvent, RecipientDecision, RoutingDecision, SharedGrant
from schemas.events import STAFF_ID, UUID_PATTERN
from schemas.report import UUID7_PATTERN

_SPAN = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


class AuditQueryError(ValueError):
    """The question is malformed; the message says how to ask."""


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``2026-11-20``, ``2026-11-20T08:00:00+08:00`` or a span back from now: ``90m``, ``24h``, ``7d``."""
    now = now or datetime.now(UTC)
    if m := _SPAN.match(text.strip()):
        return now - timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise AuditQueryError(f"--since {text!r}: give an ISO date or time, or a span such as 24h or 7d") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@dataclass(frozen=True)
class AuditQuery:
    referral: str | None = None  # full id or its first characters (at least 8)
    report: str | None = None
    user: str | None = None
    since: datetime | None = None

    def __post_init__(self) -> None:
        if not (self.referral or self.report or self.user):
            raise AuditQueryError("say what to list: --referral ID, --report ID or --user STAFF_ID")
        if self.referral and not (
            re.fullmatch(UUID_PATTERN, self.referral) or re.fullmatch(r"[0-9a-f-]{8,36}", self.referral)
        ):
            raise AuditQueryError(f"--referral {self.referral!r} is not a referral id (or its first 8+ characters)")
        if self.report and not re.fullmatch(UUID7_PATTERN, self.report):
            raise AuditQueryError(f"--report {self.report!r} is not a report id (UUIDv7)")
        if self.user and not re.fullmatch(STAFF_ID, self.user):
            raise AuditQueryError(f"--user {self.user!r} is not a staff id")

    def matches(self, event: AccessEvent) -> bool:
        return (
            (self.referral is None or event.referral_id.startswith(self.referral))
            and (self.report is None or event.report_id == self.report)
            and (self.user is None or event.by == self.user)
            and (self.since is None or event.at >= self.since)
        )


@dataclass(frozen=True)
class AuditRow:
    """One access record with what the routing decision sent that department (None: decision not found)."""

    access: AccessEvent
    sent: RecipientDecision | None
    decision: RoutingDecision | None

    @property
    def grants(self) -> tuple[SharedGrant, ...]:
        """The grants that sent this department its copy, with their reasons (empty: none recorded)."""
        if self.sent is None or self.decision is None:
            return ()
        return self.decision.grants_of(self.sent)

    @property
    def groups_beyond_grant(self) -> tuple[str, ...]:
        """Field groups shown that the decision did not send (should always be empty)."""
        if self.sent is None:
            return ()
        granted = {f.split(".", 1)[0] for f in self.sent.fields}
        return tuple(g for g in self.access.field_groups if g not in granted)


def select(events: Iterable[AccessEvent], query: AuditQuery) -> list[AccessEvent]:
    """Matching records, once each (a record resent after a crash has the same id), oldest first."""
    unique = {e.access_id: e for e in events if query.matches(e)}
    return sorted(unique.values(), key=lambda e: (e.at, e.access_id))


def join(events: list[AccessEvent], decisions: Iterable[RoutingDecision]) -> list[AuditRow]:
    by_report = {d.report_id: d for d in decisions}
    rows = []
    for event in events:
        decision = by_report.get(event.report_id)
        sent = next((r for r in decision.recipients if r.department == event.department), None) if decision else None
        rows.append(AuditRow(event, sent, decision))
    return rows
