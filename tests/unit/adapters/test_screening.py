"""DNA-class text and non-coercion at the adapter: 422 with the legal reason, nothing stored, every path."""

from __future__ import annotations

import csv
import io
import json

import pytest

from schemas import Source

from .support import auth, submission

PROFILE = "D8S1179 13/14, D21S11 29/30"
CHINESE = "经DNA 比对，确认为被拐儿童"


def _csv(rows: list[dict[str, str]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


@pytest.mark.parametrize("source", list(Source))
@pytest.mark.parametrize("text", [PROFILE, CHINESE])
def test_dna_text_is_refused_on_every_path_and_nothing_is_stored(make_client, source, text):
    client = make_client(source)
    outbox = client.app.state.adapter.outbox
    body = submission(source, "dna-json")
    body["narrative"] = f"Seen at the desk. {text}."
    r = client.post("/v1/reports", json=body, headers=auth(source))
    assert r.status_code == 422, r.text
    [error] = r.json()["errors"]
    assert error["field"] == "narrative"
    assert "may only be collected by the police" in error["reason"]
    assert text not in r.text and "D8S1179" not in r.text  # the refusal names the kind, never the text

    good = submission(source, "dna-ok")
    lines = [json.dumps(good), json.dumps({**body, "source_ref": "dna-ndjson"})]
    r = client.post(
        "/v1/reports/batch",
        content="\n".join(lines).encode(),
        headers={"Content-Type": "application/x-ndjson", **auth(source)},
    )
    assert [x["status"] for x in r.json()["results"]] == ["accepted", "rejected"]
    assert "may only be collected by the police" in r.json()["results"][1]["errors"][0]["reason"]

    row = {"source_ref": "dna-csv", "narrative": text, "reported_at": good["reported_at"], "category": good["category"]}
    row |= {"subjects": json.dumps(good["subjects"]), "details": json.dumps(good["details"], ensure_ascii=False)}
    row |= {"reporter": json.dumps(good["reporter"], ensure_ascii=False)}
    r = client.post("/v1/reports/batch", content=_csv([row]), headers={"Content-Type": "text/csv", **auth(source)})
    [result] = r.json()["results"]
    assert result["status"] == "rejected" and result["errors"][0]["field"] == "narrative"
    assert "may only be collected by the police" in result["errors"][0]["reason"]
    assert outbox.backlog == 1  # only the good row of the JSON-lines batch


@pytest.mark.parametrize(
    "path, value",
    [
        (("details", "sex_determination_request"), 0),
        (("details", "sex_determination_request"), "yes"),
        (("details", "suspected_surrogacy"), "true"),
        (("subjects", 0, "age"), "12"),
        (("subjects", 0, "age"), True),
        (("reported_at",), 1),
        (("reported_at",), "2026-11-20 09:31:00+08:00"),
        (("reported_at",), "2026-11-20T09:31:00"),
        (("narrative",), "\u0000"),
        (("reporter", "name"), "Wang\u0007"),
        (("reporter", "name"), "   "),
    ],
)
def test_look_alikes_are_refused_not_coerced(make_client, path, value):
    client = make_client(Source.hospital)
    body = submission(Source.hospital, "strict-1")
    node = body
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    r = client.post("/v1/reports", json=body, headers=auth(Source.hospital))
    assert r.status_code == 422, r.text
    assert ".".join(map(str, path)) in {e["field"] for e in r.json()["errors"]}
    assert client.app.state.adapter.outbox.backlog == 0


def test_csv_booleans_and_whole_numbers_still_read(make_client):
    client = make_client(Source.venue)
    good = submission(Source.venue, "csv-bool")
    row = {k: good[k] for k in ("source_ref", "reported_at", "category", "narrative")}
    row |= {"subjects": json.dumps(good["subjects"]), "reporter": json.dumps(good["reporter"], ensure_ascii=False)}
    row |= {f"details.{k}": str(v) for k, v in good["details"].items() if isinstance(v, str)}
    row |= {"details.minor_present": "TRUE", "details.escort_services": "false"}
    bad = {**row, "source_ref": "csv-bool-2", "details.minor_present": "yes"}
    r = client.post(
        "/v1/reports/batch", content=_csv([row, bad]), headers={"Content-Type": "text/csv", **auth(Source.venue)}
    )
    assert [x["status"] for x in r.json()["results"]] == ["accepted", "rejected"], r.text
    assert r.json()["results"][1]["errors"][0]["field"] == "details.minor_present"


@pytest.mark.parametrize("source", list(Source))
def test_a_shareable_summary_that_names_a_person_is_refused_and_nothing_is_stored(make_client, source):
    client = make_client(source)
    body = submission(source, "share-1")
    name = next(s["name"] for s in body["subjects"] if s.get("name"))
    body["shareable_summary"] = f"Seen at the desk with {name}."
    r = client.post("/v1/reports", json=body, headers=auth(source))
    assert r.status_code == 422, r.text
    [error] = r.json()["errors"]
    assert "shareable_summary must not identify anyone" in error["reason"] and "subjects." in error["reason"]
    assert name not in r.text  # the refusal names the field it repeats, never the value
    assert client.app.state.adapter.outbox.backlog == 0
    body["shareable_summary"] = "Seen at the desk; the person is safe and with staff."
    assert client.post("/v1/reports", json=body, headers=auth(source)).status_code == 202
    assert client.app.state.adapter.outbox.backlog == 1
