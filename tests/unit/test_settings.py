import pytest

from services.common import settings as cfg
from services.common.settings import KafkaSettings, TopicSettings


def test_environment_overrides_file_and_file_overrides_defaults(tmp_path, monkeypatch):
    conf = tmp_path / "cluebus.toml"
    conf.write_text(
        '[kafka]\nbootstrap = "k1:9093,k2:9093"\nclient_id = "from-file"\n[topics]\nprefix = "prod"\npartitions = 12\n'
    )
    monkeypatch.setenv("CLUEBUS_CONFIG", str(conf))
    monkeypatch.setenv("CLUEBUS_KAFKA_CLIENT_ID", "from-env")
    kafka = cfg.load(KafkaSettings)
    topics = cfg.load(TopicSettings)
    assert kafka.servers == ["k1:9093", "k2:9093"]
    assert kafka.client_id == "from-env"
    assert (topics.prefix, topics.partitions) == ("prod", 12)
    assert topics.names.referral("police") == "prod.referrals.police"


def test_settings_are_frozen():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="frozen"):
        KafkaSettings().bootstrap = "x:1"  # type: ignore[misc]


@pytest.mark.parametrize(
    "env, value, needle",
    [
        ("CLUEBUS_KAFKA_BOOTSTRAP", "localhost", "not host:port"),
        ("CLUEBUS_KAFKA_BOOTSTRAP", "localhost:99999", "not host:port"),
        ("CLUEBUS_KAFKA_BOOTSTRAP", " , ", "is empty"),
        ("CLUEBUS_KAFKA_SECURITY_PROTOCOL", "TLS", "SECURITY_PROTOCOL"),
        ("CLUEBUS_TOPICS_PARTITIONS", "0", "PARTITIONS"),
        ("CLUEBUS_TOPICS_PREFIX", "bad prefix!", "PREFIX"),
    ],
)
def test_bad_values_give_one_readable_error(monkeypatch, env, value, needle):
    monkeypatch.setenv(env, value)
    model = TopicSettings if env.startswith("CLUEBUS_TOPICS") else KafkaSettings
    with pytest.raises(ValueError) as err:
        cfg.load(model)
    message = str(err.value)
    assert needle in message and "\n" not in message


