"""The outbox: group commit, idempotency, backlog limit, crash safety, pruning, statuses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.adapters.outbox import BacklogFull, Intake, Outbox, OutboxClosed, Receipt, _Op
from services.common.ids import uuid7

REPO = Path(__file__).resolve().parents[3]


def intake(ref: str, system: str = "sys-a", key: str | None = None, payload: bytes | None = None) -> Intake:
    rid = uuid7()
    return Intake(rid, system, ref, key, "2026-01-01T00:00:00Z", payload or f'{{"id":"{rid}"}}'.encode())


@pytest.fixture
def outbox(tmp_path):
    box = Outbox(tmp_path / "outbox.sqlite3")
    yield box
    box.close()


def store(box: Outbox, *entries: Intake) -> list:
    return box.submit(list(entries)).result(10)


def test_database_is_wal_with_full_sync(outbox):
    conn = outbox._reader()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # synchronous is per connection: the writer's is what makes commits durable
    assert outbox._writer_conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_store_then_read_back_in_order(outbox):
    entries = [intake(f"ref-{i}") for i in range(5)]
    results = store(outbox, *entries)
    assert [r.report_id for r in results] == [e.report_id for e in entries]
    assert not any(r.duplicate for r in results)
    pending = outbox.fetch_unsent(10)
    assert [p.report_id for p in pending] == [e.report_id for e in entries]
    assert [p.payload for p in pending] == [e.payload for e in entries]
    assert outbox.backlog == 5


def test_same_source_ref_is_a_duplicate_with_the_original_id(outbox):
    first = store(outbox, intake("ref-1"))[0]
    again = store(outbox, intake("ref-1"))[0]
    assert again == Receipt(first.report_id, first.received_at, True)
    assert outbox.backlog == 1 and len(outbox.fetch_unsent(10)) == 1


def test_duplicates_inside_one_group_commit(outbox):
    a, b = intake("same"), intake("same")
    results = store(outbox, a, b)
    assert results[0].duplicate is False and results[1] == Receipt(a.report_id, a.received_at, True)


def test_same_ref_from_another_system_is_a_new_report(outbox):
    a = store(outbox, intake("ref-1", system="sys-a"))[0]
    b = store(outbox, intake("ref-1", system="sys-b"))[0]
    assert a.report_id != b.report_id and not b.duplicate


def test_idempotency_key_wins_over_a_new_source_ref(outbox):
    first = store(outbox, intake("ref-1", key="k-1"))[0]
    again = store(outbox, intake("ref-2", key="k-1"))[0]
    assert again.duplicate and again.report_id == first.report_id
    other = store(outbox, intake("ref-3", key="k-2"))[0]
    assert not other.duplicate


def test_concurrent_writers_share_commits(tmp_path):
    box = Outbox(tmp_path / "o.sqlite3", commit_linger_ms=5)
    try:
        futures = []
        lock = threading.Lock()

        def post(i: int) -> None:
            fut = box.submit([intake(f"c-{i}")])
            with lock:
                futures.append(fut)

        threads = [threading.Thread(target=post, args=(i,)) for i in range(200)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        results = [f.result(10)[0] for f in futures]
        assert len({r.report_id for r in results}) == 200
        assert box.commits < 100, f"{box.commits} commits for 200 writes: no grouping"
        assert box.backlog == 200
    finally:
        box.close()


def test_backlog_limit_refuses_new_reports_but_answers_duplicates(tmp_path):
    box = Outbox(tmp_path / "o.sqlite3", backlog_limit=2)
    try:
        a, b, c = store(box, intake("a"), intake("b"), intake("c"))
        assert isinstance(a, Receipt) and isinstance(b, Receipt) and isinstance(c, BacklogFull)
        dup = store(box, intake("a"))[0]
        assert isinstance(dup, Receipt) and dup.duplicate
        seqs = [p.seq for p in box.fetch_unsent(10)]
        assert box.mark_sent(seqs[:1]).result(10) == 1
        assert isinstance(store(box, intake("c"))[0], Receipt)
    finally:
        box.close()


def _commit_together(box: Outbox, groups: list[list[Intake]]) -> list[list]:
    """Run one group commit of several queued requests, as the writer would."""
    ops = [_Op("insert", group, weight=len(group)) for group in groups]
    box._execute(box._writer_conn, ops)  # the writer thread is idle, waiting on its queue
    return [op.future.result(10) for op in ops]


def test_a_group_commit_takes_one_insert_per_table(outbox):
    # sqlite3 gives up the GIL for every statement and waits to get it back behind the busy
    # event loop: a group of requests must not cost two statements per request.
    statements: list[str] = []
    outbox._writer_conn.set_trace_callback(statements.append)
    results = _commit_together(outbox, [[intake(f"g-{i}")] for i in range(20)] + [[]])
    outbox._writer_conn.set_trace_callback(None)
    assert all(not r[0].duplicate for r in results[:20]) and results[20] == []
    inserts = [s.split("(")[0].strip() for s in statements if s.startswith("INSERT")]
    assert inserts == ["INSERT INTO receipts", "INSERT INTO outbox"], statements
    assert [p.report_id for p in outbox.fetch_unsent(50)] == [r[0].report_id for r in results[:20]]
    seqs = [p.seq for p in outbox.fetch_unsent(50)]
    statements.clear()
    outbox._writer_conn.set_trace_callback(statements.append)
    assert outbox.mark_sent(seqs).result(10) == 20
    outbox._writer_conn.set_trace_callback(None)
    assert len([s for s in statements if s.startswith("UPDATE")]) == 1


_REFS = st.sampled_from(["r1", "r2", "r3", "r4", "r5", "r6"])
_KEYS = st.none() | st.sampled_from(["k1", "k2"])
_SYSTEMS = st.sampled_from(["sys-a", "sys-b"])
_GROUPS = st.lists(st.lists(st.tuples(_REFS, _KEYS, _SYSTEMS), max_size=4), min_size=1, max_size=6)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(earlier=_GROUPS, groups=_GROUPS, limit=st.integers(1, 12))
def test_group_commits_answer_exactly_as_one_request_at_a_time(tmp_path_factory, earlier, groups, limit):
    """Duplicates across and within requests, Idempotency-Keys and the backlog limit: a
    group commit gives every request the answer it gets when stored on its own."""
    folder = tmp_path_factory.mktemp("o")
    grouped, alone = (Outbox(folder / f"{n}.sqlite3", backlog_limit=limit) for n in ("g", "a"))
    try:
        before = [[intake(r, system=s, key=k) for r, k, s in g] for g in earlier]
        batch = [[intake(r, system=s, key=k) for r, k, s in g] for g in groups]
        for box in (grouped, alone):
            for group in before:  # some receipts already stored
                store(box, *group)
        got = _commit_together(grouped, batch)
        want = [[store(alone, e)[0] for e in group] for group in batch]

        def same(a: object, b: object) -> bool:
            return a == b if isinstance(a, Receipt) else type(a) is type(b)

        assert len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            assert len(g) == len(w) and all(same(x, y) for x, y in zip(g, w, strict=True)), (g, w)
        for query in (
            "SELECT report_id, source_system, source_ref, idempotency_key FROM receipts ORDER BY report_id",
            "SELECT report_id, payload FROM outbox ORDER BY seq",
        ):
            assert grouped._reader().execute(query).fetchall() == alone._reader().execute(query).fetchall()
        assert grouped.backlog == alone.backlog
    finally:
        grouped.close()
        alone.close()


def test_mark_sent_only_counts_unsent_rows(outbox):
    store(outbox, intake("a"), intake("b"))
    seqs = [p.seq for p in outbox.fetch_unsent(10)]
    assert outbox.mark_sent(seqs).result(10) == 2
    assert outbox.mark_sent(seqs).result(10) == 0
    assert outbox.backlog == 0 and outbox.fetch_unsent(10) == []


def test_everything_survives_reopening(tmp_path):
    path = tmp_path / "o.sqlite3"
    box = Outbox(path)
    first = store(box, intake("a"), intake("b"))
    box.mark_sent([box.fetch_unsent(1)[0].seq]).result(10)
    box.close()
    again = Outbox(path)
    try:
        assert again.backlog == 1
        assert [p.report_id for p in again.fetch_unsent(10)] == [first[1].report_id]
        assert store(again, intake("a"))[0].report_id == first[0].report_id
    finally:
        again.close()


def test_a_committed_report_survives_sigkill(tmp_path):
    """A child stores a report, prints its id once the commit returned, and is SIGKILLed."""
    path = tmp_path / "o.sqlite3"
    code = f"""
