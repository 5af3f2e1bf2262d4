"""What each page shows, computed from the inbox and the rules (pure; times are passed in).

Nothing here reads Kafka or a store: the routes hand in inbox items, referrals
and acks, and get back plain rows for the templates.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from schemas import Referral
from schemas.enums import Priority, Stage
from services.inbox.store import InboxItem

OPEN_FILTER, ALL_FILTER = "", "all"
STAGE_FILTERS = (OPEN_FILTER, *(s.value for s in Stage), ALL_FILTER)
_DONE_AT = {"received": 1, "decided": 2, "completed": 3}  # stage rank from which a clock is met


@dataclass(frozen=True)
class Clock:
    stage: str  # received | decided | completed
    due: datetime
    met: bool
    seconds_left: float

    @property
    def overdue(self) -> bool:
        return not self.met and self.seconds_left < 0


@dataclass(frozen=True)
class QueueRow:
    referral_id: str
    report_id: str
    priority: str
    stage: str
    category: str
    role: str
    case_owner_required: bool
    clock: Clock | None  # the clock the department is on now (None once closed)

    @property
    def overdue(self) -> bool:
        return self.clock is not None and self.clock.overdue


def clocks(item: InboxItem, now: datetime) -> list[Clock]:
    rank = Stage(item.stage).rank
    due = {"received": item.due_received, "decided": item.due_decided, "completed": item.due_completed}
    met = {k: rank >= r and not (k == "completed" and item.stage == "declined") for k, r in _DONE_AT.items()}
    return [Clock(k, due[k], met[k], (due[k] - now).total_seconds()) for k in ("received", "decided", "completed")]


def current_clock(item: InboxItem, now: datetime) -> Clock | None:
    nxt = item.next_due
    if nxt is None:
        return None
    return next(c for c in clocks(item, now) if c.stage == nxt[0])


def row(item: InboxItem, now: datetime) -> QueueRow:
    return QueueRow(
        item.referral_id,
        item.report_id,
        item.priority,
        item.stage,
        item.category,
        item.role,
        item.case_owner_required and Stage(item.stage).undecided,
        current_clock(item, now),
    )


def queue(items: list[InboxItem], stage_filter: str, now: datetime) -> list[QueueRow]:
    """Most urgent first: open before closed, then priority, overdue first, then the sooner clock."""
    if stage_filter == OPEN_FILTER:
        items = [i for i in items if i.next_due is not None]
    elif stage_filter != ALL_FILTER:
        items = [i for i in items if i.stage == stage_filter]
    rows = [row(i, now) for i in items]

    def urgency(r: QueueRow) -> tuple[Any, ...]:
        closed = r.clock is None
        return (closed, -Priority(r.priority).rank, r.clock.seconds_left if r.clock else 0.0, r.referral_id)

    return sorted(rows, key=urgency)


def overdue(items: list[InboxItem], now: datetime) -> list[QueueRow]:
    return [r for r in queue(items, OPEN_FILTER, now) if r.overdue]


def span(seconds: float, lang: str) -> str:
    """``3 h 20 min`` / ``3小时20分``; days beyond a day, minutes under an hour."""
    s = abs(int(seconds))
    days, hours, minutes = s // 86400, s % 86400 // 3600, s % 3600 // 60
    zh = lang == "zh"
    if days:
        return f"{days}天{hours}小时" if zh else f"{days} d {hours} h"
    if hours:
        return f"{hours}小时{minutes}分" if zh else f"{hours} h {minutes} min"
    return f"{max(minutes, 0)}分钟" if zh else f"{minutes} min"


def local_time(when: datetime, zone: tzinfo) -> str:
    return when.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def zone(name: str) -> tzinfo:
    from datetime import timezone
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return timezone(timedelta(hours=8), "UTC+8") if name == "Asia/Shanghai" else UTC


@dataclass(frozen=True)
class Node:
    """One line of the redacted copy: a key with a value, or with children (a table or a list)."""

    key: str
    value: str | None
    children: tuple[Node, ...] = ()


def copy_tree(data: Any, key: str = "") -> list[Node]:
    """The referral's copy as nested nodes, in the order the report has it; values as text."""
    if isinstance(data, dict):
        return [_node(k, v) for k, v in data.items()]
    if isinstance(data, list):
        return [_node(f"{key} {i + 1}" if key else str(i + 1), v) for i, v in enumerate(data)]
    return [Node(key, _text(data))]


def _node(key: str, value: Any) -> Node:
    if isinstance(value, dict | list):
        return Node(key, None, tuple(copy_tree(value, key)))
    return Node(key, _text(value))


def _text(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "✓" if value else "✗"
    return str(value)


@dataclass(frozen=True)
class RouteStep:
    """One route on a referral's rule path: its name, description and the conditions it matched on."""

    name: str
    description: str
    conditions: tuple[str, ...]
    sends_here: bool  # this route names the department among its recipients


def _conditions(route: Any) -> tuple[str, ...]:
    from services.rules.matchers import describe

    out = [*describe(route.match), *(f"not {line}" for line in describe(route.match_not))]
    if route.priority is not None:
        out.append(f"priority ≥ {route.priority}")
    if route.case_owner_required:
        out.append("case owner required")
    return tuple(out)


def route_steps(root: Any, path: tuple[str, ...], department: str) -> list[RouteStep]:
    """The routes of a referral's rule path in today's rules: why the referral was sent here."""
    out: list[RouteStep] = []
    node = root
    for i, name in enumerate(path):
        if i > 0:
            node = next((c for c in getattr(node, "routes", ()) if c.name == name), None)
        if node is None or node.name != name:  # the rules changed since the referral was routed
            out.extend(RouteStep(n, "", (), False) for n in path[i:])
            break
        here = any(r.department == department for r in node.recipients)
        out.append(RouteStep(name, node.description, _conditions(node), here))
    return out


def case_owner_required(referral: Referral, item: InboxItem) -> bool:
    return referral.case_owner_required and Stage(item.stage).undecided
