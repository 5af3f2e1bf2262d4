"""A reporter's status sequence stays gap-free and ordered when the router crashes (issue 17).

The tracker alone writes a report's statuses (seq 0 when it takes the decision in, +1 for
every change). A router SIGKILLed mid-stream re-routes the reports whose outputs it had not
yet marked, so the tracker can see a report's decision again after that report has moved
on. Here the router is killed while reports stream in, with the tracker running; the reports
decided before the kill are acknowledged (their status goes to seq 1), a second router routes
the rest, and then the decisions of the acknowledged reports are sent again exactly as the
killed router wrote them (what re-routing an unmarked report gives: the same decision), so
that the late duplicate reaches the tracker after the report's seq 1 whether or not the kill
happened to leave one. A second acknowledgement then moves those reports to seq 2.

Read from the status topic (keyed by report id, so one partition holds a report's statuses in
the order they were written), every report's sequence must start at 0 and grow by exactly one
(a record repeated whole is allowed: at-least-once), and must match the acknowledgements sent.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from datetime import UTC, datetime

import pytest
from kafka import KafkaProducer

from schemas import Ack, ReportStatus, RoutingDecision

from ..support import collect, many_reports, produce, records_held


def received_ack(decision: RoutingDecision, recipient: int) -> Ack:
    r = decision.recipients[recipient]
    return Ack(
        referral_id=r.referral_id,
        report_id=decision.report_id,
        department=r.department,
        stage="received",
        by="staff.1",
        at=datetime.now(UTC),
    )


def read_decisions(bootstrap: str, topic: str, done, timeout: float = 90.0) -> list:  # type: ignore[no-untyped-def]
    return collect(bootstrap, [topic], done=done, timeout=timeout)


def statuses_by_report(bootstrap: str, topic: str, done, timeout: float = 90.0) -> dict[str, list]:  # type: ignore[no-untyped-def]
    by_report: dict[str, list] = defaultdict(list)

    def grouped(messages: list) -> dict[str, list]:
        by_report.clear()
        for m in sorted(messages, key=lambda m: (m.partition, m.offset)):
            by_report[m.key.decode()].append(ReportStatus.model_validate_json(m.value))
        return by_report

    collect(bootstrap, [topic], done=lambda ms: done(grouped(ms)), timeout=timeout)
    return by_report


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_reporters_status_sequence_is_gap_free_and_ordered_after_a_router_crash(
    kafka_bootstrap, bus, services, service_env, rng
):
    reports = many_reports(240)
    ids = {r.report_id for r in reports}
    env = {**service_env, "CLUEBUS_SESSION_TIMEOUT_S": "3"}
    services("tracker", ["tracker", "--metrics-port", "0"], env)
    first = services("router-1", ["router", "--metrics-port", "0"], env)

    def stream() -> None:  # ~40 reports/s, so that the kill lands mid-stream
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True)
        try:
            for i in range(0, len(reports), 4):
                for r in reports[i : i + 4]:
                    producer.send(
                        bus.report(r.source.value), key=r.report_id.encode(), value=r.model_dump_json().encode()
                    )
                producer.flush(30)
                time.sleep(0.1)
        finally:
            producer.close()

    loader = threading.Thread(target=stream, daemon=True)
    loader.start()
    first.wait_for("report routed", timeout=90)
    time.sleep(rng.uniform(0.5, 2.0))
    first.kill()

    # What the killed router decided: acknowledged now, while no router runs.
    before = read_decisions(kafka_bootstrap, bus.decisions, done=lambda ms: False, timeout=3)
    decided = {}
    for m in before:
        decision = RoutingDecision.model_validate_json(m.value)
        decided.setdefault(decision.report_id, (decision, m.value))
    assert 0 < len(decided) < len(reports), f"the kill was not mid-stream: {len(decided)} of {len(reports)} decided"
    # Acknowledged only once the tracker has taken their decisions in (an earlier ack would wait
    # for the decision and be folded into seq 0).
    statuses_by_report(kafka_bootstrap, bus.status, done=lambda by: set(decided) <= set(by))
    produce(
        kafka_bootstrap,
        [(bus.acks, rid.encode(), received_ack(d, 0).model_dump_json().encode()) for rid, (d, _) in decided.items()],
    )

    services("router-2", ["router", "--metrics-port", "0"], env)
    loader.join(timeout=60)
    every = read_decisions(
        kafka_bootstrap,
        bus.decisions,
        done=lambda ms: {RoutingDecision.model_validate_json(m.value).report_id for m in ms} >= ids,
    )
    assert {RoutingDecision.model_validate_json(m.value).report_id for m in every} >= ids, "reports were lost"
    rerouted = len(every) - len(ids)

    # Every acknowledged report has moved to seq 1: now its decision arrives once more.
    statuses_by_report(
        kafka_bootstrap, bus.status, done=lambda by: all(any(s.seq >= 1 for s in by.get(rid, ())) for rid in decided)
    )
    produce(kafka_bootstrap, [(bus.decisions, rid.encode(), raw) for rid, (_, raw) in decided.items()])
    seconds = {rid: d for rid, (d, _) in decided.items() if len(d.recipients) > 1}
    produce(
        kafka_bootstrap,
        [(bus.acks, rid.encode(), received_ack(d, 1).model_dump_json().encode()) for rid, d in seconds.items()],
    )

    def settled(by: dict[str, list]) -> bool:
        return ids <= set(by) and all(max(s.seq for s in by[rid]) >= 2 for rid in seconds)

    by_report = statuses_by_report(kafka_bootstrap, bus.status, done=settled)
    assert settled(by_report), f"statuses missing for {len(ids - set(by_report))} reports"
    time.sleep(2)  # anything the duplicates would still cause
    by_report = statuses_by_report(kafka_bootstrap, bus.status, done=lambda by: False, timeout=4)
    print(
        f"reports={len(reports)} decided_before_kill={len(decided)} rerouted_by_the_crash={rerouted} "
        f"decisions_sent_again={len(decided)} statuses={sum(len(v) for v in by_report.values())}"
    )

    for rid in ids:
        sequence = by_report[rid]
        assert sequence[0].seq == 0, (rid, [s.seq for s in sequence])
        for earlier, later in zip(sequence, sequence[1:], strict=False):
            assert later.seq == earlier.seq + 1 or (
                later.seq == earlier.seq and later.departments == earlier.departments
            ), (rid, [s.seq for s in sequence])
        expected_last = 2 if rid in seconds else 1 if rid in decided else 0
        assert sequence[-1].seq == expected_last, (rid, [s.seq for s in sequence])


def check_sequences(by_report: dict[str, list], expected_last: dict[str, int]) -> None:
    """From 0, +1 at a time (a record repeated whole allowed), ending where the acknowledgements say."""
    for rid, last in expected_last.items():
        sequence = by_report[rid]
        seqs = [s.seq for s in sequence]
        assert sequence[0].seq == 0, (rid, seqs)
        for earlier, later in zip(sequence, sequence[1:], strict=False):
            assert later.seq == earlier.seq + 1 or (
                later.seq == earlier.seq and later.departments == earlier.departments
            ), (rid, seqs)
        assert sequence[-1].seq == last, (rid, seqs)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_tracker_killed_again_and_again_loses_no_state_and_leaves_no_gap(
    kafka_bootstrap, bus, services, service_env, rng
):
    """The tracker stores a report's state after its outputs are in, without waiting for them
    (``services/tracker/pending.py``): its input is acknowledged only after that. SIGKILLed at
    random moments while decisions and then acknowledgements stream in, and started again each
    time, it must neither lose a state (an acknowledged input whose state never reached the
    changelog: the report would stay at seq 0, or its acknowledgement be refused) nor skip a seq.
    The window itself is driven deterministically in tests/unit/tracker/test_pending.py."""
    reports = many_reports(240)
    ids = {r.report_id for r in reports}
    env = {**service_env, "CLUEBUS_SESSION_TIMEOUT_S": "3"}
    services("router", ["router", "--metrics-port", "0"], env)
    generation = 0

    def restart_tracker():  # type: ignore[no-untyped-def]
        nonlocal generation
        generation += 1
        return services(f"tracker-{generation}", ["tracker", "--metrics-port", "0"], env)

    def kill_while_working(tracker, kills: int):  # type: ignore[no-untyped-def]
        """Kill the tracker moments after it has written a new status, ``kills`` times, restarting it."""
        for _ in range(kills):
            before = records_held(kafka_bootstrap, [bus.status])
            deadline = time.monotonic() + 60
            while records_held(kafka_bootstrap, [bus.status]) <= before and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 0.3))  # mid-stream, outputs in flight
            tracker.kill()
            killed_after.append(records_held(kafka_bootstrap, [bus.status]) - before)
            tracker = restart_tracker()
        return tracker

    def send_paced(records: list[tuple[str, bytes, bytes]]) -> None:  # ~20 records/s: the kills land mid-stream
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True)
        try:
            for i in range(0, len(records), 4):
                for topic, key, value in records[i : i + 4]:
                    producer.send(topic, key=key, value=value)
                producer.flush(30)
                time.sleep(0.2)
        finally:
            producer.close()

    killed_after: list[int] = []  # statuses the tracker had written since its start when it was killed

    tracker = restart_tracker()
    loader = threading.Thread(
        target=send_paced,
        args=([(bus.report(r.source.value), r.report_id.encode(), r.model_dump_json().encode()) for r in reports],),
        daemon=True,
    )
    loader.start()
    tracker = kill_while_working(tracker, 3)
    loader.join(timeout=60)
    decided: dict[str, RoutingDecision] = {}
    for m in read_decisions(kafka_bootstrap, bus.decisions, done=lambda ms: len({m.key for m in ms}) >= len(ids)):
        decision = RoutingDecision.model_validate_json(m.value)
        decided.setdefault(decision.report_id, decision)
    assert set(decided) == ids, "reports were not routed"
    # Every report at seq 0 before its acknowledgement (an earlier one would be folded into seq 0).
    by_report = statuses_by_report(kafka_bootstrap, bus.status, done=lambda by: ids <= set(by))
    assert ids <= set(by_report), f"no status for {len(ids - set(by_report))} reports after 3 tracker kills"

    acks = [(bus.acks, rid.encode(), received_ack(d, 0).model_dump_json().encode()) for rid, d in decided.items()]
    loader = threading.Thread(target=send_paced, args=(acks,), daemon=True)
    loader.start()
    kill_while_working(tracker, 2)
    loader.join(timeout=60)

    def settled(by: dict[str, list]) -> bool:
        return ids <= set(by) and all(max(s.seq for s in by[rid]) >= 1 for rid in ids)

    by_report = statuses_by_report(kafka_bootstrap, bus.status, done=settled)
    time.sleep(2)  # anything a replay would still cause
    by_report = statuses_by_report(kafka_bootstrap, bus.status, done=lambda by: False, timeout=4)
    print(
        f"reports={len(ids)} tracker_kills={len(killed_after)} statuses_since_start_at_each_kill={killed_after} "
        f"statuses={sum(len(v) for v in by_report.values())}"
    )
    assert len(killed_after) == 5 and all(killed_after), "a kill did not land while the tracker worked"
    check_sequences(by_report, dict.fromkeys(ids, 1))
    for rid, decision in decided.items():
        first = decision.recipients[0].department
        stages = {d.department: d.stage.value for d in by_report[rid][-1].departments}
        assert stages[first] == "received", (rid, stages)
