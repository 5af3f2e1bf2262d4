"""CSV column mapping, JSON lines splitting, and the CLI helpers that need no server."""

from __future__ import annotations

import hashlib
import json

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from schemas import SUBMISSION_MODELS, Source
from services.adapters.batch import TooManyRows, parse_csv, parse_ndjson, resolve_column
from services.cli import main

H = SUBMISSION_MODELS[Source.hospital]
S = SUBMISSION_MODELS[Source.school]


@pytest.mark.parametrize(
    "name, parts, kind",
    [
        ("source_ref", ("source_ref",), "text"),
        ("subjects.0.age", ("subjects", 0, "age"), "int"),
        ("subjects.12.name", ("subjects", 12, "name"), "text"),
        ("indicators", ("indicators",), "list"),
        ("subjects", ("subjects",), "json"),
        ("details", ("details",), "json"),
        ("details.newborn.sex", ("details", "newborn", "sex"), "text"),
        ("location.district_code", ("location", "district_code"), "text"),
        ("attachments.0.uri", ("attachments", 0, "uri"), "text"),
    ],
)
def test_columns_resolve_against_the_model(name, parts, kind):
    column = resolve_column(H, name)
    assert column is not None and column.parts == parts and column.kind == kind


@pytest.mark.parametrize(
    "name",
    [
        "dna",
        "subjects.x.age",
        "subjects.100.age",
        "details.school_name",
        "source_ref.x",
        "",
        "subjects.0.age.x",
    ],
)
def test_unknown_columns_are_none(name):
    assert resolve_column(H, name) is None


def test_school_details_columns():
    assert resolve_column(S, "details.days_absent").kind == "int"
    assert (
        resolve_column(S, "details.left_behind").kind == "bool"
    )  # read as true/false: the models no longer coerce text


def test_csv_rows_become_nested_json():
    body = (
        b"source_ref,subjects.0.age,subjects.0.role,subjects.1.role,indicators,details\n"
        b'a-1,9,victim,suspect,signs_of_injury|malnutrition,"{""encounter_type"": ""other""}"\n'
        b",,,,,\n"
        b"a-2,,victim,,,\n"
    )
    rows = parse_csv(body, H, 10)
    assert [r.row for r in rows] == [1, 3]
    first = json.loads(rows[0].body)
    assert first == {
        "source_ref": "a-1",
        "subjects": [{"age": 9, "role": "victim"}, {"role": "suspect"}],
        "indicators": ["signs_of_injury", "malnutrition"],
        "details": {"encounter_type": "other"},
    }
    assert json.loads(rows[1].body) == {"source_ref": "a-2", "subjects": [{"role": "victim"}]}


def test_csv_row_problems_are_per_row():
    body = b'source_ref,details\na,"{broken"\nb,\nc,1,2\n'
    rows = parse_csv(body, H, 10)
    assert rows[0].errors == [{"field": "details", "reason": "not valid JSON"}]
    assert rows[1].body is not None
    assert rows[2].errors[0]["reason"] == "more cells than header columns"


def test_row_limits():
    with pytest.raises(TooManyRows):
        parse_ndjson(b"{}\n{}\n{}\n", 2)
    with pytest.raises(TooManyRows):
        parse_csv(b"source_ref\na\nb\nc\n", H, 2)
    assert [r.row for r in parse_ndjson(b"{}\r\n\n  \n{}", 5)] == [1, 4]


def test_token_hash_command():
    result = CliRunner().invoke(main, ["adapter", "token-hash"], input="demo-hospital-token\n")
    assert result.exit_code == 0
    assert result.stdout.strip() == hashlib.sha256(b"demo-hospital-token").hexdigest()
    assert CliRunner().invoke(main, ["adapter", "token-hash"], input="\n").exit_code == 1
    short = CliRunner().invoke(main, ["adapter", "token-hash"], input="abc\n")
    assert short.exit_code == 1 and "at least 16" in short.stderr and short.stdout == ""


