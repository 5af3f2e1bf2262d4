"""One bounded schemathesis run against one running adapter (for test_openapi_conformance.py).

:func:`run` loads the adapter's ``/openapi.json`` and runs schemathesis's four phases (the
document's examples, coverage of boundaries and negations, fuzzing, stateful sequences that
follow the ``Location`` of a receipt) with every check it has. It returns an
:class:`Outcome` (plain data, so a worker process can send it back): requests per phase,
answers per operation, the failures, and what was dropped as documented.

Nothing is switched off. A body valid against its schema may still be refused for a rule
JSON Schema cannot state; the document lists those per media type under
``x-cluebus-refusals`` (``services/adapters/openapi.py``), and :func:`documented_refusal`
drops exactly such a positive-data failure: a 422 every one of whose problems matches a
listed reason. The one other drop: a negation of a batch body's *type* (a number where the
schema says string) cannot reach the server, since a text body is a string on the wire
(schemathesis exempts ``text/plain`` alone from that check).
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import AcceptedNegativeData
from schemathesis.engine import events, from_schema
from schemathesis.openapi.checks import RejectedPositiveData

from services.adapters.batch import CSV_TYPES, NDJSON_TYPES
from services.adapters.openapi import REFUSALS_KEY

MAX_EXAMPLES = 10  # per operation, in the fuzzing phase
STATEFUL_EXAMPLES = 5  # sequences of at most MAX_STEPS calls
MAX_STEPS = 5
SEED = 20260101  # the same cases every run; CLUEBUS_SCHEMATHESIS_SEED explores others
TEXT_BATCH_TYPES = NDJSON_TYPES | CSV_TYPES


@schemathesis.serializer(*sorted(NDJSON_TYPES))
def _json_lines(ctx: Any, value: Any) -> bytes:
    """JSON lines go on the wire as the text the schema describes (schemathesis has no serializer)."""
    return value.encode("utf-8") if isinstance(value, str) else json.dumps(value).encode("utf-8")


@dataclass
class Outcome:
    requests: dict[str, int] = field(default_factory=dict)  # per phase
    answers: dict[str, dict[int, int]] = field(default_factory=dict)  # "METHOD /path" -> status -> count
    failures: list[str] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)  # failure kind -> count
    met: dict[str, int] = field(default_factory=dict)  # documented refusal (or exemption) -> dropped failures
    phase_seconds: dict[str, float] = field(default_factory=dict)
    stop_reason: str = ""
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # of the process that generated and checked

    def summary(self, name: str) -> str:
        lines = [
            f"{name}: {sum(self.requests.values())} requests {self.requests} in {self.seconds:.1f} s "
            f"({self.cpu_seconds:.1f} s CPU; phases {self.phase_seconds})"
        ]
        lines.append(
            f"  dropped {self.dropped}, for: " + "; ".join(f"{why} {n}" for why, n in sorted(self.met.items()))
        )
        lines += [f"  {op}: {dict(sorted(counts.items()))}" for op, counts in sorted(self.answers.items())]
        return "\n".join(lines)


def refusals(case: Any) -> list[dict[str, str]]:
    """The ``x-cluebus-refusals`` of the media type ``case`` was sent as."""
    body = case.operation.definition.raw.get("requestBody", {})
    return body.get("content", {}).get(case.media_type, {}).get(REFUSALS_KEY, [])


def documented_refusal(case: Any, response: Any) -> list[str] | None:
    """The listed reasons of a 422 whose every problem is a refusal the document lists for
    this body; None for any other answer."""
    if response.status_code != 422:
        return None
    listed = [entry["reason"] for entry in refusals(case)]
    problems = response.json().get("errors") or []
    matched = [next((r for r in listed if r in p["reason"]), None) for p in problems]
    return [m for m in matched if m] if problems and all(matched) else None


def why_dropped(failure: Any, case: Any, response: Any) -> list[str] | None:
    """Why a failure is no fault of the document or the server (the documented refusals
    met, or the one wire exemption), or None: keep it."""
    if isinstance(failure, RejectedPositiveData):
        return documented_refusal(case, response)
    if isinstance(failure, AcceptedNegativeData):
        if case.media_type in TEXT_BATCH_TYPES and not isinstance(case.body, str):
            return ["a text body is a string on the wire"]
    return None


def config(url: str, token: str) -> SchemathesisConfig:
    return SchemathesisConfig.from_dict(
        {
            "seed": int(os.environ.get("CLUEBUS_SCHEMATHESIS_SEED", SEED)),
            "base-url": url,
            "headers": {"Authorization": f"Bearer {token}"},
            "checks": {"enabled": True},  # every check schemathesis has
            "generation": {"max-examples": MAX_EXAMPLES},
            "phases": {"stateful": {"max-steps": MAX_STEPS, "generation": {"max-examples": STATEFUL_EXAMPLES}}},
            # no "max-time": with one, schemathesis goes on generating until the time is up
            "request-timeout": 30,
            "cache": {"enabled": False},  # no .schemathesis/ folder in the work tree
        }
    )


def run(url: str, token: str) -> Outcome:
    started, cpu = time.perf_counter(), time.process_time()
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json", config=config(url, token))
    out = Outcome()
    dropped: Counter[str] = Counter()
    met: Counter[str] = Counter()

    @schema.hook("filter_failure")
    def _filter(context: Any, failure: Any, case: Any, response: Any) -> bool:
        why = why_dropped(failure, case, response)
        if why is not None:
            dropped[type(failure).__name__] += 1
            met.update(set(why))
        return why is None

    requests: Counter[str] = Counter()
    phase_started: dict[str, float] = {}
    phase_seconds: Counter[str] = Counter()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            _record(event, url, requests, out)
        elif isinstance(event, events.PhaseStarted):
            phase_started[event.phase.name.name] = event.timestamp
        elif isinstance(event, events.PhaseFinished):
            phase_seconds[event.phase.name.name] += event.timestamp - phase_started[event.phase.name.name]
        elif isinstance(event, events.NonFatalError | events.FatalError):
            out.failures.append(f"error: {event}")
        elif isinstance(event, events.EngineFinished):
            out.stop_reason = event.stop_reason.value
    out.requests = dict(requests)
    out.dropped = dict(dropped)
    out.met = dict(met)
    out.phase_seconds = {k: round(v, 1) for k, v in phase_seconds.items() if v >= 0.05}
    out.seconds = time.perf_counter() - started
    out.cpu_seconds = time.process_time() - cpu
    return out


def _record(event: Any, url: str, requests: Counter[str], out: Outcome) -> None:
    for interaction in event.recorder.interactions.values():
        requests[event.phase.name] += 1
        if interaction.response is not None:
            path = interaction.request.uri.split("?")[0].removeprefix(url)
            head, _, rest = path.partition("/v1/reports/")
            if _ and rest != "batch":
                path = head + "/v1/reports/{report_id}"  # ids, and what a fuzzer put in their place
            operation = f"{interaction.request.method} {path}"
            counts = out.answers.setdefault(operation, {})
            counts[interaction.response.status_code] = counts.get(interaction.response.status_code, 0) + 1
    for case_id, checks in event.recorder.checks.items():
        for check in checks:
            if check.failure_info is None:
                continue
            failure = check.failure_info.failure
            answer = event.recorder.interactions.get(case_id)
            got = answer.response if answer is not None else None
            out.failures.append(
                f"{event.label} [{event.phase.name}] {check.name}: {failure.title}\n{failure.message}\n"
                + ("" if got is None else f"-> {got.status_code} {got.content[:600]!r}")
            )
