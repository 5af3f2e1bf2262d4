"""The durable outbox: an accepted report is on disk before its ``202`` is sent.

One SQLite database per adapter, in WAL mode with ``synchronous=FULL`` (every
commit is fsynced). A single writer thread owns every write and does *group
commit*: it takes whatever requests queued up while the previous commit was
being fsynced (up to ``commit_max_rows``, optionally lingering a little for
more), applies them in one transaction, commits once, then resolves each
request's future. Concurrent requests therefore share fsyncs.

Tables
------
``outbox``    the exact bytes to publish (``dump_event(report)``) in ``seq`` order,
              ``sent_ms`` set once the broker acknowledged them. Published rows are
              pruned after ``sent_retention`` (they hold personal data: keep them only
              as long as a replay might be needed).
``receipts``  ids only (report id, source system, the sender's ``source_ref`` and
              ``Idempotency-Key``, time received): the idempotency index. Kept for
              the longer ``receipt_retention``: a retry within it is recognised as a
              duplicate even after the report itself left the outbox. After it, the
              same ``source_ref`` would be taken as a new report; choose the
              retention longer than any sender's retry horizon.
``statuses``  the highest-``seq`` ReportStatus per report of this source (codes only),
``status_offsets`` where the status consumer resumes.

Over 400 lines for one job: the writer thread owns every write, so group commit,
receipts, statuses and pruning share its queue and its one connection.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    report_id TEXT NOT NULL UNIQUE,
    created_ms INTEGER NOT NULL,
    payload BLOB NOT NULL,
    sent_ms INTEGER
);
CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox(seq) WHERE sent_ms IS NULL;
CREATE INDEX IF NOT EXISTS outbox_sent ON outbox(sent_ms) WHERE sent_ms IS NOT NULL;
CREATE TABLE IF NOT EXISTS receipts (
    report_id TEXT PRIMARY KEY,
    source_system TEXT NOT NULL,
    source_ref TEXT NOT NULL,
    idempotency_key TEXT,
    received_at TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    UNIQUE (source_system, source_ref),
    UNIQUE (source_system, idempotency_key)
);
CREATE INDEX IF NOT EXISTS receipts_created ON receipts(created_ms);
CREATE TABLE IF NOT EXISTS statuses (
    report_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS status_offsets (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
);
"""


class OutboxError(RuntimeError):
    """The outbox could not store a request (disk full, I/O error); the client may retry."""


class OutboxClosed(OutboxError):
    """The outbox is shutting down."""


class BacklogFull(OutboxError):
    """Too many unsent reports: Kafka has been away too long. Retry later."""


@dataclass(frozen=True, slots=True)
class Intake:
    """One accepted report to store."""

    report_id: str
    source_system: str
    source_ref: str
    idempotency_key: str | None
    received_at: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class Receipt:
    report_id: str
    received_at: str
    duplicate: bool


@dataclass(frozen=True, slots=True)
class Pending:
    """An unsent outbox row, for the relay."""

    seq: int
    report_id: str
    payload: bytes
    created_ms: int