def test_check_tokens_command(tmp_path, tokens_file):
    ok = CliRunner().invoke(main, ["adapter", "check-tokens", str(tokens_file)])
    assert ok.exit_code == 0 and "hospital-sys-1" in ok.stdout and "token" not in ok.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text("[systems.x]\n")
    assert CliRunner().invoke(main, ["adapter", "check-tokens", str(bad)]).exit_code == 1


def test_every_source_has_an_adapter_command():
    result = CliRunner().invoke(main, ["adapter", "--help"])
    for source in Source:
        assert source.value in result.stdout


def test_send_needs_a_token(monkeypatch):
    monkeypatch.delenv("CLUEBUS_SEND_TOKEN", raising=False)
    result = CliRunner().invoke(main, ["send", "hospital", "--example"])
    assert result.exit_code == 2 and "CLUEBUS_SEND_TOKEN" in result.stderr


def test_adapter_without_tokens_file_fails_in_one_line(monkeypatch, tmp_path):
    monkeypatch.delenv("CLUEBUS_ADAPTER_TOKENS_FILE", raising=False)
    monkeypatch.setenv("CLUEBUS_STATE_DIR", str(tmp_path))
    result = CliRunner().invoke(main, ["adapter", "venue"])
    assert result.exit_code == 1 and "CLUEBUS_ADAPTER_TOKENS_FILE" in result.stderr


@pytest.mark.parametrize("source", list(Source))
def test_bundled_examples_are_valid_submissions(source):
    from pathlib import Path

    from services.adapters.cli import example_submission

    SUBMISSION_MODELS[source].model_validate(example_submission(source))
    path = Path(__file__).resolve().parents[3] / "deploy" / "adapters" / "examples" / f"{source.value}.json"
    SUBMISSION_MODELS[source].model_validate_json(path.read_bytes())


def test_settings_defaults_per_source(monkeypatch, tmp_path):
    from pathlib import Path

    from services.adapters.settings import AdapterSettings
    from services.common import settings as cfg

    s = cfg.load(AdapterSettings)
    assert [s.resolved_port(x) for x in Source] == [8101, 8102, 8103, 8104, 8105]
    assert s.resolved_outbox_dir(Source.venue, Path("st")) == Path("st/adapter-venue")
    conf = tmp_path / "c.toml"
    conf.write_text("[adapter]\nport = 9000\nbacklog_limit = 5\n")
    monkeypatch.setenv("CLUEBUS_CONFIG", str(conf))
    monkeypatch.setenv("CLUEBUS_ADAPTER_BACKLOG_LIMIT", "7")
    s = cfg.load(AdapterSettings)
    assert (s.resolved_port(Source.school), s.backlog_limit) == (9000, 7)
    with pytest.raises(ValidationError):
        s.port = 1  # frozen


def test_log_guard_strips_exception_messages_and_limits_kafka_noise():
    import logging
    import sys

    from services.adapters.cli import _LogGuard

    guard = _LogGuard()
    try:
        raise ValueError("secret input 13800000000")
    except ValueError:
        info = sys.exc_info()
    record = logging.LogRecord("uvicorn.error", logging.ERROR, "f", 1, "Exception in ASGI application", (), info)
    assert guard.filter(record) and record.exc_info is None
    assert "ValueError" in record.getMessage() and "13800000000" not in record.getMessage()
    noisy = [
        logging.LogRecord("kafka.conn", logging.ERROR, "f", 1, "%s: Connection lost: %s", ("a", "b"), None)
        for _ in range(3)
    ]
    assert [guard.filter(r) for r in noisy] == [True, False, False]


@pytest.mark.parametrize(
    "name, content_type",
    [("hospital-batch.csv", "text/csv"), ("hospital-batch.jsonl", "application/x-ndjson")],
)
def test_shipped_batch_examples_are_accepted(make_client, name, content_type):
    from pathlib import Path

    from .support import auth

    path = Path(__file__).resolve().parents[3] / "deploy" / "adapters" / "examples" / name
    client = make_client(Source.hospital)
    r = client.post(
        "/v1/reports/batch",
        content=path.read_bytes(),
        headers={"Content-Type": content_type, **auth(Source.hospital)},
    )
    assert r.status_code == 200
    assert [x["status"] for x in r.json()["results"]] == ["accepted"] * 3, r.json()
