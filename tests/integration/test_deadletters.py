"""``cluebus deadletters`` on the real broker: ids, coordinates and error types; never a letter's content."""

from __future__ import annotations

import json
import subprocess
from types import SimpleNamespace

from schemas import dump_event
from services.deadletter.letters import dead_letter

from .support import CLUEBUS, produce


def test_lists_letters_without_their_content_and_names_unreadable_records(kafka_bootstrap, bus, bus_env):
    narrative = "示例 what the report said"
    refused = SimpleNamespace(topic=bus.report("school"), partition=1, offset=7, key=b"k", value=narrative.encode())
    letter = dead_letter("router", refused, ValueError("narrative: too long"))
    # One key, one partition: the listing keeps their order.
    produce(kafka_bootstrap, [(bus.deadletter, b"k", dump_event(letter)), (bus.deadletter, b"k", b"{not json")])

    result = subprocess.run([CLUEBUS, "deadletters"], env=bus_env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[0]["dead_letter_id"] == letter.dead_letter_id
    assert (lines[0]["topic"], lines[0]["offset"], lines[0]["error_type"]) == (bus.report("school"), 7, "ValueError")
    assert lines[0]["value_bytes"] == len(narrative.encode())
    assert lines[1] == {"offset": 1, "error": "unreadable dead letter"}
    assert narrative not in result.stdout + result.stderr
    assert "1 dead letters shown" in result.stderr