@dataclass(frozen=True, slots=True)
class ReceiptView:
    """What GET /v1/reports/{id} shows: the receipt, publication and the latest status."""

    report_id: str
    source_system: str
    source_ref: str
    received_at: str
    published: bool
    published_ms: int | None
    status: bytes | None


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class _Op:
    __slots__ = ("kind", "args", "future", "weight", "loop")

    def __init__(self, kind: str, args: Any, weight: int = 1, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.kind = kind
        self.args = args
        self.weight = weight
        # Either a thread future, or an asyncio future of ``loop`` settled on that loop.
        self.loop = loop
        self.future: Any = loop.create_future() if loop is not None else Future()


def _settle(outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    """On the event loop: settle the futures of one commit in one go."""
    for future, result, error in outcomes:
        if future.done():  # the request was cancelled (client went away)
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)


_STOP = object()

# Rows per multi-row statement; larger groups are stored row by row. At 6 parameters a
# row this stays below the 32,766 bound parameters of every SQLite since 3.32 (the
# writer also checks the library's own limit).
_ROWS_PER_STATEMENT = 2000
_RECEIPTS = "receipts(report_id, source_system, source_ref, idempotency_key, received_at, created_ms)"
_T = TypeVar("_T")


def _receipt_row(e: Intake, now_ms: int) -> tuple[Any, ...]:
    return (e.report_id, e.source_system, e.source_ref, e.idempotency_key, e.received_at, now_ms)


def _chunks(items: Sequence[_T], size: int) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Outbox:
    """The outbox database and its writer thread. Reads may come from any thread."""

    def __init__(
        self,
        path: Path,
        *,
        backlog_limit: int = 100_000,
        commit_max_rows: int = 512,
        commit_linger_ms: float = 0.0,
        clock_ms: Callable[[], int] = _now_ms,
    ) -> None:
        self.path = Path(path)
        # The outbox holds personal data until it is published: owner-only folder and file.
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not self.path.exists():
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        self.backlog_limit = backlog_limit
        self.commit_max_rows = commit_max_rows
        self.commit_linger_s = commit_linger_ms / 1000.0
        self.clock_ms = clock_ms
        self.unsent_event = threading.Event()  # set after new rows are committed
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._closed = False
        self.commits = 0  # transactions committed (for tests and metrics)
        self.commit_rows = 0
        self.on_commit: Callable[[int], None] | None = None  # rows per commit, for a histogram
        conn = self._connect()
        self._init_schema(conn)
        self._backlog = conn.execute("SELECT COUNT(*) FROM outbox WHERE sent_ms IS NULL").fetchone()[0]
        self._writer_conn = conn
        self._rows_per_statement = min(_ROWS_PER_STATEMENT, conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // 6)
        self._thread = threading.Thread(target=self._run, name="outbox-writer", daemon=True)
        self._thread.start()

    # -- connections -------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30.0)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    def _init_schema(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise OutboxError(
                f"{self.path} was written by a newer cluebus (outbox schema {version}); "
                "upgrade this adapter or give it another outbox folder"
            )
        conn.executescript(_SCHEMA)
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:
                raise OutboxClosed("the outbox is closed")
            conn = self._connect()
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    # -- state -----------------------------------------------------------------------------
    @property
    def backlog(self) -> int:
        """Unsent rows (kept current by the writer)."""
        return self._backlog

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._closed

    def oldest_unsent_ms(self) -> int | None:
        row = (
            self._reader()
            .execute("SELECT created_ms FROM outbox WHERE sent_ms IS NULL ORDER BY seq LIMIT 1")
            .fetchone()
        )
        return row[0] if row else None

    def oldest_unsent_age_s(self) -> float:
        oldest = self.oldest_unsent_ms()
        return 0.0 if oldest is None else max(0.0, (self.clock_ms() - oldest) / 1000.0)

    # -- writes (through the writer thread) -------------------------------------------------
    def _submit(self, op: _Op) -> Any:
        if self._closed:
            raise OutboxClosed("the outbox is closed")
        self._queue.put(op)
        return op.future

    def submit(self, entries: Sequence[Intake]) -> Future[list[Receipt | OutboxError]]:
        """Store reports; the future gives, per entry, its Receipt or BacklogFull."""
        return self._submit(_Op("insert", list(entries), weight=max(1, len(entries))))

    def submit_async(self, entries: Sequence[Intake]) -> asyncio.Future[list[Receipt | OutboxError]]:
        """:meth:`submit` for a coroutine: an asyncio future of the running loop. All the
        futures of one commit are settled by a single callback on the loop."""
        loop = asyncio.get_running_loop()
        op = _Op("insert", list(entries), weight=max(1, len(entries)), loop=loop)
        return self._submit(op)  # type: ignore[no-any-return]

    def mark_sent(self, seqs: Iterable[int], sent_ms: int | None = None) -> Future[int]:
        seqs = list(seqs)
        return self._submit(_Op("sent", (seqs, sent_ms), weight=max(1, len(seqs) // 64)))

    def store_statuses(
        self, statuses: Sequence[tuple[str, int, int, bytes]], offsets: dict[tuple[str, int], int]
    ) -> Future[int]:
        """Keep the highest-seq status per report ``(report_id, seq, updated_ms, payload)``
        and the consumer's next offsets, in one transaction."""
        return self._submit(_Op("status", (list(statuses), dict(offsets))))

    def prune(self, *, sent_before_ms: int, receipts_before_ms: int) -> Future[tuple[int, int]]:
        return self._submit(_Op("prune", (sent_before_ms, receipts_before_ms)))

    # -- reads -------------------------------------------------------------------------------
    def fetch_unsent(self, limit: int) -> list[Pending]:
        rows = (
            self._reader()
            .execute(
                "SELECT seq, report_id, payload, created_ms FROM outbox WHERE sent_ms IS NULL ORDER BY seq LIMIT ?",
                (limit,),
            )
            .fetchall()
        )
        return [Pending(*row) for row in rows]

    def receipt(self, report_id: str) -> ReceiptView | None:
        conn = self._reader()
        row = conn.execute(
            "SELECT r.report_id, r.source_system, r.source_ref, r.received_at, "
            "       o.seq IS NULL OR o.sent_ms IS NOT NULL, o.sent_ms, s.payload "
            "FROM receipts r LEFT JOIN outbox o ON o.report_id = r.report_id "
            "LEFT JOIN statuses s ON s.report_id = r.report_id WHERE r.report_id = ?",
            (report_id,),
        ).fetchone()
        if row is None:
            return None
        return ReceiptView(row[0], row[1], row[2], row[3], bool(row[4]), row[5], row[6])

    def status_offsets(self, topic: str) -> dict[int, int]:
        rows = (
            self._reader()
            .execute("SELECT partition, next_offset FROM status_offsets WHERE topic = ?", (topic,))
            .fetchall()
        )
        return dict(rows)

    def counts(self) -> dict[str, int]:
        conn = self._reader()
        return {
            "outbox": conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0],
            "unsent": conn.execute("SELECT COUNT(*) FROM outbox WHERE sent_ms IS NULL").fetchone()[0],
            "receipts": conn.execute("SELECT COUNT(*) FROM receipts").fetchone()[0],
            "statuses": conn.execute("SELECT COUNT(*) FROM statuses").fetchone()[0],
        }

    # -- the writer --------------------------------------------------------------------------
    def _run(self) -> None:
        conn = self._writer_conn
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                break
            ops: list[_Op] = [first]
            weight = first.weight
            deadline = time.monotonic() + self.commit_linger_s
            while weight < self.commit_max_rows:
                try:
                    if self.commit_linger_s > 0:
                        remaining = deadline - time.monotonic()
                        nxt = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                    else:
                        nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stopping = True
                    break
                ops.append(nxt)
                weight += nxt.weight
            self._execute(conn, ops)
        # Fail whatever is still queued: its callers get a retryable error.
        while True:
            try:
                op = self._queue.get_nowait()
            except queue.Empty:
                break
            if op is not _STOP:
                self._resolve([op], [None], OutboxClosed("the outbox is closed"))
        conn.close()

    def _execute(self, conn: sqlite3.Connection, ops: list[_Op]) -> None:
        state = {"new": 0, "sent": 0}
        results: list[Any] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for inserts, run in itertools.groupby(ops, key=lambda op: op.kind == "insert"):
                if not inserts:
                    results.extend(getattr(self, f"_apply_{op.kind}")(conn, op.args, state) for op in run)
                    continue
                # The requests queued together are stored together (see _apply_inserts);
                # each gets back the outcomes of its own entries.
                group = list(run)
                outcomes = iter(self._apply_inserts(conn, [e for op in group for e in op.args], state))
                results.extend([next(outcomes) for _ in op.args] for op in group)
            conn.execute("COMMIT")
        except Exception as exc:  # noqa: BLE001 - every caller must hear about it
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            error = OutboxError(f"outbox write failed ({type(exc).__name__})")
            self._resolve(ops, [None] * len(ops), error)
            return
        self.commits += 1
        rows = sum(op.weight for op in ops)
        self.commit_rows += rows
        self._backlog += state["new"] - state["sent"]
        self._resolve(ops, results, None)
        if state["new"]:
            self.unsent_event.set()
        if self.on_commit is not None:
            try:
                self.on_commit(rows)
            except Exception:  # noqa: BLE001, S110 - a metrics hook must not break the writer
                pass

    @staticmethod
    def _resolve(ops: list[_Op], results: list[Any], error: BaseException | None) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Any, Any, BaseException | None]]] = {}
        for op, result in zip(ops, results, strict=True):
            if op.loop is None:
                if op.future.done():  # cancelled by its caller
                    continue
                if error is not None:
                    op.future.set_exception(error)
                else:
                    op.future.set_result(result)
            else:
                by_loop.setdefault(op.loop, []).append((op.future, result, error))
        for loop, outcomes in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle, outcomes)
            except RuntimeError:  # that loop is closed: nobody waits any more
                pass

    def _apply_inserts(self, conn: sqlite3.Connection, entries: list[Intake], state: dict[str, int]) -> list[Any]:
        """Store a group of intakes: one multi-row statement per table when every one is new.

        Python's sqlite3 releases the GIL around every statement and must take it back
        afterwards, behind the busy event loop: with two statements per request, a
        commit of 16 requests waited ~12 ms for the GIL while its fsync took 0.4 ms. So
        the common case (no duplicate, room in the backlog) takes one plain INSERT per
        table for the whole group. A duplicate makes the receipts INSERT fail as a whole
        (SQLite undoes that one statement, the transaction goes on), and the group is
        then stored one by one, with the exact per-request answers of :meth:`_apply_insert`.
        """
        room = self.backlog_limit - (self._backlog + state["new"] - state["sent"])
        if len(entries) < 2 or len(entries) > min(room, self._rows_per_statement):
            return self._apply_insert(conn, entries, state)
        now = self.clock_ms()
        try:
            conn.execute(
                f"INSERT INTO {_RECEIPTS} VALUES " + ",".join(["(?,?,?,?,?,?)"] * len(entries)),
                [value for e in entries for value in _receipt_row(e, now)],
            )
        except sqlite3.IntegrityError:  # a duplicate (or a repeat within the group)
            return self._apply_insert(conn, entries, state)
        conn.execute(
            "INSERT INTO outbox(report_id, created_ms, payload) VALUES " + ",".join(["(?,?,?)"] * len(entries)),
            [value for e in entries for value in (e.report_id, now, e.payload)],
        )
        state["new"] += len(entries)
        return [Receipt(e.report_id, e.received_at, False) for e in entries]

    def _apply_insert(self, conn: sqlite3.Connection, entries: list[Intake], state: dict[str, int]) -> list[Any]:
        """Store intakes one by one: a duplicate gets its original receipt, and beyond the
        backlog limit a new report gets BacklogFull."""
        out: list[Any] = []
        now = self.clock_ms()
        for e in entries:
            if self._backlog + state["new"] - state["sent"] < self.backlog_limit:
                # Common case, one statement: the receipt goes in unless this system has sent
                # this source_ref (or Idempotency-Key) before.
                inserted = conn.execute(
                    f"INSERT OR IGNORE INTO {_RECEIPTS} VALUES (?,?,?,?,?,?)", _receipt_row(e, now)
                ).rowcount
                if inserted:
                    # Same transaction: if this fails, the whole group rolls back and every
                    # caller hears so; a receipt never exists without its report.
                    conn.execute(
                        "INSERT INTO outbox(report_id, created_ms, payload) VALUES (?,?,?)",
                        (e.report_id, now, e.payload),
                    )
                    state["new"] += 1
                    out.append(Receipt(e.report_id, e.received_at, False))
                    continue
            original = self._original(conn, e)
            if original is not None:
                out.append(original)
            elif self._backlog + state["new"] - state["sent"] >= self.backlog_limit:
                out.append(BacklogFull(f"{self._backlog} reports wait for Kafka; retry later"))
            else:  # ignored for another reason: the report id itself (practically impossible)
                out.append(OutboxError("conflicting report id"))
        return out

    @staticmethod
    def _original(conn: sqlite3.Connection, e: Intake) -> Receipt | None:
        """The receipt this system got for the same Idempotency-Key or source_ref, if any."""
        row = None
        if e.idempotency_key is not None:
            row = conn.execute(
                "SELECT report_id, received_at FROM receipts WHERE source_system=? AND idempotency_key=?",
                (e.source_system, e.idempotency_key),
            ).fetchone()
        if row is None:
            row = conn.execute(
                "SELECT report_id, received_at FROM receipts WHERE source_system=? AND source_ref=?",
                (e.source_system, e.source_ref),
            ).fetchone()
        return Receipt(row[0], row[1], True) if row is not None else None

    def _apply_sent(self, conn: sqlite3.Connection, args: tuple[list[int], int | None], state: dict[str, int]) -> int:
        seqs, sent_ms = args
        sent_ms = self.clock_ms() if sent_ms is None else sent_ms
        before = conn.total_changes
        for chunk in _chunks(seqs, self._rows_per_statement):  # one statement, not one per row
            conn.execute(
                "UPDATE outbox SET sent_ms=? WHERE sent_ms IS NULL AND seq IN (" + ",".join(["?"] * len(chunk)) + ")",
                [sent_ms, *chunk],
            )
        changed = conn.total_changes - before
        state["sent"] += changed
        return changed

    def _apply_status(
        self,
        conn: sqlite3.Connection,
        args: tuple[list[tuple[str, int, int, bytes]], dict[tuple[str, int], int]],
        state: dict[str, int],
    ) -> int:
        statuses, offsets = args
        before = conn.total_changes
        conn.executemany(
            "INSERT INTO statuses(report_id, seq, updated_ms, payload) VALUES (?,?,?,?) "
            "ON CONFLICT(report_id) DO UPDATE SET seq=excluded.seq, "
            "updated_ms=excluded.updated_ms, "
            "payload=excluded.payload WHERE excluded.seq > statuses.seq",
            statuses,
        )
        changed = conn.total_changes - before
        conn.executemany(
            "INSERT INTO status_offsets(topic, partition, next_offset) VALUES (?,?,?) "
            "ON CONFLICT(topic, partition) DO UPDATE SET next_offset=excluded.next_offset",
            ((t, p, o) for (t, p), o in offsets.items()),
        )
        return changed

    def _apply_prune(self, conn: sqlite3.Connection, args: tuple[int, int], state: dict[str, int]) -> tuple[int, int]:
        sent_before, receipts_before = args
        outbox = conn.execute("DELETE FROM outbox WHERE sent_ms IS NOT NULL AND sent_ms < ?", (sent_before,)).rowcount
        # A receipt goes only once its report has been published (never an unsent one).
        receipts = conn.execute(
            "DELETE FROM receipts WHERE created_ms < ? AND report_id NOT IN "
            "(SELECT report_id FROM outbox WHERE sent_ms IS NULL)",
            (receipts_before,),
        ).rowcount
        conn.execute("DELETE FROM statuses WHERE report_id NOT IN (SELECT report_id FROM receipts)")
        return outbox, receipts

    # -- lifecycle -------------------------------------------------------------------------------
    def close(self, timeout: float = 30.0) -> None:
        """Apply what is queued, stop the writer and close every connection."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join(timeout)
        with self._readers_lock:
            for conn in self._readers:
                try:
                    conn.close()
                except sqlite3.Error:
                    pass
            self._readers.clear()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
