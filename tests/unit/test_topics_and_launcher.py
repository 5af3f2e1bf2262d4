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
    # Replication is left to fit the cluster when the topics are made.
    assert {(s.replication_factor, s.min_insync_replicas) for s in specs} == {(None, None)}


@pytest.mark.parametrize(
    "service, table_module, table_factory, table_name",
    [
        ("router", "services.router.tables", "seen_reports", "seen-reports"),
        ("tracker", "services.tracker.tables", "tracking", "tracking"),
    ],
)
def test_faust_internal_topics_are_the_ones_faust_declares(tmp_path, service, table_module, table_factory, table_name):
    import importlib

    from services.common.settings import KafkaSettings
    from services.common.streams.app import make_app
    from services.common.topic_admin import faust_internal_specs

    topics = TopicSettings(prefix="x", partitions=4).fitted(3)
    app = make_app(service, KafkaSettings(), topics, data_dir=tmp_path)
    getattr(importlib.import_module(table_module), table_factory)(app)
    specs = {s.name: s for s in faust_internal_specs(app, topics)}
    changelog = app.tables[table_name].changelog_topic
    leader = app._leader_assignor._leader_topic  # faust's own object: the name below must not drift
    assert set(specs) == {changelog.get_topic_name(), leader.get_topic_name()}
    assert specs[changelog.get_topic_name()].partitions == 4
    assert specs[changelog.get_topic_name()].config == {"cleanup.policy": "compact"}
    assert specs[leader.get_topic_name()].partitions == leader.partitions == 1
    # The same replication as the bus's topics, which faust alone would not give (min ISR).
    assert {(s.replication_factor, s.min_insync_replicas) for s in specs.values()} == {(3, 2)}
    assert app.conf.topic_replication_factor == 3


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


def test_cluster_nodes_use_consecutive_ports_one_quorum_and_their_own_folders(tmp_path):
    from services.devkafka.cluster import LocalCluster

    cluster = LocalCluster(port=39100, brokers=3, run_dir=tmp_path)
    assert cluster.bootstrap == "127.0.0.1:39100,127.0.0.1:39101,127.0.0.1:39102"
    voters = "1@127.0.0.1:39103,2@127.0.0.1:39104,3@127.0.0.1:39105"
    homes = set()
    for node_id, node in enumerate(cluster.nodes, start=1):
        props = node.properties()
        assert props["node.id"] == str(node_id)
        assert props["process.roles"] == "broker,controller"
        assert props["controller.quorum.voters"] == voters
        assert "controller.quorum.bootstrap.servers" not in props
        assert props["listeners"] == f"PLAINTEXT://127.0.0.1:{39099 + node_id},CONTROLLER://127.0.0.1:{39102 + node_id}"
        assert props["log.dirs"] == str(tmp_path / "kafka-cluster-39100" / f"node-{node_id}" / "data")
        # Kafka's own topics and any topic made without settings: three copies, two in sync.
        assert props["offsets.topic.replication.factor"] == props["default.replication.factor"] == "3"
        assert props["min.insync.replicas"] == props["transaction.state.log.min.isr"] == "2"
        assert props["unclean.leader.election.enable"] == "false"
        assert node._quorum_format_args() == []  # static quorum, not --standalone
        homes.add(node.home)
    assert len(homes) == 3
    assert cluster.running() == []
    assert "not running" in cluster.down()


@pytest.mark.parametrize("brokers", [0, 1, 10])
def test_a_local_cluster_has_two_to_nine_brokers(tmp_path, brokers):
    from services.devkafka.cluster import LocalCluster

    with pytest.raises(LauncherError, match="2 to 9 brokers"):
        LocalCluster(port=39100, brokers=brokers, run_dir=tmp_path)


def test_down_and_status_find_a_cluster_by_its_folder(tmp_path):
    from click.testing import CliRunner

    from services.cli import main

    runner = CliRunner()
    single = runner.invoke(main, ["kafka", "status", "--port", "39100", "--run-dir", str(tmp_path)])
    assert single.exit_code == 0 and single.output.startswith("stopped: 127.0.0.1:39100 ")
    for node in (1, 2, 3):
        (tmp_path / "kafka-cluster-39100" / f"node-{node}").mkdir(parents=True)
    status = runner.invoke(main, ["kafka", "status", "--port", "39100", "--run-dir", str(tmp_path)])
    assert status.output.startswith("cluster of 3 brokers at 127.0.0.1:39100,127.0.0.1:39101,127.0.0.1:39102")
    assert status.output.count("stopped") == 3


def test_the_secure_profile_refuses_a_cluster():
    from click.testing import CliRunner

    from services.cli import main

    result = CliRunner().invoke(main, ["kafka", "up", "--profile", "secure", "--brokers", "3", "--port", "39100"])
    assert result.exit_code == 1
    assert "the secure profile runs one broker" in result.output


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
