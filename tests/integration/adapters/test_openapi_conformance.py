"""Each adapter's OpenAPI document holds against the running adapter: schemathesis, every check.

Five real adapter processes (``cluebus adapter <source>``: plain HTTP on loopback, the demo
tokens, the rate limits out of the way, the relay publishing to the real broker so that
``/readyz`` is ready). Against each, ``conformance.run`` runs schemathesis's four phases
with every check, bounded (examples per operation, stateful steps, a time limit that fails
the run); what it drops, and why, is in its docstring. Two worker processes run the five
(generation is CPU-bound in the process that runs it, and the machine has 2 cores).

Measured on the 2-core machine (``-s`` prints requests per adapter, phase and operation):
5,247 requests (1,003 to 1,211 per adapter, ~900 of them in the coverage phase) cost 55-60 s
of CPU in all (the workers, the five adapters, pytest); the module took 36 s with the load
average at 3-5 from other work, 57 s at 8 and 100 s at 6-9. Run one after another in the
pytest process, the five took 97 s at a load of 7.
"""

from __future__ import annotations

import multiprocessing
import os
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from schemas import Source
from services.common.settings import TopicSettings
from services.common.topic_admin import delete_prefixed_topics, ensure_topics, topic_specs

from ..support import REPO, Service, free_port, metric_value, wait_healthy
from . import conformance
from .conformance import Outcome

TOKENS = REPO / "deploy/adapters/demo-tokens.toml"  # demo-<source>-token
WORKERS = 2


@pytest.fixture(scope="module")
def adapters(kafka_settings, kafka_bootstrap: str, tmp_path_factory) -> Iterator[dict[Source, str]]:
    """The five adapters, started at once (their start-up overlaps), by base URL."""
    root: Path = tmp_path_factory.mktemp("conformance")
    topics = TopicSettings(prefix=f"t{uuid.uuid4().hex[:10]}", partitions=1)
    ensure_topics(kafka_settings, topic_specs(topics))  # no referral topics: no rules needed
    env = {
        **os.environ,
        "CLUEBUS_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "CLUEBUS_TOPICS_PREFIX": topics.prefix,
        "CLUEBUS_TOPICS_PARTITIONS": "1",
        "CLUEBUS_STATE_DIR": str(root / "state"),
        "CLUEBUS_LOG_FORMAT": "json",
        "PYTHONUNBUFFERED": "1",
        "CLUEBUS_ADAPTER_TOKENS_FILE": str(TOKENS),
        "CLUEBUS_ADAPTER_PLAIN_HTTP": "true",  # TLS is tested in test_network.py
        "CLUEBUS_ADAPTER_RELAY_BACKOFF_MAX_S": "1",
        # one client address, thousands of requests: the limits out of the way (test_network.py tests them)
        "CLUEBUS_ADAPTER_RATE_PER_ADDRESS": "1000000",
        "CLUEBUS_ADAPTER_BURST_PER_ADDRESS": "10000000",
        "CLUEBUS_ADAPTER_RATE_PER_SYSTEM": "1000000",
        "CLUEBUS_ADAPTER_BURST_PER_SYSTEM": "10000000",
        "CLUEBUS_ADAPTER_AUTH_FAILURE_BURST": "10000000",
    }
    started: list[Service] = []
    urls: dict[Source, str] = {}
    try:
        for source in Source:
            port = free_port()
            args = ["adapter", source.value, "--port", str(port)]
            started.append(Service(f"adapter-{source.value}", args, env, root / "logs").start())
            urls[source] = f"http://127.0.0.1:{port}"
        for service, url in zip(started, urls.values(), strict=True):
            wait_healthy(url, service, timeout=60)
        yield urls
    finally:
        for service in started:
            service.stop(timeout=20)
        delete_prefixed_topics(kafka_settings, topics.prefix, timeout_ms=10_000)


