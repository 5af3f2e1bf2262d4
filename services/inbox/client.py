"""``DepartmentInbox``: how a department receives its referrals and acknowledges them.

A small kafka-python library (the CLI ``cluebus inbox <department>`` is a thin
layer over it). ``sync`` reads the department's referral topic (the one the
rules name: ``CompiledRules.referral_topic``) from the inbox's committed
offsets, stores each new referral locally with a queued ``received``
acknowledgement, sends queued acks, and only then commits the offsets: a
crash at any point replays referrals (stored once, by id) and resends acks
(idempotent, by deterministic ack id), never loses either.

``show`` is the one way to read a referral's content, and it queues an
access record (:class:`~schemas.events.AccessEvent`: who, which field groups,
when, through which channel) in the same store before it returns, sent to the
audit topic like the acks. Actions and openings take the person (``by``) per
call, so one inbox serves every signed-in person of a department (the web
console); the constructor's ``user`` is the default (the CLI's ``--user``).

The inbox reads its partitions by assignment under its own consumer group
(``<prefix>-inbox-<department>``), which it uses for committed offsets only:
one inbox store per department, no group join to wait for.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kafka import TopicPartition
from kafka.errors import KafkaError
from pydantic import ValidationError

from schemas import AccessChannel, AccessEvent, Ack, AckStage, DeclineReason, OutcomeCode, Referral, Stage
from schemas.events import STAFF_ID, field_groups
from schemas.lifecycle import ack_refusal
from services.common import kafka as clients
from services.common.logging import get_logger
from services.common.settings import KafkaSettings, TopicSettings
from services.inbox.store import InboxItem, InboxStore
from services.rules import CompiledRules

log = get_logger(__name__)


class InboxError(RuntimeError):
    """A refused action or an inbox that cannot work; the message says what to do."""


@dataclass(frozen=True)
class SyncResult:
    new: int  # referrals stored for the first time
    seen: int  # referral records read (redeliveries included)
    unreadable: int  # records that are not a valid referral of this department (skipped, counted)
    acks_sent: int
    caught_up: bool  # every partition was read to its end


class DepartmentInbox:
    def __init__(
        self,
        kafka: KafkaSettings,
        topics: TopicSettings,
        rules: CompiledRules,
        department: str,
        *,
        store: Path,
        user: str,
    ) -> None:
        _check_staff_id(user)
        if department not in rules.departments:
            known = ", ".join(sorted(rules.departments))
            raise InboxError(f"unknown department {department!r}; the rules name: {known}")
        self.kafka, self.topics, self.department, self.user = kafka, topics, department, user
        # The topic the router writes this department's referrals to: the rules say which (override included).
        self.topic = rules.referral_topic(department, topics.names)
        self.store = InboxStore(store)
        self._consumer: Any = None
        self._producer: Any = None

    # --- Kafka side ----------------------------------------------------------------------------
    def _consumer_for_topic(self) -> Any:
        if self._consumer is None:
            consumer = clients.consumer(
                self.kafka,
                group_id=self.topics.names.inbox_group(self.department),
                client_id=f"cluebus-inbox-{self.department}",
            )
            partitions = consumer.partitions_for_topic(self.topic)
            if not partitions:
                consumer.close()
                raise InboxError(
                    f"no partitions of {self.topic}: the topic does not exist or this user may not read it "
                    "(run `cluebus topics ensure`; check the department's ACLs)"
                )
            consumer.assign([TopicPartition(self.topic, p) for p in sorted(partitions)])
            self._consumer = consumer
        return self._consumer

    def _producer_for_acks(self) -> Any:
        if self._producer is None:
            self._producer = clients.producer(self.kafka, client_id=f"cluebus-inbox-{self.department}")
        return self._producer

    def sync(self, timeout_s: float = 10.0) -> SyncResult:
        """Take in new referrals (auto ``received``), send queued acks, commit what was handled."""
        import time

        consumer = self._consumer_for_topic()
        deadline = time.monotonic() + timeout_s
        new = seen = unreadable = sent = 0
        caught_up = False
        try:
            ends = consumer.end_offsets(consumer.assignment())
            while True:
                # Checked before polling: a poll of a caught-up inbox waits its whole timeout (500 ms),
                # which the web console's department thread would spend on every periodic sync.
                caught_up = all(consumer.position(tp) >= end for tp, end in ends.items())
                if caught_up or time.monotonic() >= deadline:
                    break
                batches = consumer.poll(timeout_ms=min(500, max(1, int((deadline - time.monotonic()) * 1000))))
                handled: dict[TopicPartition, int] = {}
                with self.store.transaction() as db:
                    for tp, records in batches.items():
                        for record in records:
                            seen += 1
                            referral = self._parse(record)
                            if referral is None:
                                unreadable += 1
                            elif self.store.add(db, referral):
                                new += 1
                                self.store.queue(
                                    db, self._ack(referral.referral_id, referral.report_id, AckStage.received)
                                )
                                # Its receipt is acknowledged (queued with it): the next clock is the decision's.
                                self.store.set_stage(db, referral.referral_id, AckStage.received.value)
                            handled[tp] = record.offset + 1
                sent += self._send_acks()
                if handled:
                    consumer.commit({tp: _offset(o) for tp, o in handled.items()})
        except KafkaError as exc:
            raise InboxError(
                f"Kafka refused or failed the sync ({type(exc).__name__}); what was stored is kept; run sync again"
            ) from None
        sent += self._send_acks()  # acks queued by earlier actions while Kafka was away
        log.info(
            "inbox synced", department=self.department, new=new, seen=seen, unreadable=unreadable, caught_up=caught_up
        )
        return SyncResult(new, seen, unreadable, sent, caught_up)

    def _parse(self, record: Any) -> Referral | None:
        try:
            referral = Referral.model_validate_json(record.value)
        except (ValidationError, ValueError, TypeError):
            referral = None
        if referral is None or referral.department != self.department:
            log.warning(
                "unreadable referral record skipped",
                department=self.department,
                partition=record.partition,
                offset=record.offset,
            )
            return None
        return referral

    def _send_acks(self) -> int:
        """Send queued acks (and access records); what Kafka did not confirm stays queued for the next call."""
        self._send_access()
        unsent = self.store.unsent()
        done = self._send(self.topics.names.acks, [(a.ack_id, a) for a in unsent], "acks")
        self.store.mark_sent(done)
        return len(done)

    def _send_access(self) -> int:
        unsent = self.store.unsent_access()
        done = self._send(self.topics.names.access_audit, [(e.access_id, e) for e in unsent], "access records")
        self.store.mark_access_sent(done)
        return len(done)

    def _send(self, topic: str, events: list[tuple[str, Ack | AccessEvent]], what: str) -> list[str]:
        """The ids of the events Kafka confirmed; keyed by report id like every per-report topic."""
        if not events:
            return []
        try:
            producer = self._producer_for_acks()
            futures = [
                (event_id, producer.send(topic, key=e.report_id.encode(), value=e.model_dump_json().encode()))
                for event_id, e in events
            ]
            producer.flush(timeout=30)
        except (KafkaError, clients.KafkaUnavailable) as exc:
            log.warning(
                f"{what} not sent yet; they stay queued",
                department=self.department,
                queued=len(events),
                error=type(exc).__name__,
            )
            return []
        return [event_id for event_id, f in futures if f.succeeded()]

    # --- what people do ------------------------------------------------------------------------
    def pending(self) -> list[InboxItem]:
        """Open referrals, most urgent and soonest due first."""
        return self.store.items()

    def all(self) -> list[InboxItem]:
        return self.store.items(tuple(Stage))

    def resolve(self, referral_id: str) -> str:
        """A full referral id from the id or its unique first characters."""
        if self.store.item(referral_id) is not None:
            return referral_id
        matches = self.store.find(referral_id) if len(referral_id) >= 4 else []
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise InboxError(f"{referral_id!r} matches several referrals; give more characters")
        raise InboxError(f"no referral {referral_id!r} in this inbox (run sync first?)")

    def item(self, referral_id: str) -> InboxItem:
        """One referral's ids, codes and clocks (no content: no access record)."""
        item = self.store.item(self.resolve(referral_id))
        assert item is not None
        return item

    def show(
        self, referral_id: str, *, by: str | None = None, channel: AccessChannel = AccessChannel.inbox
    ) -> Referral:
        """The referral as this department received it; records who opened it (stored before it is shown)."""
        by = _check_staff_id(by or self.user)
        referral = self.store.referral(self.resolve(referral_id))
        assert referral is not None
        event = AccessEvent(
            referral_id=referral.referral_id,
            report_id=referral.report_id,
            department=self.department,
            by=by,
            channel=channel,
            field_groups=field_groups([f for f in referral.fields if f.split(".", 1)[0] in referral.report]),
            at=datetime.now(UTC),
        )
        with self.store.transaction() as db:
            self.store.queue_access(db, event)
        self._send_access()
        log.info(
            "referral opened",
            department=self.department,
            referral_id=referral.referral_id,
            by=by,
            channel=channel.value,
            field_groups=len(event.field_groups),
        )
        return referral

    def history(self, referral_id: str) -> list[tuple[Ack, bool]]:
        """This department's acknowledgements of the referral, oldest first, with whether each was sent."""
        return self.store.acks(self.resolve(referral_id))

    def accept(self, referral_id: str, case_owner: str | None = None, *, by: str | None = None) -> Ack:
        return self._act(referral_id, AckStage.accepted, by, case_owner=case_owner)

    def decline(self, referral_id: str, reason_code: DeclineReason | str, reason: str, *, by: str | None = None) -> Ack:
        return self._act(
            referral_id,
            AckStage.declined,
            by,
            reason_code=_code(DeclineReason, reason_code, "reason code"),
            reason=reason,
        )

    def complete(
        self, referral_id: str, outcome_code: OutcomeCode | str, outcome: str, *, by: str | None = None
    ) -> Ack:
        return self._act(
            referral_id,
            AckStage.completed,
            by,
            outcome_code=_code(OutcomeCode, outcome_code, "outcome code"),
            outcome=outcome,
        )

    def _act(self, referral_id: str, stage: AckStage, by: str | None, **details: Any) -> Ack:
        by = _check_staff_id(by or self.user)
        item = self.store.item(self.resolve(referral_id))
        assert item is not None
        refusal = ack_refusal(
            item.stage, stage.value, case_owner_required=item.case_owner_required, case_owner=details.get("case_owner")
        )
        if refusal is not None:
            raise InboxError(f"{stage.value} refused: {refusal.message}")
        # Deciding implies receipt: record the receipt too (first), so the received clock is met.
        receipt = None
        if item.stage == "routed" and stage is not AckStage.received:
            receipt = self._ack(item.referral_id, item.report_id, AckStage.received, by=by)
        try:
            ack = self._ack(item.referral_id, item.report_id, stage, by=by, **details)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'ack'}: {e['msg']}" for e in exc.errors())
            raise InboxError(f"{stage.value} refused: {problems}") from None
        with self.store.transaction() as db:
            if receipt is not None:
                self.store.queue(db, receipt)
            self.store.queue(db, ack)
            self.store.set_stage(db, item.referral_id, stage.value)
        self._send_acks()
        log.info(
            "referral acknowledged", department=self.department, referral_id=item.referral_id, stage=stage.value, by=by
        )
        return ack

    def _ack(self, referral_id: str, report_id: str, stage: AckStage, by: str | None = None, **details: Any) -> Ack:
        return Ack(
            referral_id=referral_id,
            report_id=report_id,
            department=self.department,
            stage=stage,
            by=by or self.user,
            at=datetime.now(UTC),
            **{k: v for k, v in details.items() if v is not None},
        )

    def unsent_acks(self) -> int:
        return self.store.counts()["acks_unsent"]

    def unsent_access(self) -> int:
        return self.store.counts()["access_unsent"]

    def close(self) -> None:
        for client in (self._consumer, self._producer):
            if client is not None:
                try:
                    client.close()
                except Exception:  # noqa: BLE001 - closing must not hide the real outcome
                    log.debug("inbox client close failed")
        self.store.close()

    def __enter__(self) -> DepartmentInbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _check_staff_id(user: str) -> str:
    import re

    if not re.fullmatch(STAFF_ID, user):
        raise InboxError(f"user {user!r} is not a staff id (letters, digits, . _ @ -; at most 64)")
    return user


def _offset(offset: int) -> Any:
    from kafka.structs import OffsetAndMetadata

    try:
        return OffsetAndMetadata(offset, "", -1)
    except TypeError:  # older kafka-python: (offset, metadata)
        return OffsetAndMetadata(offset, "")


def _code(enum: Any, value: Any, what: str) -> Any:
    try:
        return enum(value)
    except ValueError:
        raise InboxError(f"unknown {what} {value!r}; one of: {', '.join(e.value for e in enum)}") from None
