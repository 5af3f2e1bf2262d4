"""The HTTP status matrix of one adapter, in-process (no Kafka: relay off)."""

from __future__ import annotations

import csv
import io
import json

import pytest

from schemas import Source, parse_report
from services.common.ids import uuid7_time_ms

from .support import auth, submission, submissions, system_for

H = Source.hospital


def post(client, body, source=H, headers=None, **kw):
    return client.post(
        "/v1/reports",
        content=body if isinstance(body, bytes) else json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **auth(source), **(headers or {})},
        **kw,
    )


@pytest.mark.parametrize("source", list(Source))
def test_every_example_is_accepted_and_stored_as_a_typed_event(make_client, source):
    client = make_client(source)
    outbox = client.app.state.adapter.outbox
    for body in submissions(source):
        r = post(client, body, source)
        assert r.status_code == 202, r.text
        receipt = r.json()
        assert set(receipt) == {"report_id", "received_at", "duplicate"} and receipt["duplicate"] is False
        assert r.headers["location"] == f"/v1/reports/{receipt['report_id']}"
        assert uuid7_time_ms(receipt["report_id"]) > 0
    events = [parse_report(p.payload) for p in outbox.fetch_unsent(100)]
    assert len(events) == len(submissions(source))
    for event in events:
        assert event.source == source and event.source_system == system_for(source)
        assert event.schema_version == 1


def test_duplicate_source_ref_returns_the_original_receipt(make_client):
    client = make_client()
    first = post(client, submission(H, "dup-1")).json()
    body = submission(H, "dup-1", index=1)  # different content, same source_ref
    again = post(client, body)
    assert again.status_code == 202
    assert again.json() == {**first, "duplicate": True}
    assert client.app.state.adapter.outbox.backlog == 1
    # another system of the same source may use the same source_ref
    other = post(client, submission(H, "dup-1"), headers=auth(H, 2))
    assert other.status_code == 202 and other.json()["report_id"] != first["report_id"]


