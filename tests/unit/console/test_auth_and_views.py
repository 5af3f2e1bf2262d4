"""The console's pure parts: sessions, throttling, the users file, clocks and urgency order."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest

from services.console.auth import SessionStore, SignInThrottle
from services.console.users import UsersError, UsersFile, authenticate, hash_password, verify_password
from services.console.views import Node, clocks, copy_tree, queue, span
from services.inbox.store import InboxItem

NOW = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)


def item(rid: str, priority: str, stage: str, decided_in_h: float) -> InboxItem:
    routed = NOW - timedelta(hours=1)
    return InboxItem(
        rid,
        "019aa0f2-0009-7000-8000-000000000009",
        stage,
        "child_labour",
        priority,
        "lead",
        False,
        routed,
        NOW + timedelta(hours=decided_in_h / 2),
        NOW + timedelta(hours=decided_in_h),
        NOW + timedelta(days=30),
    )


def test_sessions_end_when_idle_or_old_and_tokens_are_not_stored():
    store = SessionStore(idle_timeout_s=60, max_age_s=300)
    token = store.create("a.1", "police", "staff", "t0", now=0)
    assert token not in repr(store._sessions)  # only its digest is kept
    assert store.get(token, 59)[0] is not None
    assert store.get(token, 118)[0] is not None  # each request refreshes the idle clock
    assert store.get(token, 179) == (None, "idle")
    token = store.create("a.1", "police", "staff", "t0", now=0)
    for t in range(50, 301, 50):
        assert store.get(token, t)[0] is not None
    assert store.get(token, 340) == (None, "expired")
    assert store.get("forged", 0) == (None, "unknown")
    one, two = store.create("a.1", "p", "staff", "", 0), store.create("a.1", "p", "staff", "", 0)
    assert one != two and store.end_user("a.1") == 2


def test_throttle_locks_accounts_and_slows_addresses():
    throttle = SignInThrottle(lockout_failures=3, lockout_s=100, address_failures=5)
    assert not throttle.failed("a", "1.1.1.1", 0) and not throttle.failed("a", "1.1.1.1", 1)
    assert throttle.failed("a", "1.1.1.1", 2)  # the third in a row locks
    assert throttle.refusal("a", "2.2.2.2", 50) == "locked"  # from any address
    assert throttle.refusal("a", "2.2.2.2", 103) is None
    throttle.failed("b", "1.1.1.1", 10)
    throttle.failed("c", "1.1.1.1", 11)
    assert throttle.refusal("d", "1.1.1.1", 12) == "rate_limited"  # five failures from one address
    assert throttle.refusal("d", "3.3.3.3", 12) is None
    assert throttle.refusal("d", "1.1.1.1", 112) is None  # forgotten after lockout_s
    throttle.failed("e", "4.4.4.4", 0)
    throttle.failed("e", "4.4.4.4", 1)
    throttle.succeeded("e")  # a success clears the count
    assert not throttle.failed("e", "4.4.4.4", 2)


def test_users_file_hashes_passwords_and_keeps_them_out_of_the_file(tmp_path):
    users = UsersFile(tmp_path / "users.toml")
    users.add("officer.1", "police", "staff", "a long enough secret")
    text = (tmp_path / "users.toml").read_text()
    assert "a long enough secret" not in text and "scrypt$" in text
    assert os.stat(tmp_path / "users.toml").st_mode & 0o777 == 0o600
    assert authenticate(users.current(), "officer.1", "a long enough secret").department == "police"
    assert authenticate(users.current(), "officer.1", "a long enough secreT") is None
    with pytest.raises(UsersError, match="at least 12"):
        users.add("officer.2", "police", "staff", "short")
    with pytest.raises(UsersError, match="exists"):
        users.add("officer.1", "police", "staff", "another long secret")
    with pytest.raises(UsersError, match="joint_meeting department"):
        users.add("x.1", "police", "joint_meeting", "another long secret")
    with pytest.raises(UsersError, match="not a staff id"):
        users.add("Zhang San", "police", "staff", "another long secret")
    users.disable("officer.1")
    assert authenticate(users.current(), "officer.1", "a long enough secret") is None
    users.passwd("officer.1", "a brand new secret")
    assert authenticate(users.current(), "officer.1", "a brand new secret") is not None
    assert not verify_password("x", "md5$abc") and verify_password("pw", hash_password("pw"))
    (tmp_path / "users.toml").write_text('[users."a.1"]\nrole = "boss"\ndepartment = "p"\npassword = "x"\n')
    with pytest.raises(UsersError, match="role must be one of"):
        users.load()


def test_queue_is_most_urgent_first_and_clocks_follow_the_stage():
    items = [
        item("n-late", "normal", "received", -1),
        item("c-soon", "critical", "routed", 2),
        item("h-later", "high", "received", 5),
        item("c-later", "critical", "received", 3),
        item("done", "critical", "completed", -5),
    ]
    assert [r.referral_id for r in queue(items, "", NOW)] == ["c-soon", "c-later", "h-later", "n-late"]
    assert [r.referral_id for r in queue(items, "all", NOW)][-1] == "done"  # closed last
    assert [r.referral_id for r in queue(items, "completed", NOW)] == ["done"]
    late = next(r for r in queue(items, "", NOW) if r.referral_id == "n-late")
    assert late.overdue and late.clock.stage == "decided"
    routed = next(r for r in queue(items, "", NOW) if r.referral_id == "c-soon")
    assert routed.clock.stage == "received" and not routed.overdue
    met = {c.stage: c.met for c in clocks(item("x", "high", "accepted", 1), NOW)}
    assert met == {"received": True, "decided": True, "completed": False}
    declined = {c.stage: c.met for c in clocks(item("x", "high", "declined", 1), NOW)}
    assert declined == {"received": True, "decided": True, "completed": False}


def test_spans_and_the_copy_tree():
    assert span(3 * 3600 + 20 * 60, "zh") == "3小时20分" and span(-90, "en") == "1 min"
    assert span(2 * 86400 + 3600, "en") == "2 d 1 h"
    tree = copy_tree({"subjects": [{"name": "甲", "minor": True}], "narrative": None})
    assert tree == [
        Node("subjects", None, (Node("subjects 1", None, (Node("name", "甲"), Node("minor", "✓"))),)),
        Node("narrative", "—"),
    ]


def test_the_throttle_forgets_old_names_so_typed_names_cannot_fill_memory():
    throttle = SignInThrottle(lockout_failures=3, lockout_s=10, address_failures=1000, max_tracked=50)
    for i in range(200):
        throttle.failed(f"name-{i}", "1.1.1.1", now=i)  # each name tried once, a second apart
    assert len(throttle._accounts) <= 60
    assert throttle.refusal("name-199", "2.2.2.2", 200) is None


def test_route_steps_say_what_each_route_matched_and_which_sent_the_referral_here():
    from services.console.views import route_steps
    from services.rules import load_rules
    from tests.conftest import REPO

    rules = load_rules(REPO / "routing_rules.toml")
    steps = route_steps(rules.spec.route, ("root", "child-trafficking"), "police")
    assert [s.name for s in steps] == ["root", "child-trafficking"]
    (any_of,) = [c for c in steps[1].conditions if c.startswith("any of: ")]
    assert "(category: suspected_trafficking_child)" in any_of
    assert "(category: illegal_adoption_or_sale; subject: role buyer, suspect)" in any_of
    assert steps[1].sends_here and "priority ≥ critical" in steps[1].conditions
    gone = route_steps(rules.spec.route, ("root", "no-such-route", "child"), "police")
    assert [(s.name, s.conditions) for s in gone[1:]] == [("no-such-route", ()), ("child", ())]
