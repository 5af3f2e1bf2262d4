"""The routing agent: one report in, one referral per recipient out.

At-least-once: offsets are committed after the sends are flushed. A report
is marked as routed in the table only after the broker acknowledged all of
its outputs; marking it earlier could let a crash lose referrals whose mark
survived. A report seen again before its mark is routed again with the same
referral ids, and consumers de-duplicate by referral id. A bad event goes to
the dead-letter topic (and the agent waits for the broker to have it) and the
stream goes on.

The outputs of a report are handed to the producer one after another without
waiting in between, and a callback on their delivery futures marks the report
once the last is acknowledged: no task per report.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from schemas import dump_event, parse_report
from services.common.logging import get_logger
from services.common.streams.guard import guarded_agent
from services.deadletter.letters import dead_letter
from services.router.metrics import RouterMetrics
from services.router.routing import encode_report
from services.router.topics import RouterTopics
from services.rules.reload import RulesHolder

log = get_logger(__name__)
SERVICE = "router"


def register(app: Any, topics: RouterTopics, seen: Any, holder: RulesHolder, metrics: RouterMetrics) -> Any:
    in_flight: set[bytes] = set()  # routed here, outputs not yet acknowledged

    def mark_when_delivered(key: bytes, version: bytes, deliveries: list[Any]) -> None:
        """Mark ``key`` as routed once every delivery is acknowledged; leave it unmarked if one fails."""
        state = {"left": len(deliveries), "failed": False}

        def delivered(future: Any) -> None:
            state["left"] -= 1
            if future.cancelled() or future.exception() is not None:
                state["failed"] = True
            if state["left"]:
                return
            in_flight.discard(key)
            if state["failed"]:  # not acknowledged: a repeat of the report is routed again
                log.warning("outputs not acknowledged; report left unmarked", report_id=key.decode())
            else:
                seen[key] = version

        for future in deliveries:
            future.add_done_callback(delivered)

    async def reject(event: Any, reason: str, exc: BaseException | str) -> None:
        letter = dead_letter(SERVICE, event.message, exc, cause="internal" if reason == "internal_error" else "input")
        await (await topics.send(topics.deadletter, event.message.key, dump_event(letter)))
        metrics.dead_letters.labels(reason=reason).inc()
        metrics.report(topics.report_topic_source.get(event.message.topic, "unknown"), "dead_lettered").inc()
        log.warning(
            "report dead-lettered",
            cause=reason,
            topic=event.message.topic,
            partition=event.message.partition,
            offset=event.message.offset,
            dead_letter_id=letter.dead_letter_id,
            error_type=letter.error_type,
        )

    async def handle(event: Any) -> None:
        started = time.perf_counter()
        message = event.message
        try:
            report = parse_report(message.value)
        except (ValidationError, ValueError) as exc:
            await reject(event, "invalid_report", exc)
            return
        key = report.report_id.encode()
        if message.key != key:
            await reject(event, "key_mismatch", "message key is not the report's report_id")
            return
        source = report.source.value
        if topics.report_topic_source.get(message.topic) != source:
            await reject(event, "wrong_topic", f"a {source} report on topic {message.topic}")
            return
        if key in in_flight or seen.get(key) is not None:
            metrics.report(source, "duplicate").inc()
            log.info(
                "duplicate report skipped",
                report_id=report.report_id,
                partition=message.partition,
                offset=message.offset,
            )
            return

        rules = holder.current
        routed_at = datetime.now(UTC)
        out = encode_report(rules, report, routed_at)
        send = topics.send
        deliveries = []
        for planned, value in zip(out.plan.referrals, out.referrals, strict=True):
            topic = topics.referral(rules, planned.department)
            deliveries.append(await send(topic, key, value))
            metrics.referral(planned.department, planned.role.value, planned.priority.value).inc()
        deliveries.append(await send(topics.decisions, key, out.decision))
        in_flight.add(key)
        mark_when_delivered(key, rules.version.encode(), deliveries)

        metrics.report(source, "routed").inc()
        metrics.routing_seconds.observe(time.perf_counter() - started)
        metrics.end_to_end_seconds.observe(max(0.0, (routed_at - report.received_at).total_seconds()))
        result = out.plan.result
        log.info(
            "report routed",
            report_id=report.report_id,
            rules_version=rules.version,
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            recipients=len(out.referrals),
            priority=result.priority.value,
            fallback=result.fallback,
        )

    async def on_error(event: Any, exc: Exception) -> None:
        log.exception(
            "unexpected error; report dead-lettered",
            topic=event.message.topic,
            partition=event.message.partition,
            offset=event.message.offset,
        )
        await reject(event, "internal_error", exc)

    return guarded_agent(app, topics.reports, name="route-reports", on_error=on_error)(handle)