import sys, time
sys.path.insert(0, {str(REPO)!r})
from services.adapters.outbox import Outbox, Intake
box = Outbox({str(path)!r})
entry = Intake("01890000-0000-7000-8000-000000000001", "sys", "crash-1", None, "t", b"payload")
r = box.submit([entry]).result()[0]
print(r.report_id, flush=True)
time.sleep(60)
"""
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().strip()
        assert line == "01890000-0000-7000-8000-000000000001"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    box = Outbox(path)
    try:
        assert [(p.report_id, p.payload) for p in box.fetch_unsent(10)] == [(line, b"payload")]
    finally:
        box.close()


def test_prune_keeps_unsent_reports_and_young_receipts(tmp_path):
    now = [1_000_000_000]
    box = Outbox(tmp_path / "o.sqlite3", clock_ms=lambda: now[0])
    try:
        old_sent, old_unsent = store(box, intake("old-sent"), intake("old-unsent"))
        box.mark_sent([box.fetch_unsent(1)[0].seq], sent_ms=now[0]).result(10)
        now[0] += 10_000
        young = store(box, intake("young"))[0]
        outbox_rows, receipts = box.prune(sent_before_ms=now[0] - 5_000, receipts_before_ms=now[0] - 5_000).result(10)
        assert (outbox_rows, receipts) == (1, 1)
        assert {p.report_id for p in box.fetch_unsent(10)} == {
            old_unsent.report_id,
            young.report_id,
        }
        assert box.receipt(old_sent.report_id) is None  # receipt gone: beyond its retention
        assert box.receipt(old_unsent.report_id) is not None  # never while unsent
        # Within the receipt retention, a published-and-pruned report is still a duplicate.
        box.mark_sent([p.seq for p in box.fetch_unsent(10)]).result(10)
        box.prune(sent_before_ms=now[0] + 1, receipts_before_ms=0).result(10)
        assert box.counts()["outbox"] == 0
        view = box.receipt(young.report_id)
        assert view is not None and view.published and view.published_ms is None
        assert store(box, intake("young"))[0].report_id == young.report_id
    finally:
        box.close()


def test_statuses_keep_the_highest_seq_and_offsets(outbox):
    rid = store(outbox, intake("a"))[0].report_id
    outbox.store_statuses([(rid, 2, 1, b"two")], {("t", 0): 5}).result(10)
    outbox.store_statuses([(rid, 1, 2, b"one")], {("t", 0): 6}).result(10)
    assert outbox.receipt(rid).status == b"two"
    outbox.store_statuses([(rid, 3, 3, b"three")], {("t", 1): 9}).result(10)
    assert outbox.receipt(rid).status == b"three"
    assert outbox.status_offsets("t") == {0: 6, 1: 9}


def test_closed_outbox_refuses(tmp_path):
    box = Outbox(tmp_path / "o.sqlite3")
    box.close()
    with pytest.raises(OutboxClosed):
        box.submit([intake("a")])


def test_submit_async_settles_on_the_loop(outbox):
    import asyncio

    async def main():
        results = await asyncio.gather(*(outbox.submit_async([intake(f"as-{i % 5}")]) for i in range(20)))
        return [r[0] for r in results]

    results = asyncio.run(main())
    assert sum(not r.duplicate for r in results) == 5 and outbox.backlog == 5


def test_outbox_files_are_private(tmp_path):
    box = Outbox(tmp_path / "private" / "o.sqlite3")
    try:
        assert (tmp_path / "private").stat().st_mode & 0o777 == 0o700
        assert (tmp_path / "private" / "o.sqlite3").stat().st_mode & 0o077 == 0
    finally:
        box.close()
