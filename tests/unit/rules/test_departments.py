"""Department ids and referral topics: one id pattern, one resolver of a department's topic."""

import pytest

from services.common.topics import TopicNames
from services.rules import RulesError, parse_rules
from tests.small_rules import small_rules, small_rules_text


@pytest.mark.parametrize(
    "old, new, message",
    [
        # ids become principals (dept-<id>), consumer groups and topic names: schemas.events.DEPARTMENT_ID
        ("[departments.education]", "[departments.Education]", "lower_snake_case"),
        ("[departments.education]", "[departments.'a-b']", "lower_snake_case"),
        ("[departments.education]", f"[departments.e{'x' * 40}]", "lower_snake_case"),  # 41 characters
        ('name_en = "education"', 'name_en = "education"\ntopic = "a b"', "should match pattern"),
        ('name_en = "education"', 'name_en = "education"\ntopic = ""', "should match pattern"),
        ("[departments.education]", "[departments", "not valid TOML"),
    ],
)
def test_bad_department_tables_are_refused(old, new, message):
    text = small_rules_text(["police", "education"]).replace(old, new, 1)
    with pytest.raises(RulesError) as err:
        parse_rules(text, "small.toml")
    assert message in str(err.value) and str(err.value).startswith("small.toml")


def test_the_longest_department_id_is_forty_characters():
    longest = "e" + "x" * 39
    assert longest in small_rules(["police", longest]).departments


def test_referral_topic_is_the_override_else_the_prefixed_default():
    rules = small_rules(["police", "education"], topics={"police": "p.referrals.police-v2"})
    names = TopicNames("p")
    assert rules.referral_topic("police", names) == "p.referrals.police-v2"
    assert rules.referral_topic("education", names) == "p.referrals.education"
    assert rules.referral_topic("education", TopicNames("q")) == "q.referrals.education"
    with pytest.raises(KeyError):
        rules.referral_topic("court", names)  # not a department of the rules
