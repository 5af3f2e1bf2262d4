"""A department inbox's local store (SQLite): its referrals, its acks and access records to send.

The store is the department's own copy, on its own machine. A referral is
stored (with its ``received`` ack queued) before the consumer offset is
committed, and an ack or an access record is queued here before it is sent,
so neither a crash nor Kafka being away loses a referral, a person's decision
or the record that a person opened a referral.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from schemas import AccessEvent, Ack, Referral, Stage
from schemas.enums import OPEN_STAGES

SCHEMA = """
CREATE TABLE IF NOT EXISTS referrals (
    referral_id TEXT PRIMARY KEY,
    report_id TEXT NOT NULL,
    stage TEXT NOT NULL,              -- this department's latest stage (routed .. completed)
    category TEXT NOT NULL,
    priority TEXT NOT NULL,
    role TEXT NOT NULL,
    case_owner_required INTEGER NOT NULL,
    routed_at TEXT NOT NULL,
    due_received TEXT NOT NULL,
    due_decided TEXT NOT NULL,
    due_completed TEXT NOT NULL,
    referral TEXT NOT NULL            -- the referral event as received (JSON)
);
CREATE INDEX IF NOT EXISTS referrals_open ON referrals (stage, due_decided);
CREATE TABLE IF NOT EXISTS outbox (
    ack_id TEXT PRIMARY KEY,          -- deterministic: a repeated action is the same ack
    ack TEXT NOT NULL,
    queued_at REAL NOT NULL,
    sent_at REAL
);
CREATE TABLE IF NOT EXISTS access_outbox (
    access_id TEXT PRIMARY KEY,       -- deterministic: a resent record is the same record
    access TEXT NOT NULL,             -- the AccessEvent (ids, field group names, time; no values)
    queued_at REAL NOT NULL,
    sent_at REAL
);
"""


def inbox_store_path(state_dir: Path, department: str) -> Path:
    """The one store of a department's inbox (the CLI and the web console share it)."""
    return state_dir / f"inbox-{department}.sqlite3"


@dataclass(frozen=True)
class InboxItem:
    """One referral as the inbox lists it (ids, codes and times only)."""

    referral_id: str
    report_id: str
    stage: str
    category: str
    priority: str
    role: str
    case_owner_required: bool
    routed_at: datetime
    due_received: datetime
    due_decided: datetime
    due_completed: datetime

    @property
    def next_due(self) -> tuple[str, datetime] | None:
        """The clock this department is on (the stage it owes next) and when it is due."""
        clock = Stage(self.stage).waiting_on
        if clock is None:
            return None
        due = {"received": self.due_received, "decided": self.due_decided, "completed": self.due_completed}
        return clock.value, due[clock.value]


class InboxStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")  # a stored referral survives power loss
        self.db.executescript(SCHEMA)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # --- referrals -----------------------------------------------------------------------------
    def add(self, db: sqlite3.Connection, referral: Referral) -> bool:
        """Store a referral once (a redelivered one is ignored); True when it is new."""
        due = referral.due
        cursor = db.execute(
            "INSERT OR IGNORE INTO referrals VALUES (?, ?, 'routed', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                referral.referral_id,
                referral.report_id,
                referral.category.value,
                referral.priority.value,
                referral.role.value,
                int(referral.case_owner_required),
                referral.routed_at.isoformat(),
                due.received.isoformat(),
                due.decided.isoformat(),
                due.completed.isoformat(),
                referral.model_dump_json(),
            ),
        )
        return cursor.rowcount == 1

    def item(self, referral_id: str) -> InboxItem | None:
        row = self.db.execute(f"SELECT {_ITEM_COLUMNS} FROM referrals WHERE referral_id = ?", (referral_id,)).fetchone()
        return _item(row) if row else None

    def find(self, prefix: str) -> list[str]:
        """Referral ids starting with ``prefix`` (people type the first few characters)."""
        like = prefix.replace("%", "").replace("_", "\\_") + "%"
        return [
            r[0]
            for r in self.db.execute(
                "SELECT referral_id FROM referrals WHERE referral_id LIKE ? ESCAPE '\\' LIMIT 3", (like,)
            )
        ]

    def referral(self, referral_id: str) -> Referral | None:
        row = self.db.execute("SELECT referral FROM referrals WHERE referral_id = ?", (referral_id,)).fetchone()
        return Referral.model_validate_json(row[0]) if row else None

    def items(self, stages: tuple[str, ...] = OPEN_STAGES) -> list[InboxItem]:
        """The referrals at ``stages`` (default: the open ones), most urgent and soonest due first."""
        marks = ",".join("?" * len(stages))
        rows = self.db.execute(
            f"SELECT {_ITEM_COLUMNS} FROM referrals WHERE stage IN ({marks}) ORDER BY "
            "CASE priority WHEN 'critical' THEN 0 WHEN 'high' THEN 1 ELSE 2 END, due_decided, referral_id",
            stages,
        )
        return [_item(r) for r in rows]

    def set_stage(self, db: sqlite3.Connection, referral_id: str, stage: str) -> None:
        db.execute("UPDATE referrals SET stage = ? WHERE referral_id = ?", (stage, referral_id))

    # --- acks waiting to be sent ---------------------------------------------------------------
    def queue(self, db: sqlite3.Connection, ack: Ack) -> None:
        db.execute(
            "INSERT OR IGNORE INTO outbox (ack_id, ack, queued_at) VALUES (?, ?, ?)",
            (ack.ack_id, ack.model_dump_json(), time.time()),
        )

    def unsent(self) -> list[Ack]:
        rows = self.db.execute("SELECT ack FROM outbox WHERE sent_at IS NULL ORDER BY queued_at, ack_id")
        return [Ack.model_validate_json(r[0]) for r in rows]

    def mark_sent(self, ack_ids: list[str]) -> None:
        with self.transaction() as db:
            db.executemany("UPDATE outbox SET sent_at = ? WHERE ack_id = ?", [(time.time(), a) for a in ack_ids])

    def acks(self, referral_id: str) -> list[tuple[Ack, bool]]:
        """This department's acks of one referral, oldest first, each with whether Kafka has it."""
        rows = self.db.execute(
            "SELECT ack, sent_at IS NOT NULL FROM outbox WHERE json_extract(ack, '$.referral_id') = ? "
            "ORDER BY json_extract(ack, '$.at'), queued_at",
            (referral_id,),
        )
        return [(Ack.model_validate_json(a), bool(sent)) for a, sent in rows]

    # --- access records waiting to be sent ----------------------------------------------------
    def queue_access(self, db: sqlite3.Connection, event: AccessEvent) -> None:
        db.execute(
            "INSERT OR IGNORE INTO access_outbox (access_id, access, queued_at) VALUES (?, ?, ?)",
            (event.access_id, event.model_dump_json(), time.time()),
        )

    def unsent_access(self) -> list[AccessEvent]:
        rows = self.db.execute("SELECT access FROM access_outbox WHERE sent_at IS NULL ORDER BY queued_at, access_id")
        return [AccessEvent.model_validate_json(r[0]) for r in rows]

    def mark_access_sent(self, access_ids: list[str]) -> None:
        with self.transaction() as db:
            db.executemany(
                "UPDATE access_outbox SET sent_at = ? WHERE access_id = ?", [(time.time(), a) for a in access_ids]
            )

    def counts(self) -> dict[str, int]:
        out = dict(self.db.execute("SELECT stage, count(*) FROM referrals GROUP BY stage").fetchall())
        out["acks_unsent"] = self.db.execute("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetchone()[0]
        out["access_unsent"] = self.db.execute("SELECT count(*) FROM access_outbox WHERE sent_at IS NULL").fetchone()[0]
        return out

    def close(self) -> None:
        self.db.close()


_ITEM_COLUMNS = (
    "referral_id, report_id, stage, category, priority, role, case_owner_required, routed_at, "
    "due_received, due_decided, due_completed"
)


def _item(row: tuple) -> InboxItem:  # type: ignore[type-arg]
    (referral_id, report_id, stage, category, priority, role, owner, routed, d_received, d_decided, d_completed) = row
    parse = datetime.fromisoformat
    return InboxItem(
        referral_id,
        report_id,
        stage,
        category,
        priority,
        role,
        bool(owner),
        parse(routed),
        parse(d_received),
        parse(d_decided),
        parse(d_completed),
    )


def dumps(item: InboxItem) -> str:
    """One line of JSON for scripts (``--json``)."""
    data = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in item.__dict__.items()}
    return json.dumps(data, sort_keys=True)
