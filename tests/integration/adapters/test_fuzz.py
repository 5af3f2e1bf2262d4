"""Fuzzing the HTTP surface of all five adapters (hypothesis, in-process).

Random, garbled and almost-valid bodies, headers, methods and paths. Whatever
a client sends: never a 5xx, every refusal names its reason, every batch row is
answered, and everything the outbox accepted is a valid typed event of the
adapter's source.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import REPORT_MODELS, Source, parse_report
from services.adapters.app import create_app
from services.adapters.runtime import AdapterRuntime
from services.adapters.settings import AdapterSettings
from services.common.settings import TopicSettings

from ...unit.adapters.fakes import NoKafka
from ...unit.adapters.support import submissions, token_for, write_tokens

REQUESTS_PER_ADAPTER = 2500
UUID7 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
CSV_COLUMNS = [
    "source_ref",
    "reported_at",
    "category",
    "urgency",
    "consent",
    "narrative",
    "reporter.name",
    "reporter.role",
    "reporter.organisation",
    "subjects.0.role",
    "subjects.0.age",
    "subjects.1.name",
    "indicators",
    "details",
    "subjects",
    "location.address",
]
CONTENT_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "application/x-ndjson",
    "text/csv",
    "text/plain",
    "application/xml",
    "multipart/form-data",
    "application/json; charset=utf-16",
    "application/merge-patch+json",
    "",
]
DNA_KEYS = [
    "dna",
    "dna_profile",
    "genetic_marker",
    "fingerprint",
    "iris_scan",
    "biometric",
    "voiceprint",
]


class Driver:
    """Requests straight into the ASGI app on a private event loop (cheaper than TestClient)."""

    def __init__(self, app) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://adapter")

    def request(self, method: str, path: str, headers: dict[str, bytes], content: bytes | None) -> httpx.Response:
        return self.loop.run_until_complete(self.client.request(method, path, headers=headers, content=content))

    def close(self) -> None:
        self.loop.run_until_complete(self.client.aclose())
        self.loop.close()


@pytest.fixture(scope="module")
def apps(tmp_path_factory) -> dict[Source, Driver]:
    root: Path = tmp_path_factory.mktemp("fuzz")
    tokens = write_tokens(root / "tokens.toml")
    out = {}
    for source in Source:
        # Small limits so that 413s and backlog refusals are reachable by the fuzzer.
        settings_ = AdapterSettings(
            tokens_file=tokens,
            outbox_dir=root / source.value,
            max_body_bytes=24_000,
            max_batch_bytes=48_000,
            max_batch_rows=8,
            backlog_limit=400,
            # one address, thousands of bad and good tokens: limits out of the way (test_network.py)
            rate_per_address=1e6,
            burst_per_address=10**7,
            rate_per_system=1e6,
            burst_per_system=10**7,
            auth_failure_burst=10**7,
        )
        app = create_app(
            AdapterRuntime(source, settings_, kafka=NoKafka(), topic_settings=TopicSettings(prefix="fuzz"))
        )
        app.state.adapter.start()  # what the lifespan does
        out[source] = Driver(app)
    yield out
    for driver in out.values():
        driver.close()
        driver.app.state.adapter.stop()


# -- strategies -----------------------------------------------------------------------------
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
    | st.sampled_from(["", "victim", "0", "2026-01-01T00:00:00Z", "-1", "true"])
)
json_values = st.recursive(
    scalars,
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=12), c, max_size=4),
    max_leaves=6,
)


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*prefix, i))


EXAMPLES = {source: [json.dumps(x) for x in submissions(source)] for source in Source}
PATHS = {source: [[p for p in _paths(json.loads(x)) if p] for x in EXAMPLES[source]] for source in Source}


@st.composite
def mutated(draw, source: Source) -> dict:
    index = draw(st.integers(0, len(EXAMPLES[source]) - 1))
    data = json.loads(EXAMPLES[source][index])
    if draw(st.booleans()):
        data["source_ref"] = f"fz-{draw(st.integers(0, 10**9))}"
    for _ in range(draw(st.integers(0, 3))):
        paths = PATHS[source][index] if _ == 0 else [p for p in _paths(data) if p]
        if not paths:
            break
        path = paths[draw(st.integers(0, len(paths) - 1))]
        op = draw(st.integers(0, 3))
        parent = data
        for part in path[:-1]:
            parent = parent[part]
        last = path[-1]
        if op == 0:
            del parent[last]
        elif op == 1:
            parent[last] = draw(json_values)
        elif isinstance(parent, dict):
            key = DNA_KEYS[draw(st.integers(0, len(DNA_KEYS) - 1))] if op == 2 else draw(st.text(max_size=10))
            parent[key] = draw(json_values)
    return data


@st.composite
def bodies(draw, source: Source, kind: str) -> bytes:
    choice = draw(st.sampled_from(["valid", "mutated", "mutated", "json", "bytes", "truncated", "big"]))
    if kind == "batch":
        if draw(st.booleans()):  # JSON lines
            rows = draw(st.lists(mutated(source) | json_values, min_size=0, max_size=4))
            lines = [json.dumps(r) for r in rows] + draw(st.lists(st.text(max_size=20), max_size=2))
            return "\n".join(draw(st.permutations(lines))).encode()
        header = draw(st.lists(st.sampled_from(CSV_COLUMNS) | st.text(max_size=8), min_size=1, max_size=8))
        cells = st.text(max_size=20) | st.sampled_from(['"[]"', '"{}"', "victim", "9", '"', "a|b"])
        lines = [",".join(header)] + [
            ",".join(draw(st.lists(cells, max_size=9))) for _ in range(draw(st.integers(0, 4)))
        ]
        raw = "\n".join(lines).encode()
        return raw if draw(st.integers(0, 9)) else draw(st.binary(max_size=200))
    if choice == "valid":
        data = json.loads(draw(st.sampled_from(EXAMPLES[source])))
        data["source_ref"] = f"fz-{draw(st.integers(0, 300))}"
        return json.dumps(data).encode()
    if choice == "mutated":
        return json.dumps(draw(mutated(source))).encode()
    if choice == "json":
        return json.dumps(draw(json_values)).encode()
    if choice == "bytes":
        return draw(st.binary(max_size=300))
    if choice == "truncated":
        full = json.dumps(draw(mutated(source))).encode()
        return full[: draw(st.integers(0, len(full)))]
    return b'{"narrative": "' + b"x" * 30_000 + b'"}'


def header_values(good: str) -> st.SearchStrategy[bytes | None]:
    return st.one_of(
        st.just(good.encode()),
        st.none(),
        st.binary(max_size=40).filter(lambda b: b"\r" not in b and b"\n" not in b),
    )


@st.composite
def requests(draw, source: Source) -> tuple[str, str, dict[str, bytes | None], dict[str, bytes], bytes]:
    """(method, path, drawn headers, good headers, body): the body goes out with both sets."""
    kind = draw(st.sampled_from(["single"] * 6 + ["batch"] * 2 + ["get", "other"]))
    other = draw(st.sampled_from([s for s in Source if s != source]))
    good_auth = f"Bearer {token_for(source, draw(st.sampled_from([1, 2])))}"
    auth = draw(st.sampled_from([good_auth] * 3 + [f"Bearer {token_for(other)}", "Bearer nope", "Basic x", ""]))
    headers: dict[str, bytes | None] = {"Authorization": draw(header_values(auth))}
    good = {"Authorization": good_auth.encode()}
    if kind == "single":
        headers["Content-Type"] = draw(header_values(draw(st.sampled_from(CONTENT_TYPES))))
        headers["Idempotency-Key"] = draw(st.none() | header_values(f"k-{draw(st.integers(0, 50))}"))
        good["Content-Type"] = b"application/json"
        return "POST", "/v1/reports", headers, good, draw(bodies(source, "single"))
    if kind == "batch":
        headers["Content-Type"] = draw(header_values(draw(st.sampled_from(CONTENT_TYPES))))
        body = draw(bodies(source, "batch"))
        good["Content-Type"] = b"text/csv" if body[:1] not in (b"{", b"[", b'"') else b"application/x-ndjson"
        return "POST", "/v1/reports/batch", headers, good, body
    if kind == "get":
        rid = draw(
            st.sampled_from(["01890000-0000-7000-8000-000000000001", "batch", "..", "x" * 300])
            | st.text(min_size=1, max_size=40).map(lambda t: quote(t, safe=""))
        )
        return "GET", f"/v1/reports/{rid}", headers, good, b""
    method = draw(st.sampled_from(["GET", "PUT", "DELETE", "PATCH", "POST", "OPTIONS"]))
    path = draw(
        st.sampled_from(
            [
                "/v1/reports",
                "/v1/reports/batch",
                "/v2/reports",
                "/healthz",
                "/readyz",
                "/metrics",
                "/",
                "/v1",
                "/v1/reports/x/y",
            ]
        )
    )
    return method, path, headers, good, draw(st.binary(max_size=50))


# -- the check ---------------------------------------------------------------------------------
def check(response, method: str, path: str) -> str:
    status = response.status_code
    if method == "GET" and path in ("/healthz", "/readyz"):
        # 503 is readiness's own answer (these apps run without Kafka), not a fault
        assert status in (200, 503) and "checks" in response.json()
        return str(status)
    assert status < 500, f"{method} {path} -> {status}: {response.text[:300]}"
    if method == "GET" and path == "/metrics":
        return str(status)
    body = response.json()
    if status >= 400:
        assert isinstance(body.get("error"), str) and body["error"], body
        assert isinstance(body.get("message"), str) and body["message"], body
        if status == 422:
            assert body["errors"] and all(e["field"] and e["reason"] for e in body["errors"]), body
        return body["error"]
    if status == 202:
        assert UUID7.match(body["report_id"]) and isinstance(body["duplicate"], bool)
        return "duplicate" if body["duplicate"] else "accepted"
    if path == "/v1/reports/batch":
        assert body["results"], body
        for row in body["results"]:
            assert row["status"] in ("accepted", "duplicate", "rejected")
            if row["status"] == "rejected":
                assert row["errors"] and all(e["field"] and e["reason"] for e in row["errors"]), row
        return "batch"
    return str(status)


@pytest.mark.parametrize("source", list(Source))
def test_fuzz_never_5xx_and_every_refusal_names_its_reason(apps, source):
    driver = apps[source]
    outcomes: Counter[str] = Counter()

    @settings(
        max_examples=-(-REQUESTS_PER_ADAPTER // 4),
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(requests(source))
    def run(request):
        method, path, drawn, good, body = request
        # the body with the drawn headers, with good headers, with the drawn ones but good
        # credentials,
        # and through the other intake parser
        drawn = {k: v for k, v in drawn.items() if v is not None}
        variants = [
            (path, drawn),
            (path, good),
            (path, {**drawn, "Authorization": good["Authorization"]}),
        ]
        if path == "/v1/reports":
            variants.append(("/v1/reports/batch", {**good, "Content-Type": b"application/x-ndjson"}))
        elif path == "/v1/reports/batch":
            variants.append(("/v1/reports", {**good, "Content-Type": b"application/json"}))
        else:
            variants.append(("/v1/reports", {**good, "Content-Type": b"application/json"}))
        for target, headers in variants:
            verb = method if target == path else "POST"
            response = driver.request(verb, target, headers, body or None)
            outcomes[check(response, verb, target)] += 1

    run()
    assert sum(outcomes.values()) >= REQUESTS_PER_ADAPTER
    # the fuzzer reached the interesting answers, not only one kind of refusal
    for reason in (
        "accepted",
        "duplicate",
        "invalid",
        "unauthorized",
        "forbidden",
        "unsupported_media_type",
        "payload_too_large",
        "batch",
        "not_found",
        "method_not_allowed",
    ):
        assert outcomes[reason] > 0, (reason, outcomes)
    # still healthy, and everything accepted is a valid typed event of this source
    assert driver.request("GET", "/healthz", {}, None).json()["status"] == "ok"
    outbox = driver.app.state.adapter.outbox
    for pending in outbox.fetch_unsent(10_000):
        report = parse_report(pending.payload)
        assert isinstance(report, REPORT_MODELS[source]) and report.report_id == pending.report_id
