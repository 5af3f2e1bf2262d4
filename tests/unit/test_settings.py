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
