"""Tokens file parsing and the 401/403 matrix."""

from __future__ import annotations

import os
import time

import pytest

from schemas import Source
from services.adapters.auth import AuthError, TokensError, TokenStore, parse_tokens, token_hash

from .support import submission, system_for, token_for


def test_every_source_system_is_identified_by_its_own_token(tokens_file):
    store = TokenStore(tokens_file)
    for source in Source:
        cred = store.authenticate(f"Bearer {token_for(source, 2)}", source)
        assert (cred.source, cred.source_system) == (source, system_for(source, 2))


@pytest.mark.parametrize(
    "header, status",
    [
        (None, 401),
        ("", 401),
        ("Basic dXNlcjpwYXNz", 401),
        ("Bearer", 401),
        ("Bearer    ", 401),
        ("Bearer wrong-token", 401),
        (f"Bearer {token_for(Source.hospital)}x", 401),
        (f"bearer {token_for(Source.hospital)}", 200),
        (f"Bearer {token_for(Source.school)}", 403),
        (f"Bearer {token_for(Source.venue, 2)}", 403),
    ],
)
def test_auth_matrix(tokens_file, header, status):
    store = TokenStore(tokens_file)
    if status == 200:
        assert store.authenticate(header, Source.hospital).source == Source.hospital
        return
    with pytest.raises(AuthError) as err:
        store.authenticate(header, Source.hospital)
    assert err.value.status == status
    assert err.value.reason == ("unauthorized" if status == 401 else "forbidden")


@pytest.mark.parametrize("source", list(Source))
def test_http_401_and_403_on_every_adapter(make_client, source):
    client = make_client(source)
    body = submission(source, ref="auth-1")
    missing = client.post("/v1/reports", json=body)
    assert missing.status_code == 401 and missing.json()["error"] == "unauthorized"
    assert missing.headers["www-authenticate"] == "Bearer"
    wrong = client.post("/v1/reports", json=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    other = Source.school if source != Source.school else Source.labour
    forbidden = client.post("/v1/reports", json=body, headers={"Authorization": f"Bearer {token_for(other)}"})
    assert forbidden.status_code == 403 and forbidden.json()["error"] == "forbidden"
    assert other.value not in forbidden.text  # the 403 never says whose token it is (issue 15)
    ok = client.post("/v1/reports", json=body, headers={"Authorization": f"Bearer {token_for(source)}"})
    assert ok.status_code == 202
    # GET needs credentials too
    rid = ok.json()["report_id"]
    assert client.get(f"/v1/reports/{rid}").status_code == 401
    assert client.get(f"/v1/reports/{rid}", headers={"Authorization": f"Bearer {token_for(other)}"}).status_code == 403


def test_source_and_system_come_from_the_token_never_the_body(make_client):
    client = make_client(Source.hospital)
    body = submission(Source.hospital, ref="stamp-1")
    body["source_system"] = "attacker"
    r = client.post("/v1/reports", json=body, headers={"Authorization": f"Bearer {token_for(Source.hospital)}"})
    assert r.status_code == 422
    assert {"field": "source_system", "reason": "Extra inputs are not permitted"} in r.json()["errors"]


@pytest.mark.parametrize(
    "text, needle",
    [
        ("not toml [", "not valid TOML"),
        ("[other]\n", "no [systems.<id>] tables"),
        (
            '[systems.Bad_Id]\nsource="hospital"\ntoken_sha256="' + "0" * 64 + '"',
            "the id must match",
        ),
        ('[systems.ok-1]\nsource="zoo"\ntoken_sha256="' + "0" * 64 + '"', "source must be one of"),
        ('[systems.ok-1]\nsource="hospital"\ntoken_sha256="abc"', "64 hex digits"),
        (
            '[systems.ok-1]\nsource="hospital"\ntoken="plain"\ntoken_sha256="' + "0" * 64 + '"',
            "unknown keys",
        ),
        (
            '[systems.ok-1]\nsource="hospital"\ntoken_sha256="' + "0" * 64 + '"\n'
            '[systems.ok-2]\nsource="school"\ntoken_sha256="' + "0" * 64 + '"',
            "also given to ok-1",
        ),
    ],
)
def test_bad_tokens_files_are_named(text, needle):
    with pytest.raises(TokensError) as err:
        parse_tokens(text, "t.toml")
    assert needle in str(err.value) and str(err.value).startswith("t.toml")


def test_missing_tokens_file_is_a_clear_error(tmp_path):
    with pytest.raises(TokensError, match="does not exist"):
        TokenStore(tmp_path / "nope.toml")


def test_tokens_file_changes_are_picked_up_and_broken_edits_ignored(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text(f'[systems.sys-1]\nsource="hospital"\ntoken_sha256="{token_hash("first-token-123456")}"\n')
    store = TokenStore(path, check_interval_s=0)
    assert store.identify("first-token-123456") is not None
    path.write_text(f'[systems.sys-1]\nsource="hospital"\ntoken_sha256="{token_hash("second-token-12345")}"\n')
    os.utime(path, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    assert store.identify("second-token-12345") is not None
    assert store.identify("first-token-123456") is None
    path.write_text("broken [")
    os.utime(path, ns=(time.time_ns() + 2 * 10**9, time.time_ns() + 2 * 10**9))
    assert store.identify("second-token-12345") is not None  # last good credentials kept


def test_shipped_token_files_are_valid():
    from pathlib import Path

    deploy = Path(__file__).resolve().parents[3] / "deploy" / "adapters"
    demo = parse_tokens((deploy / "demo-tokens.toml").read_text(), "demo")
    assert {c.source for c in demo} == set(Source)
    for cred in demo:
        assert cred.token_sha256.hex() == token_hash(f"demo-{cred.source.value}-token")
    assert parse_tokens((deploy / "tokens.example.toml").read_text(), "example")
