"""Replies: one time format for every timestamp the API prints, equal to the event's."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import AwareDatetime, TypeAdapter

from schemas import Source, parse_report
from services.adapters.responses import utc_timestamp

from .support import auth, submission, system_for

PYDANTIC_TIME = TypeAdapter(AwareDatetime)


@given(st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5))])))
def test_utc_timestamp_is_the_text_pydantic_writes_into_events(moment):
    text = utc_timestamp(moment)
    assert text.endswith("Z")
    assert text == json.loads(PYDANTIC_TIME.dump_json(moment.astimezone(UTC)))
    assert datetime.fromisoformat(text) == moment


def test_epoch_milliseconds_print_the_same_way():
    assert utc_timestamp(1_767_225_600_123) == "2026-01-01T00:00:00.123000Z"
    assert utc_timestamp(1_767_225_600_000) == "2026-01-01T00:00:00Z"


def test_every_time_in_a_receipt_has_one_format(make_client):
    from schemas import referral_id_for
    from schemas.examples import load_examples

    school = Source.school
    client = make_client(school)
    receipt = client.post("/v1/reports", json=submission(school, "tf-1"), headers=auth(school)).json()
    rid = receipt["report_id"]
    box = client.app.state.adapter.outbox
    [pending] = box.fetch_unsent(10)
    assert receipt["received_at"] == json.loads(pending.payload)["received_at"]  # the event's own text
    assert parse_report(pending.payload).received_at == datetime.fromisoformat(receipt["received_at"])
    box.mark_sent([pending.seq]).result(5)
    status = load_examples("v1", "events")["report-status"]
    status = {
        **status,
        "report_id": rid,
        "source_system": system_for(school),
        "updated_at": "2026-01-01T08:00:00+08:00",  # an offset: printed in UTC
        "departments": [{**d, "referral_id": referral_id_for(rid, d["department"])} for d in status["departments"]],
    }
    box.store_statuses([(rid, status["seq"], 0, json.dumps(status).encode())], {}).result(5)
    view = client.get(f"/v1/reports/{rid}", headers=auth(school)).json()
    assert view["status"]["updated_at"] == "2026-01-01T00:00:00Z"
    for text in (view["received_at"], view["published_at"], view["status"]["updated_at"]):
        assert text.endswith("Z") and datetime.fromisoformat(text).tzinfo is not None


@pytest.mark.parametrize("source", list(Source))
def test_the_openapi_examples_are_accepted(make_client, source):
    client = make_client(source)
    doc = client.get("/openapi.json").json()
    single = doc["paths"]["/v1/reports"]["post"]
    body = single["requestBody"]["content"]["application/json"]["example"]
    key = single["parameters"][0]["schema"]
    assert key["pattern"] and key["maxLength"] == 128
    assert (
        client.post("/v1/reports", json=body, headers={**auth(source), "Idempotency-Key": "~" * 128}).status_code == 202
    )
    batch = doc["paths"]["/v1/reports/batch"]["post"]["requestBody"]["content"]
    for media in ("text/csv", "application/x-ndjson"):
        r = client.post(
            "/v1/reports/batch",
            content=batch[media]["example"].encode(),
            headers={"Content-Type": media, **auth(source)},
        )
        assert r.status_code == 200 and r.json()["rejected"] == 0, (media, r.text)
    assert "text/plain" in doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]


@pytest.mark.parametrize("source", [Source.hospital, Source.school])
def test_the_openapi_document_states_what_the_schema_cannot(make_client, source):
    """The refusals beyond the schemas, the headers the server sends, the form of a receipt id
    (held against the server in tests/integration/adapters/test_openapi_conformance.py)."""
    from schemas.model_rules import model_rules
    from services.adapters.batch import CSV_REFUSALS

    doc = make_client(source).get("/openapi.json").json()
    single = doc["paths"]["/v1/reports"]["post"]
    listed = single["requestBody"]["content"]["application/json"]["x-cluebus-refusals"]
    assert [r["reason"] for r in listed] == [r.reason for r in model_rules(source)]
    assert any("pupil_subject_index" in r["reason"] for r in listed) == (source == Source.school)
    batch = doc["paths"]["/v1/reports/batch"]["post"]["requestBody"]["content"]
    assert [r["reason"] for r in batch["text/csv"]["x-cluebus-refusals"]] == [r for r, _ in CSV_REFUSALS]
    assert batch["application/x-ndjson"]["schema"]["pattern"]
    responses = single["responses"]
    assert responses["202"]["headers"]["Location"]["required"] is True
    assert responses["429"]["headers"]["Retry-After"]["required"] is True
    assert responses["401"]["headers"]["WWW-Authenticate"]["schema"]["const"] == "Bearer"
    receipt = doc["paths"]["/v1/reports/{report_id}"]["get"]
    assert receipt["parameters"][0]["schema"]["pattern"].startswith("^[0-9a-f]{8}-")
    assert "422" not in receipt["responses"] and "HTTPValidationError" not in json.dumps(doc)