@pytest.fixture(scope="module")
def outcomes(adapters: dict[Source, str]) -> dict[Source, Outcome]:
    """One schemathesis run per adapter, WORKERS at a time."""
    started = time.perf_counter()
    with ProcessPoolExecutor(WORKERS, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {s: pool.submit(conformance.run, url, f"demo-{s.value}-token") for s, url in adapters.items()}
        done = {source: future.result() for source, future in futures.items()}
    total = sum(sum(o.requests.values()) for o in done.values())
    print(f"\nschemathesis: {total} requests to 5 adapters in {time.perf_counter() - started:.1f} s")
    for source, outcome in done.items():
        print(outcome.summary(source.value))
    return done


@pytest.mark.parametrize("source", list(Source))
def test_the_adapter_answers_as_its_openapi_document_says(adapters, outcomes, source):
    outcome = outcomes[source]
    assert not outcome.failures, "\n\n".join(sorted(set(outcome.failures)))
    assert outcome.stop_reason == "completed", outcome.summary(source.value)
    # it reached the answers that matter, not only refusals
    answers = outcome.answers
    assert answers["POST /v1/reports"].get(202), outcome.summary(source.value)
    assert answers["POST /v1/reports/batch"].get(200), outcome.summary(source.value)
    assert answers["GET /v1/reports/{report_id}"].get(200), outcome.summary(source.value)  # via Location
    assert outcome.dropped.get("RejectedPositiveData"), "no documented refusal was met: is the filter needed?"
    port = int(adapters[source].rsplit(":", 1)[1])
    assert (metric_value(port, "cluebus_adapter_reports_total", {"outcome": "accepted"}) or 0) > 0


def test_only_documented_refusals_are_dropped(tmp_path):
    """The filter reads the real document and drops a 422 only when every problem is listed."""
    from types import SimpleNamespace

    from schemathesis.core.failures import AcceptedNegativeData
    from schemathesis.openapi.checks import RejectedPositiveData

    from services.adapters.app import create_app
    from services.adapters.runtime import AdapterRuntime
    from services.adapters.settings import AdapterSettings
    from tests.unit.adapters.fakes import NoKafka

    runtime = AdapterRuntime(
        Source.school,
        AdapterSettings(tokens_file=TOKENS, outbox_dir=tmp_path),
        kafka=NoKafka(),
        topic_settings=TopicSettings(prefix="unused"),
    )
    app = create_app(runtime)
    paths = app.openapi()["paths"]

    def case(path: str, media: str, body: object = "") -> SimpleNamespace:
        operation = SimpleNamespace(definition=SimpleNamespace(raw=paths[path]["post"]))
        return SimpleNamespace(operation=operation, media_type=media, body=body)

    def answer(status: int, *reasons: str) -> SimpleNamespace:
        errors = [{"field": "x", "reason": r} for r in reasons]
        return SimpleNamespace(status_code=status, json=lambda: {"error": "invalid", "errors": errors})

    positive = RejectedPositiveData(operation="POST", message="", status_code=422, allowed_statuses=["2xx"])
    child = "category 'child_labour' concerns a child: at least one subject must be a minor"
    pupil = "details.pupil_subject_index 3 is not an entry of subjects (0..0)"
    single = case("/v1/reports", "application/json")
    assert conformance.why_dropped(positive, single, answer(422, child, pupil))
    assert conformance.why_dropped(positive, single, answer(422, child, "Field required")) is None
    assert conformance.why_dropped(positive, single, answer(422)) is None
    assert conformance.why_dropped(positive, single, answer(400, child)) is None
    csv = case("/v1/reports/batch", "text/csv")
    assert conformance.why_dropped(positive, csv, answer(422, "unknown column (see the CSV mapping)"))
    assert (
        conformance.why_dropped(positive, case("/v1/reports/batch", "application/x-ndjson"), answer(422, "no rows"))
        is None
    )
    negative = AcceptedNegativeData(operation="POST", message="", status_code=200, expected_statuses=["4xx"])
    assert conformance.why_dropped(negative, case("/v1/reports/batch", "application/x-ndjson", 0), answer(200))
    assert conformance.why_dropped(negative, case("/v1/reports/batch", "application/x-ndjson", ""), answer(200)) is None
    assert conformance.why_dropped(negative, case("/v1/reports", "application/json", 0), answer(202)) is None
