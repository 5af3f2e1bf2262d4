"""`cluebus rules diff --topic` against the real broker: past reports re-planned, nothing written or committed."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from textwrap import dedent

from click.testing import CliRunner
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from schemas import Source, parse_report
from schemas.examples import load_examples
from services.cli import main
from tests.unit.rules.support import HEAD

from ..support import produce

EXAMPLES = [parse_report(json.dumps(d)) for d in load_examples("v1", "reports").values()]

OLD_TREE = """
    [route]
    name = "root"
    recipients = [{ department = "police", role = "lead" }]

    [[route.routes]]
    name = "marriage"
    match.source = ["marriage"]
    continue = true
    recipients = [{ department = "police", role = "lead" }]

      [[route.routes.routes]]
      name = "foreign-party"
      match.details = { party_nationalities = { contains_other_than = "CN" } }
      recipients = [{ department = "hrss", role = "cooperating" }]
"""
# The planted change: a foreign party now also reaches the joint meeting, at critical priority.
NEW_TREE = OLD_TREE.replace(
    'recipients = [{ department = "hrss", role = "cooperating" }]',
    'priority = "critical"\n      recipients = [{ department = "hrss", role = "cooperating" }, '
    '{ department = "joint_meeting", role = "cooperating" }]',
)


def _offsets(bootstrap, topics):
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    try:
        tps = [TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t)]
        return consumer.end_offsets(tps)
    finally:
        consumer.close()


def _groups(bootstrap, prefix):
    """Groups this test could have created (the broker is shared: other tests' groups come and go)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        names = {g["group_id"] for g in admin.list_groups()}
    finally:
        admin.close()
    return {n for n in names if n.startswith(prefix) or "rules-diff" in n or n == ""}


def test_diff_over_a_topic_finds_the_planted_change_and_leaves_no_trace(kafka_bootstrap, bus, tmp_path):
    old, new = tmp_path / "old.toml", tmp_path / "new.toml"
    old.write_text(HEAD + dedent(OLD_TREE))
    new.write_text(HEAD + dedent(NEW_TREE))
    marriage_topic, labour_topic = bus.report(Source.marriage.value), bus.report(Source.labour.value)
    records = [(bus.report(r.source.value), r.report_id.encode(), r.model_dump_json().encode()) for r in EXAMPLES]
    produce(kafka_bootstrap, [*records, (marriage_topic, b"junk", b"{not a report")])
    topics = [bus.report(s.value) for s in Source]
    offsets_before, groups_before = _offsets(kafka_bootstrap, topics), _groups(kafka_bootstrap, bus.prefix)

    env = {"CLUEBUS_KAFKA_BOOTSTRAP": kafka_bootstrap}
    args = ["rules", "diff", str(old), str(new), "--topic", marriage_topic, "--topic", labour_topic]
    result = CliRunner().invoke(main, args, env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    marriages = [r for r in EXAMPLES if r.source == Source.marriage]
    labour = [r for r in EXAMPLES if r.source == Source.labour]
    foreign = [r for r in marriages if any(n != "CN" for n in r.details.party_nationalities)]
    assert foreign, "the examples hold a cross-border marriage"
    assert f"{len(marriages) + len(labour)} reports, {len(foreign)} would change" in result.output
    for report in foreign:
        assert f"{report.report_id} ({marriage_topic}/" in result.output
    assert "+ joint_meeting        cooperating  via root > marriage > foreign-party" in result.output
    assert "~ priority" in result.output and "-> critical   via root > marriage > foreign-party" in result.output
    assert "1 skipped (not routable):" in result.output and "not a report:" in result.output

    data = json.loads(CliRunner().invoke(main, [*args, "--format", "json"], env=env, catch_exceptions=False).output)
    assert data["routes"]["root > marriage > foreign-party"]["reports"] == len(foreign)
    assert {c["report"].split(" ")[0] for c in data["changes"]} == {r.report_id for r in foreign}

    # --since after every record: nothing to re-plan.
    later = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
    result = CliRunner().invoke(main, [*args, "--since", later], env=env, catch_exceptions=False)
    assert result.exit_code == 0 and "0 reports, 0 would change" in result.output

    # No side effects: nothing written to any topic, no consumer group created or moved.
    assert _offsets(kafka_bootstrap, topics) == offsets_before
    assert _groups(kafka_bootstrap, bus.prefix) == groups_before == set()


def test_diff_names_a_missing_topic(kafka_bootstrap, bus, tmp_path):
    old = tmp_path / "old.toml"
    old.write_text(HEAD + dedent(OLD_TREE))
    result = CliRunner().invoke(
        main,
        ["rules", "diff", str(old), str(old), "--topic", f"{bus.prefix}.no-such-topic"],
        env={"CLUEBUS_KAFKA_BOOTSTRAP": kafka_bootstrap},
        catch_exceptions=False,
    )
    assert result.exit_code == 2
    assert f"topic '{bus.prefix}.no-such-topic' does not exist" in result.output
