"""The routing agent: one report in, one referral per recipient out.

At-least-once: offsets are committed after the sends are flushed. A report
is marked as routed in the table only after the broker acknowledged all of
its outputs; marking it earlier could let a crash lose referrals whose mark
survived. A report seen again before its mark is routed again with the same
referral ids, and consumers de-duplicate by referral id. A bad event goes to
the dead-letter topic and the stream goes on.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from schemas import dump_event, parse_report
from services.common.logging import get_logger
from services.common.streams.guard import guarded_agent
from services.deadletter.letters import dead_letter
from services.router.metrics import RouterMetrics
from services.router.routing import route_report
from services.router.topics import RouterTopics
from services.rules.reload import RulesHolder

log = get_logger(__name__)
SERVICE = "router"


def register(app: Any, topics: RouterTopics, seen: Any, holder: RulesHolder, metrics: RouterMetrics) -> Any:
    marking: set[asyncio.Task[None]] = set()
    in_flight: set[bytes] = set()  # routed here, outputs not yet acknowledged

    async def mark_when_delivered(key: bytes, version: bytes, deliveries: list[Any]) -> None:
        try:
            await asyncio.gather(*deliveries)
        except Exception:  # not acknowledged: leave unmarked, so a repeat is routed again
            log.warning("outputs not acknowledged; report left unmarked", report_id=key.decode())
            return
        finally:
            in_flight.discard(key)
        seen[key] = version

    async def reject(event: Any, reason: str, exc: BaseException | str) -> None:
        letter = dead_letter(SERVICE, event.message, exc, cause="internal" if reason == "internal_error" else "input")
        await topics.deadletter.send(key=event.message.key, value=dump_event(letter))
        metrics.dead_letters.labels(reason=reason).inc()
        metrics.reports.labels(
            source=topics.report_topic_source.get(event.message.topic, "unknown"), outcome="dead_lettered"
        ).inc()
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
        if topics.report_topic_source.get(message.topic) != report.source.value:
            await reject(event, "wrong_topic", f"a {report.source.value} report on topic {message.topic}")
            return
        if key in in_flight or seen.get(key) is not None:
            metrics.reports.labels(source=report.source.value, outcome="duplicate").inc()
            log.info(
                "duplicate report skipped",
                report_id=report.report_id,
                partition=message.partition,
                offset=message.offset,
            )
            return

        rules = holder.current
        routed_at = datetime.now(UTC)
        out = route_report(rules, report, routed_at)
        deliveries = []
        for referral in out.referrals:
            topic = topics.referral(rules, referral.department)
            deliveries.append(await topic.send(key=key, value=dump_event(referral)))
            metrics.referrals.labels(
                department=referral.department, role=referral.role.value, priority=referral.priority.value
            ).inc()
        deliveries.append(await topics.decisions.send(key=key, value=dump_event(out.decision)))
        in_flight.add(key)
        task = asyncio.ensure_future(mark_when_delivered(key, rules.version.encode(), deliveries))
        marking.add(task)
        task.add_done_callback(marking.discard)

        metrics.reports.labels(source=report.source.value, outcome="routed").inc()
        metrics.routing_seconds.observe(time.perf_counter() - started)
        metrics.end_to_end_seconds.observe(max(0.0, (routed_at - report.received_at).total_seconds()))
        log.info(
            "report routed",
            report_id=report.report_id,
            rules_version=rules.version,
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            recipients=len(out.referrals),
            priority=out.decision.priority.value,
            fallback=out.decision.fallback,
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