def test_idempotency_key(make_client):
    client = make_client()
    first = post(client, submission(H, "idem-1"), headers={"Idempotency-Key": "retry-abc"}).json()
    again = post(client, submission(H, "idem-2"), headers={"Idempotency-Key": "retry-abc"}).json()
    assert again["duplicate"] and again["report_id"] == first["report_id"]
    bad = post(client, submission(H, "idem-3"), headers={"Idempotency-Key": "has space"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "header.Idempotency-Key"


@pytest.mark.parametrize(
    "content_type, status",
    [
        ("application/json", 202),
        ("application/json; charset=utf-8", 202),
        ("application/vnd.cluebus+json", 202),
        ("application/json; charset=latin-1", 415),
        ("text/plain", 415),
        ("application/x-www-form-urlencoded", 415),
        ("multipart/form-data; boundary=x", 415),
        (None, 415),
    ],
)
def test_content_types(make_client, content_type, status):
    client = make_client()
    headers = {**auth(H)}
    if content_type:
        headers["Content-Type"] = content_type
    r = client.post("/v1/reports", content=json.dumps(submission(H, "ct-1")).encode(), headers=headers)
    assert r.status_code == status, r.text
    if status == 415:
        assert r.json()["error"] == "unsupported_media_type"


def test_body_too_large_by_header_and_while_streaming(make_client):
    client = make_client(max_body_bytes=4096)
    big = json.dumps({**submission(H, "big-1"), "narrative": "x" * 8000}).encode()
    r = post(client, big)
    assert r.status_code == 413 and r.json()["error"] == "payload_too_large"

    def chunks():  # no Content-Length: the limit is enforced while reading
        for i in range(0, len(big), 1000):
            yield big[i : i + 1000]

    r = client.post("/v1/reports", content=chunks(), headers={"Content-Type": "application/json", **auth(H)})
    assert r.status_code == 413
    lying = client.post(
        "/v1/reports",
        content=big,
        headers={"Content-Type": "application/json", "Content-Length": "10", **auth(H)},
    )
    assert lying.status_code in (400, 413, 422)


def test_invalid_reports_name_each_field_without_echoing_values(make_client):
    client = make_client()
    body = submission(H, "bad-1")
    body["subjects"][0]["age"] = "SECRET-AGE"
    body["category"] = "SECRET-CATEGORY"
    body["reporter"]["phone"] = "SECRET-PHONE"
    body["unknown_field"] = "SECRET-EXTRA"
    r = post(client, body)
    assert r.status_code == 422
    fields = {e["field"] for e in r.json()["errors"]}
    assert {"subjects.0.age", "category", "reporter.phone", "unknown_field"} <= fields
    assert "SECRET" not in r.text
    assert all(e["reason"] for e in r.json()["errors"])


def test_an_invalid_subject_is_not_also_a_missing_one(make_client):
    # pydantic counts only the items that validated, so one bad subject also gave
    # "subjects: at least 1 item after validation, not 0" (found by schemathesis)
    client = make_client()
    body = submission(H, "short-1")
    body["subjects"] = [{**body["subjects"][0], "id_number": "12345", "id_type": None}]
    r = post(client, body)
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == ["subjects.0.id_number"]
    body["subjects"] = []
    r = post(client, body)
    assert [e["field"] for e in r.json()["errors"]] == ["subjects"]


def test_dna_keys_are_refused_with_the_legal_reason(make_client):
    client = make_client()
    body = submission(H, "dna-1")
    body["subjects"][0]["dna_profile"] = "AGCT"
    r = post(client, body)
    assert r.status_code == 422
    [error] = r.json()["errors"]
    assert error["field"] == "subjects.0.dna_profile"
    assert "DNA and biometric data may only be collected by the police" in error["reason"]
    assert "AGCT" not in r.text


@pytest.mark.parametrize(
    "raw, field",
    [
        (b"", "body"),
        (b"{", "body"),
        (b"[]", "body"),
        (b"null", "body"),
        (b'"text"', "body"),
        (b"\xff\xfe\x00", "body"),
        (b'{"source_ref": "x\\ud800"}', "body"),  # a lone surrogate
        (b"[" * 5000, "body"),
        (b"{}", "source_ref"),
    ],
)
def test_unreadable_bodies_are_422(make_client, raw, field):
    r = post(make_client(), raw)
    assert r.status_code == 422
    assert field in {e["field"] for e in r.json()["errors"]}


def test_report_larger_than_an_event_may_be_is_413(make_client):
    client = make_client(max_event_bytes=1024)
    r = post(client, submission(H, "ev-1"))
    assert r.status_code == 413 and "encoded" in r.json()["message"]


def test_backlog_full_is_503_with_retry_after(make_client):
    client = make_client(backlog_limit=1, retry_after_s=7)
    assert post(client, submission(H, "bl-1")).status_code == 202
    r = post(client, submission(H, "bl-2"))
    assert r.status_code == 503 and r.headers["retry-after"] == "7" and r.json()["error"] == "backlog_full"
    assert post(client, submission(H, "bl-1")).json()["duplicate"] is True


def test_get_receipt_only_for_its_own_system(make_client):
    client = make_client()
    rid = post(client, submission(H, "get-1")).json()["report_id"]
    r = client.get(f"/v1/reports/{rid}", headers=auth(H))
    assert r.status_code == 200
    body = r.json()
    assert body["report_id"] == rid and body["source_ref"] == "get-1"
    assert body["published"] is False and body["status"] is None
    assert client.get(f"/v1/reports/{rid}", headers=auth(H, 2)).status_code == 404
    assert client.get("/v1/reports/not-an-id", headers=auth(H)).status_code == 404
    assert client.get("/v1/reports/01890000-0000-7000-8000-000000000001", headers=auth(H)).status_code == 404


def test_report_paths_are_uuid7_so_the_batch_path_is_not_a_receipt(make_client):
    client = make_client()
    # GET /v1/reports/batch was "no report with this id" (404); it is POST only (schemathesis)
    r = client.get("/v1/reports/batch", headers=auth(H))
    assert r.status_code == 405 and r.headers["allow"] == "POST" and r.json()["error"] == "method_not_allowed"
    upper = "01890000-0000-7000-8000-00000000000A"  # ids are lower-case hex, as the adapter issues them
    for path in ("/v1/reports/not-an-id", f"/v1/reports/{upper}", "/v1/reports/x/y"):
        r = client.get(path)  # no token: an id that cannot exist is not a resource to authenticate for
        assert r.status_code == 404 and r.json()["error"] == "not_found", path
    assert client.get("/v1/reports/01890000-0000-7000-8000-000000000001").status_code == 401


def test_get_receipt_shows_publication_and_the_latest_status(make_client):
    from schemas import referral_id_for
    from schemas.examples import load_examples

    client = make_client(Source.school)
    rid = post(client, submission(Source.school, "st-1"), Source.school).json()["report_id"]
    box = client.app.state.adapter.outbox
    box.mark_sent([p.seq for p in box.fetch_unsent(10)]).result(5)
    status = load_examples("v1", "events")["report-status"]
    departments = [{**d, "referral_id": referral_id_for(rid, d["department"])} for d in status["departments"]]
    status = {
        **status,
        "report_id": rid,
        "source_system": system_for(Source.school),
        "departments": departments,
    }
    box.store_statuses([(rid, status["seq"], 0, json.dumps(status).encode())], {}).result(5)
    body = client.get(f"/v1/reports/{rid}", headers=auth(Source.school)).json()
    assert body["published"] is True and body["published_at"]
    assert body["status"]["seq"] == status["seq"]
    assert {d["department"] for d in body["status"]["departments"]} >= {"police", "education"}


def test_batch_json_lines_answers_every_row(make_client):
    client = make_client()
    good = [submission(H, f"nd-{i}") for i in range(3)]
    bad = submission(H, "nd-bad")
    bad["subjects"][0]["dna_sample"] = "x"
    lines = [
        json.dumps(good[0]),
        "",
        json.dumps(good[1]),
        "{not json",
        json.dumps(bad),
        json.dumps(good[0]),
        json.dumps(good[2]),
    ]
    r = client.post(
        "/v1/reports/batch",
        content="\n".join(lines).encode(),
        headers={"Content-Type": "application/x-ndjson", **auth(H)},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    statuses = [(x["row"], x["status"]) for x in body["results"]]
    assert statuses == [
        (1, "accepted"),
        (3, "accepted"),
        (4, "rejected"),
        (5, "rejected"),
        (6, "duplicate"),
        (7, "accepted"),
    ]
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (3, 1, 2)
    assert body["results"][4]["report_id"] == body["results"][0]["report_id"]
    assert body["results"][3]["errors"][0]["field"] == "subjects.0.dna_sample"
    assert client.app.state.adapter.outbox.backlog == 3


def _csv(rows: list[dict[str, str]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def flat_row(source: Source, ref: str) -> dict[str, str]:
    s = submission(source, ref)
    row = {
        "source_ref": s["source_ref"],
        "reported_at": s["reported_at"],
        "category": s["category"],
        "urgency": s["urgency"],
        "consent": s["consent"],
        "narrative": s["narrative"],
        "location.district_code": s["location"]["district_code"] or "",
        "reporter.name": s["reporter"]["name"],
        "reporter.role": s["reporter"]["role"],
        "reporter.organisation": s["reporter"]["organisation"],
        "indicators": "|".join(s["indicators"]),
        "subjects.0.role": s["subjects"][0]["role"],
        "subjects.0.age": str(s["subjects"][0]["age"] or ""),
        "subjects.0.sex": s["subjects"][0]["sex"],
        "details": json.dumps(s["details"], ensure_ascii=False),
    }
    return row


@pytest.mark.parametrize("source", list(Source))
def test_batch_csv_flat_columns(make_client, source):
    client = make_client(source)
    rows = [flat_row(source, f"csv-{i}") for i in range(3)]
    rows[1]["subjects.0.age"] = "not-a-number"
    r = client.post(
        "/v1/reports/batch",
        content=b"\xef\xbb\xbf" + _csv(rows),
        headers={"Content-Type": "text/csv", **auth(source)},
    )
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["status"] for x in results] == ["accepted", "rejected", "accepted"], results
    assert "subjects.0.age" in {e["field"] for e in results[1]["errors"]}
    events = [parse_report(p.payload) for p in client.app.state.adapter.outbox.fetch_unsent(10)]
    assert [e.source_ref for e in events] == ["csv-0", "csv-2"]
    assert events[0].subjects[0].age == (submission(source)["subjects"][0]["age"])


def test_batch_csv_whole_upload_problems(make_client):
    client = make_client()
    h = {"Content-Type": "text/csv", **auth(H)}
    unknown = client.post("/v1/reports/batch", content=b"source_ref,dna\nx,y\n", headers=h)
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "header.2"
    assert client.post("/v1/reports/batch", content=b"", headers=h).status_code == 422
    assert client.post("/v1/reports/batch", content=b"source_ref\n", headers=h).status_code == 422
    assert client.post("/v1/reports/batch", content=b"a\x00b\n", headers=h).status_code == 422
    assert client.post("/v1/reports/batch", content=b'source_ref\n"unterminated\n', headers=h).status_code == 422
    both = client.post(
        "/v1/reports/batch",
        headers=h,
        content=b'source_ref,subjects,subjects.0.role\nx,"[]",victim\n',
    )
    assert both.status_code == 200 and both.json()["results"][0]["status"] == "rejected"


def test_batch_limits_and_types(make_client):
    client = make_client(max_batch_rows=2)
    lines = "\n".join(json.dumps(submission(H, f"lim-{i}")) for i in range(3)).encode()
    r = client.post(
        "/v1/reports/batch",
        content=lines,
        headers={"Content-Type": "application/x-ndjson", **auth(H)},
    )
    assert r.status_code == 413 and r.json()["error"] == "too_many_rows"
    r = client.post("/v1/reports/batch", content=lines, headers={"Content-Type": "application/json", **auth(H)})
    assert r.status_code == 415
    r = client.post("/v1/reports/batch", content=lines, headers={"Content-Type": "text/csv"})
    assert r.status_code == 401


def test_unknown_paths_and_methods_name_their_reason(make_client):
    client = make_client()
    r = client.get("/nowhere")
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    r = client.delete("/v1/reports", headers=auth(H))
    assert r.status_code == 405 and r.json()["error"] == "method_not_allowed"


def test_health_ready_metrics_and_openapi(make_client):
    client = make_client()
    assert client.get("/healthz").json()["status"] == "ok"
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["checks"]["kafka"] is False  # relay is off here
    post(client, submission(H, "m-1"))
    post(client, submission(H, "m-1"))
    post(client, b"{}")
    text = client.get("/metrics").text
    assert 'cluebus_adapter_reports_total{outcome="accepted",source="hospital"} 1.0' in text
    assert 'cluebus_adapter_reports_total{outcome="duplicate",source="hospital"} 1.0' in text
    assert 'cluebus_adapter_rejects_total{reason="invalid",source="hospital"} 1.0' in text
    assert 'cluebus_adapter_outbox_backlog{source="hospital"} 1.0' in text
    assert "cluebus_adapter_outbox_oldest_unsent_seconds" in text
    assert "cluebus_adapter_publish_latency_seconds_bucket" in text
    doc = client.get("/openapi.json").json()
    body = doc["paths"]["/v1/reports"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/HospitalSubmission"}
    assert "HospitalDetails" in doc["components"]["schemas"]
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert client.get("/docs").status_code == 200


@pytest.fixture
def json_log(capsys):
    """The service's JSON logging, read back as parsed lines; restored afterwards."""
    import logging

    import structlog

    from services.common.logging import configure

    root = logging.getLogger()
    saved = (root.handlers[:], root.level)

    def read(start: bool = False) -> tuple[str, list[dict]]:
        if start:  # inside the test: pytest rearranges root handlers between phases
            configure("info", "json", service="adapter-hospital")
            capsys.readouterr()
            return "", []
        out = capsys.readouterr().out
        return out, [json.loads(line) for line in out.splitlines() if line.startswith("{")]

    yield read
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    root.handlers[:], root.level = saved


def test_log_lines_carry_ids_and_no_personal_data(make_client, json_log):
    client = make_client()
    json_log(start=True)
    body = submission(H, "log-1")
    rid = post(client, body).json()["report_id"]
    bad = submission(H, "log-2")
    bad["subjects"][0]["age"] = "NOT-AN-AGE"
    post(client, bad)
    out, lines = json_log()
    accepted = [x for x in lines if x.get("event") == "report accepted"]
    assert accepted and accepted[0]["report_id"] == rid and accepted[0]["source_system"] == system_for(H)
    assert accepted[0]["service"] == "adapter-hospital"
    refused = [x for x in lines if x.get("event") == "request refused"]
    assert refused and "subjects.0.age" in refused[0]["fields"]
    # Each request has its own log context: the accepted report's id does not leak into the
    # next request's lines, while its sender does appear there.
    assert "report_id" not in refused[0] and refused[0]["source_system"] == system_for(H)
    for secret in (
        body["narrative"],
        body["reporter"]["name"],
        body["subjects"][0]["name"],
        "NOT-AN-AGE",
    ):
        assert secret not in out


def test_invented_keys_never_reach_the_log(make_client, json_log):
    client = make_client()
    json_log(start=True)
    body = submission(H, "log-3")
    body["Zhang San 13800000000"] = 1
    body["subjects"][0]["age"] = "x"
    r = post(client, body)
    assert r.status_code == 422
    out, lines = json_log()
    refused = [x for x in lines if x.get("event") == "request refused"]
    assert "Zhang San" not in out and "(unknown field)" in refused[0]["fields"]
    assert "subjects.0.age" in refused[0]["fields"]


@pytest.mark.parametrize("source", list(Source))
def test_stamped_event_is_exactly_what_make_report_gives(make_client, source):
    from datetime import UTC, datetime

    from schemas import SUBMISSION_MODELS, dump_event, make_report
    from services.common.ids import uuid7

    rt = make_client(source).app.state.intake
    for body in submissions(source):
        sub = SUBMISSION_MODELS[source].model_validate(body)
        rid, now = uuid7(), datetime.now(UTC)
        reference = make_report(sub, source=source, report_id=rid, source_system="sys-1", received_at=now)
        assert dump_event(rt.stamp(sub, rid, "sys-1", now)) == dump_event(reference)
        assert parse_report(dump_event(rt.stamp(sub, rid, "sys-1", now))) == reference


def test_stamped_event_equals_make_report_for_generated_submissions(make_client):
    from datetime import UTC, datetime

    from hypothesis import HealthCheck, given, settings

    from schemas import SUBMISSION_MODELS, dump_event, make_report
    from services.common.ids import uuid7

    from ..schemas.strategies import submissions as generated

    runtimes = {}

    @settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(generated())
    def check(drawn):
        source, data = drawn
        if source not in runtimes:
            runtimes[source] = make_client(source).app.state.intake
        sub = SUBMISSION_MODELS[source].model_validate_json(json.dumps(data))
        rid, now = uuid7(), datetime.now(UTC)
        reference = dump_event(make_report(sub, source=source, report_id=rid, source_system="s-1", received_at=now))
        assert dump_event(runtimes[source].stamp(sub, rid, "s-1", now)) == reference

    check()


def test_an_outbox_fault_is_503_never_500(make_client, monkeypatch):
    import sqlite3

    client = make_client(retry_after_s=3)
    box = client.app.state.adapter.outbox

    def broken(*args, **kwargs):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(box, "_apply_insert", broken)
    r = post(client, submission(H, "fault-1"))
    assert r.status_code == 503 and r.json()["error"] == "outbox_unavailable"
    assert r.headers["retry-after"] == "3" and "disk" not in r.text
    monkeypatch.undo()
    assert post(client, submission(H, "fault-1")).status_code == 202  # nothing half-stored
    assert box.backlog == 1


def test_pruning_through_the_runtime(make_client):
    client = make_client(sent_retention_s=0)
    rt = client.app.state.adapter
    rid = post(client, submission(H, "prune-1")).json()["report_id"]
    rt.outbox.mark_sent([p.seq for p in rt.outbox.fetch_unsent(10)], sent_ms=rt.outbox.clock_ms() - 1).result(5)
    assert rt.prune_once() == (1, 0)
    assert client.get(f"/v1/reports/{rid}", headers=auth(H)).json()["published"] is True
    assert post(client, submission(H, "prune-1")).json()["duplicate"] is True
