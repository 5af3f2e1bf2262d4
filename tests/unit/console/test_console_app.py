"""The console's pages and rules, through its HTTP interface (FastAPI's TestClient over real stores)."""

from __future__ import annotations

import re

from services.console.auth import SESSION_COOKIE

from .conftest import PASSWORD, csrf_of, sign_in


def test_pages_need_a_session_and_the_cookie_is_locked_down(client):
    assert client.get("/queue", follow_redirects=False).headers["location"] == "/signin"
    answer = sign_in(client, "officer.1")
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    for flag in ("HttpOnly", "Secure", "SameSite=strict", "Path=/"):
        assert flag.lower() in cookie.lower(), cookie
    page = client.get("/queue")
    assert page.status_code == 200
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    assert "<script" not in page.text


def test_staff_see_only_their_department_and_most_urgent_first(client, referrals):
    sign_in(client, "officer.1")
    page = client.get("/queue").text
    shown = re.findall(r'data-referral="([0-9a-f-]+)"', page)
    assert set(shown) == {r.referral_id for r in referrals["police"]}
    assert not set(shown) & {r.referral_id for r in referrals["education"]}
    priorities = re.findall(r'priority-(\w+)" data-referral', page)
    rank = {"critical": 0, "high": 1, "normal": 2}
    assert [rank[p] for p in priorities] == sorted(rank[p] for p in priorities)
    assert "row-overdue" in page and "已超时" in page  # the two-day-old referral, in red, in Chinese
    english = client.get("/queue?lang=en").text
    assert "Jinghai Public Security Sub-bureau" in english and "overdue" in english
    assert client.get("/queue?stage=completed").text.count("data-referral=") == 0


def test_another_department_s_referral_is_403_and_leaves_no_trace_of_its_content(client, referrals, console):
    sign_in(client, "teacher.1")
    police_only = {r.referral_id for r in referrals["police"]} - {r.referral_id for r in referrals["education"]}
    rid = sorted(police_only)[0]
    answer = client.get(f"/referrals/{rid}")
    assert answer.status_code == 403 and "不是本部门的线索" in answer.text
    assert client.get("/referrals/not-an-id").status_code == 403
    assert console.producers.get("police") is None or console.producers["police"].access == []


def test_opening_a_referral_writes_an_access_record_and_shows_the_copy(client, referrals, console):
    sign_in(client, "officer.1")
    referral = referrals["police"][0]
    page = client.get(f"/referrals/{referral.referral_id}")
    assert page.status_code == 200
    assert referral.rule_path[-1] in page.text
    (record,) = console.producers["police"].access
    assert (record["by"], record["channel"], record["referral_id"]) == ("officer.1", "console", referral.referral_id)
    assert record["field_groups"] and set(record["field_groups"]) <= set(referral.report)


def test_a_copy_says_whose_identity_and_which_free_text_were_withheld_and_why_it_holds_the_rest(client, referrals):
    sign_in(client, "teacher.1")
    referral = next(r for r in referrals["education"] if r.category.value == "suspected_trafficking_child")
    assert [r.value for r in referral.withheld.identity] == ["suspect"] and "narrative" in referral.withheld.free_text
    page = client.get(f"/referrals/{referral.referral_id}")
    assert page.status_code == 200
    assert 'id="withheld-identity"' in page.text and "嫌疑人" in page.text
    assert 'id="withheld-text"' in page.text
    for grant in referral.grants:
        assert grant.reason.replace("'", "&#39;") in page.text
    assert referral.report["shareable_summary"] in page.text  # what the department reads instead
    police = next(r for r in referrals["police"] if r.category.value == "suspected_trafficking_child")
    sign_in(client, "officer.1")
    page = client.get(f"/referrals/{police.referral_id}")
    assert page.status_code == 200 and 'id="grants"' in page.text
    assert 'id="withheld-identity"' not in page.text and 'id="withheld-text"' not in page.text  # the police see all


