import pytest

from schemas.enums import Source
from services.common.settings import TopicSettings
from services.common.topic_admin import topic_specs
from services.common.topics import TopicNames
from services.devkafka.broker import LauncherError, LocalBroker
from tests.conftest import REPO
from tests.small_rules import small_rules

SOURCES = [s.value for s in Source]


def test_every_topic_family_is_specified_once():
    specs = topic_specs(TopicSettings(prefix="x", partitions=4), small_rules(["police", "education"]))
    names = [s.name for s in specs]
    assert len(names) == len(set(names))
    assert {f"x.reports.{s}" for s in SOURCES} <= set(names)
    assert {"x.referrals.police", "x.referrals.education"} <= set(names)
    for family in ("decisions", "acks", "escalations", "deadletter", "status", "tracker.ticks"):
        assert f"x.{family}" in names
    # Co-partitioning: every topic keyed by report id has the same partition count.
    assert {s.partitions for s in specs} == {4}
    status = next(s for s in specs if s.name == "x.status")
    assert status.config["cleanup.policy"] == "compact"


def test_topic_names_are_prefixed():
    names = TopicNames("p")
    assert names.report("hospital") == "p.reports.hospital"
    assert names.app_id("router") == "p-router"


@pytest.mark.parametrize("port", [0, 80, 70000, 65535])
def test_launcher_rejects_unusable_ports(port, tmp_path):
    with pytest.raises(LauncherError, match="invalid port"):
        LocalBroker(port=port, run_dir=tmp_path)


def test_launcher_properties_use_kraft_on_the_given_ports(tmp_path):
    broker = LocalBroker(port=29092, run_dir=tmp_path)
    props = broker.properties()
    assert props["process.roles"] == "broker,controller"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:29092,CONTROLLER://127.0.0.1:29093"
    assert props["log.dirs"] == str(tmp_path / "kafka-29092" / "data")
    assert props["auto.create.topics.enable"] == "false"
    assert not broker.running()
    assert "not running" in broker.down()


def test_every_module_with_commands_is_registered_and_every_command_has_one_home():
    import ast

    from services import cli

    with_commands = set()
    for path in [*REPO.glob("services/**/*.py"), *REPO.glob("schemas/*.py")]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if any(
            isinstance(n, ast.Assign) and any(getattr(t, "id", "") == "COMMANDS" for t in n.targets) for n in tree.body
        ):
            with_commands.add(".".join(path.relative_to(REPO).with_suffix("").parts))
    assert with_commands == set(cli.SUBSYSTEM_MODULES)
    assert "deadletters" in cli.main.commands and "router" in cli.main.commands
    from services.deadletter.cli import deadletters_command
    from services.router.cli import COMMANDS as ROUTER_COMMANDS

    assert cli.main.commands["deadletters"] is deadletters_command
    assert [c.name for c in ROUTER_COMMANDS] == ["router"]