def test_missing_config_file_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv("CLUEBUS_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(ValueError, match="nope.toml: no such file"):
        cfg.load(KafkaSettings)


def test_password_never_prints_and_file_wins(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("from-file\n")
    kafka = KafkaSettings(username="router", password="s3cret-value", password_file=secret)  # noqa: S106
    assert "s3cret-value" not in repr(kafka) and "s3cret-value" not in str(kafka.model_dump())
    assert kafka.secret() == "from-file"


def test_sasl_without_credentials_is_a_clear_error():
    from services.common.kafka import security_kwargs

    with pytest.raises(ValueError, match="CLUEBUS_KAFKA_USERNAME"):
        security_kwargs(KafkaSettings(security_protocol="SASL_SSL"))


@pytest.mark.parametrize(
    "rf, min_isr, brokers, fitted",
    [
        (None, None, 1, (1, 1)),  # the single development broker
        (None, None, 2, (2, 1)),
        (None, None, 3, (3, 2)),  # three brokers answer: three copies, two must have each record
        (None, None, 5, (3, 2)),
        (3, None, 4, (3, 2)),
        (2, None, 3, (2, 1)),
        (None, 1, 3, (3, 1)),
        (1, 1, 3, (1, 1)),
    ],
)
def test_replication_fits_the_brokers_that_answer(rf, min_isr, brokers, fitted):
    settings = TopicSettings(replication_factor=rf, min_insync_replicas=min_isr).fitted(brokers)
    assert (settings.replication_factor, settings.min_insync_replicas) == fitted


@pytest.mark.parametrize(
    "rf, min_isr, brokers, needle",
    [
        (3, None, 1, "REPLICATION_FACTOR=3 needs 3 brokers, but 1 answers"),
        (3, None, 2, "needs 3 brokers, but 2 answer"),
        (None, 2, 1, "MIN_INSYNC_REPLICAS=2 must be below CLUEBUS_TOPICS_REPLICATION_FACTOR=1"),
        (None, 3, 3, "MIN_INSYNC_REPLICAS=3 must be below"),
        (None, None, 0, "no Kafka broker answers"),
    ],
)
def test_replication_that_cannot_fit_is_refused_when_topics_are_made(rf, min_isr, brokers, needle):
    with pytest.raises(ValueError, match=needle):
        TopicSettings(replication_factor=rf, min_insync_replicas=min_isr).fitted(brokers)


@pytest.mark.parametrize("rf, min_isr", [("3", "3"), ("2", "2"), ("2", "5")])
def test_min_isr_not_below_the_replication_factor_is_refused_at_load(monkeypatch, rf, min_isr):
    monkeypatch.setenv("CLUEBUS_TOPICS_REPLICATION_FACTOR", rf)
    monkeypatch.setenv("CLUEBUS_TOPICS_MIN_INSYNC_REPLICAS", min_isr)
    with pytest.raises(ValueError) as err:
        cfg.load(TopicSettings)
    message = str(err.value)
    assert (
        f"CLUEBUS_TOPICS_MIN_INSYNC_REPLICAS={min_isr} must be below CLUEBUS_TOPICS_REPLICATION_FACTOR={rf}" in message
    )
    assert "\n" not in message and "Value error" not in message


@pytest.mark.parametrize(
    "text, needle",
    [
        ('[kafka]\nbootstrapp = "k1:9093"\n', "[kafka] has no setting 'bootstrapp'; its settings are: bootstrap,"),
        ('[topics]\nprefix = "p"\nretention = 1\n', "[topics] has no setting 'retention'"),
        ('[kafak]\nbootstrap = "k1:9093"\n', "unknown section [kafak]; the sections are [kafka], [topics]"),
        ('bootstrap = "k1:9093"\n', "'bootstrap' is outside any section"),
    ],
)
def test_a_typo_in_the_config_file_is_an_error_naming_key_and_section(tmp_path, monkeypatch, text, needle):
    conf = tmp_path / "cluebus.toml"
    conf.write_text(text)
    monkeypatch.setenv("CLUEBUS_CONFIG", str(conf))
    with pytest.raises(ValueError) as err:
        cfg.load(KafkaSettings if "kafka" in text or "bootstrap" in text else TopicSettings)
    assert needle in str(err.value) and str(conf) in str(err.value) and "\n" not in str(err.value)


def test_every_section_of_a_shared_file_is_read_by_its_own_class(tmp_path, monkeypatch):
    conf = tmp_path / "cluebus.toml"
    conf.write_text('[kafka]\nclient_id = "a"\n[tracker]\ntick_interval_s = 2.0\n[console]\nport = 9443\n')
    monkeypatch.setenv("CLUEBUS_CONFIG", str(conf))
    from services.console.settings import ConsoleSettings
    from services.tracker.settings import TrackerSettings

    assert cfg.load(KafkaSettings).client_id == "a"  # the other sections are not its business
    assert cfg.load(TrackerSettings).tick_interval_s == 2.0
    assert cfg.load(ConsoleSettings).port == 9443


def test_environment_keeps_working_and_unknown_variables_are_not_errors(monkeypatch):
    monkeypatch.setenv("CLUEBUS_KAFKA_BOOTSTRAP", "k9:9093")
    monkeypatch.setenv("CLUEBUS_KAFKA_NO_SUCH_SETTING", "x")  # the environment is shared: not ours to police
    monkeypatch.setenv("CLUEBUS_LOG_LEVEL", "debug")
    assert cfg.load(KafkaSettings).bootstrap == "k9:9093"
    assert cfg.load(cfg.ServiceSettings).log_level == "debug"  # prefix CLUEBUS_ also sees CLUEBUS_KAFKA_*


def test_an_unknown_keyword_in_code_is_an_error():
    with pytest.raises(ValueError, match="CLUEBUS_TOPICS_PREFIXX: Extra inputs are not permitted"):
        cfg.load(TopicSettings, prefixx="p")


def test_the_known_sections_are_the_settings_classes_sections():
    import services.adapters.settings
    import services.console.settings
    import services.reconciler.settings
    import services.router.settings
    import services.tracker.settings  # noqa: F401 - every settings class is defined

    def subclasses(cls):  # type: ignore[no-untyped-def]
        return {c for s in cls.__subclasses__() for c in (s, *subclasses(s))}

    assert sorted(c.section for c in subclasses(cfg._Settings)) == sorted(cfg.SECTIONS)