def test_accept_needs_the_case_owner_when_required_and_acks_carry_the_signed_in_user(client, referrals, console):
    sign_in(client, "officer.1")
    referral = next(r for r in referrals["police"] if r.case_owner_required)
    page = client.get(f"/referrals/{referral.referral_id}")
    csrf = csrf_of(page.text)
    refused = client.post(f"/referrals/{referral.referral_id}/accept", data={"csrf": csrf, "case_owner": ""})
    assert refused.status_code == 409 and "必须指定承办人" in refused.text
    assert console.producers["police"].sent == []
    done = client.post(
        f"/referrals/{referral.referral_id}/accept",
        data={"csrf": csrf, "case_owner": "inspector.7"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    acks = console.producers["police"].sent
    assert [(a["stage"], a["by"]) for a in acks] == [("received", "officer.1"), ("accepted", "officer.1")]
    assert acks[1]["case_owner"] == "inspector.7"
    page = client.get(done.headers["location"]).text
    assert "已受理" in page and "inspector.7" in page
    backwards = client.post(
        f"/referrals/{referral.referral_id}/decline",
        data={"csrf": csrf, "reason_code": "other", "reason": "x"},
    )
    assert backwards.status_code == 409 and "不能回退" in backwards.text
    completed = client.post(
        f"/referrals/{referral.referral_id}/complete",
        data={"csrf": csrf, "outcome_code": "case_opened", "outcome": ""},
    )
    assert completed.status_code == 409 and "outcome" in completed.text  # the empty text is named
    client.post(
        f"/referrals/{referral.referral_id}/complete",
        data={"csrf": csrf, "outcome_code": "case_opened", "outcome": "Case opened."},
    )
    assert [a["stage"] for a in console.producers["police"].sent][-1] == "completed"
    metric = console.metrics.actions.labels(department="police", action="accept", outcome="done")
    assert metric._value.get() == 1


def test_an_action_without_the_csrf_token_is_refused(client, referrals, console):
    sign_in(client, "officer.1")
    rid = referrals["police"][0].referral_id
    for data in ({}, {"csrf": "forged"}):
        answer = client.post(f"/referrals/{rid}/decline", data={**data, "reason_code": "other", "reason": "x"})
        assert answer.status_code == 403 and "安全令牌" in answer.text
    assert console.producers.get("police") is None or console.producers["police"].sent == []
    assert client.post("/signout", data={}).status_code == 403  # sign-out is a form too
    page = client.get("/signin")
    forged = client.post("/signin", data={"username": "officer.1", "password": PASSWORD, "csrf": "x"})
    assert forged.status_code == 403 and page.status_code == 200


def test_repeated_bad_passwords_lock_the_account_even_against_the_right_one(client, console):
    for _ in range(2):
        assert "工号或密码错误" in sign_in(client, "officer.1", "wrong password!", expect=401).text
    assert "已暂时锁定" in sign_in(client, "officer.1", "wrong password!", expect=401).text  # the third locks
    locked = sign_in(client, "officer.1", expect=423)
    assert "已暂时锁定" in locked.text and int(locked.headers["retry-after"]) > 0
    sign_in(client, "teacher.1")  # another account is not affected
    console.clock.now += 601
    sign_in(client, "officer.1")
    assert console.metrics.lockouts._value.get() == 1
    failures = console.metrics.sign_in_failures.labels(reason="bad_credentials")._value.get()
    assert failures == 3


def test_unknown_users_and_disabled_accounts_get_the_same_answer(client, console):
    assert "工号或密码错误" in sign_in(client, "nobody.9", expect=401).text
    sign_in(client, "teacher.1")
    assert client.get("/queue").status_code == 200
    console.users.disable("teacher.1")
    ended = client.get("/queue", follow_redirects=False)
    assert ended.status_code == 303 and ended.headers["location"] == "/signin?m=ended"
    assert "工号或密码错误" in sign_in(client, "teacher.1", expect=401).text


def test_idle_sessions_end_and_sign_out_ends_the_session(client, console):
    sign_in(client, "officer.1")
    console.clock.now += 61
    assert client.get("/queue", follow_redirects=False).headers["location"] == "/signin?m=idle"
    sign_in(client, "officer.1")
    page = client.get("/queue")
    out = client.post("/signout", data={"csrf": csrf_of(page.text)}, follow_redirects=False)
    assert out.headers["location"] == "/signin?m=out"
    assert client.get("/queue", follow_redirects=False).status_code == 303


def test_roles_open_only_their_pages(client, referrals):
    sign_in(client, "officer.1")
    assert client.get("/supervisor").status_code == 403
    assert client.get("/oversight").status_code == 403
    sign_in(client, "chief.1")
    page = client.get("/supervisor")
    assert page.status_code == 200 and 'id="overdue"' in page.text  # the two-day-old referral
    sign_in(client, "office.1")
    assert client.get("/oversight").status_code == 200
    sign_in(client, "admin.1")
    assert client.get(f"/referrals/{referrals['police'][0].referral_id}").status_code == 403
    assert 'data-department="police"' in client.get("/admin").text


def test_what_a_report_says_is_shown_as_text_never_as_markup(client, referrals):
    referral = referrals["police"][0]
    hostile = {**referral.report, "narrative": '<script>alert("x")</script><img src=x onerror=alert(1)>'}
    referrals["police"][0] = referral.model_copy(update={"report": hostile})
    sign_in(client, "officer.1")
    page = client.get(f"/referrals/{referral.referral_id}").text
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page


def test_the_sessions_gauge_counts_live_sessions_only(client, console):
    def gauge():  # type: ignore[no-untyped-def]
        return console.metrics.registry.get_sample_value("cluebus_console_sessions_active")

    sign_in(client, "officer.1")
    assert gauge() == 1
    console.clock.now += 61  # idle past the timeout, without a request
    assert gauge() == 0
