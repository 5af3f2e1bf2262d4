"""The console in a real headless Chromium, against the real bus (make test runs these; make unit does not).

Each test signs in with a fresh browser profile. Screenshots of the main pages
go to .run/console-screenshots/ (one of each is kept in docs/console/).
"""

from __future__ import annotations

import pytest
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from ..support import wait_until
from .browser import chromium, screenshot
from .conftest import PASSWORD

pytestmark = pytest.mark.browser


@pytest.fixture
def open_browser(stack, tmp_path):
    opened = []

    def start():  # type: ignore[no-untyped-def]
        browser = chromium(tmp_path / f"profile-{len(opened)}", stack.ca.with_name("console.pem"))
        opened.append(browser)
        return browser

    yield start
    for browser in opened:
        browser.quit()


def sign_in(browser, stack, username, password=PASSWORD, shot=None):  # type: ignore[no-untyped-def]
    browser.get(f"{stack.url}/signin")
    browser.find_element(By.ID, "username").send_keys(username)
    browser.find_element(By.ID, "password").send_keys(password)
    if shot:
        screenshot(browser, shot)
    submit(browser, "signin")


def submit(browser, button_id):  # type: ignore[no-untyped-def]
    """Click a form's button and wait until the answer's page has replaced this one (marked before)."""
    browser.execute_script("window.__cluebusOldPage = true")
    browser.find_element(By.ID, button_id).click()

    def replaced(driver):  # type: ignore[no-untyped-def]
        try:
            return driver.execute_script("return !window.__cluebusOldPage && document.readyState === 'complete'")
        except WebDriverException:  # between the two pages
            return False

    WebDriverWait(browser, 60).until(replaced)


def text(browser, element_id):  # type: ignore[no-untyped-def]
    return browser.find_element(By.ID, element_id).text


def rows(browser):  # type: ignore[no-untyped-def]
    return {e.get_attribute("data-referral") for e in browser.find_elements(By.CSS_SELECTOR, "tr[data-referral]")}


def test_staff_sign_in_and_see_only_their_department_s_referrals(stack, open_browser):
    browser = open_browser()
    sign_in(browser, stack, "officer.0042", shot="signin")
    assert browser.current_url.endswith("/queue")
    assert "officer.0042" in text(browser, "who") and "公安静海分局" in text(browser, "who")
    mine = {stack.referral("trafficking", "police"), stack.referral("abuse", "police")}
    wait_until(lambda: mine <= rows(browser) or browser.refresh(), 120, interval=1)
    assert stack.referral("dropout", "education") not in rows(browser)
    assert not {stack.referral(n, "education") for n in stack.reports} & rows(browser)
    first = browser.find_element(By.CSS_SELECTOR, "tr[data-referral]")
    assert "特急" in first.text  # most urgent first: the critical one
    screenshot(browser, "queue")
    Select(browser.find_element(By.ID, "stage")).select_by_value("declined")
    submit(browser, "filter")
    assert "stage=declined" in browser.current_url and not rows(browser) - set()  # nothing declined yet
    browser.get(f"{stack.url}/queue?lang=en")
    assert "Jinghai Public Security Sub-bureau" in text(browser, "who")
    screenshot(browser, "queue-en")


def test_accept_with_a_case_owner_then_complete_and_the_reporter_sees_it(stack, open_browser):
    browser = open_browser()
    sign_in(browser, stack, "officer.0042")
    rid = stack.referral("trafficking", "police")
    wait_until(lambda: rid in rows(browser) or browser.refresh(), 120, interval=1)
    browser.get(browser.find_element(By.CSS_SELECTOR, f'a[href="/referrals/{rid}"]').get_attribute("href"))
    assert "必须指定承办人" in browser.find_element(By.CLASS_NAME, "summary").text
    screenshot(browser, "referral")
    submit(browser, "accept")  # no case owner: refused, and why
    assert "受理本线索必须指定承办人" in text(browser, "refused")
    screenshot(browser, "refused")
    browser.find_element(By.ID, "case_owner").send_keys("inspector.0007")
    submit(browser, "accept")
    assert "已受理" in text(browser, "done")
    history = text(browser, "history")
    assert "officer.0042" in history and "inspector.0007" in history
    wait_until(lambda: stack.status("trafficking").get("police") == "accepted", 90)
    Select(browser.find_element(By.ID, "outcome_code")).select_by_value("case_opened")
    browser.find_element(By.ID, "outcome").send_keys("专案组已立案侦查。")
    submit(browser, "complete")
    assert "已办结" in text(browser, "done")
    assert "本线索已办结" in text(browser, "closed")
    screenshot(browser, "completed")
    wait_until(lambda: stack.status("trafficking").get("police") == "completed", 90)


def test_decline_with_a_reason_reaches_the_joint_meeting_office(stack, open_browser):
    browser = open_browser()
    sign_in(browser, stack, "officer.0042")
    rid = stack.referral("abuse", "police")
    wait_until(lambda: rid in rows(browser) or browser.refresh(), 120, interval=1)
    browser.get(f"{stack.url}/referrals/{rid}")
    Select(browser.find_element(By.ID, "reason_code")).select_by_value("handled_elsewhere")
    browser.find_element(By.ID, "reason").send_keys("已由市局专案组办理。")
    submit(browser, "decline")
    assert "已退回" in text(browser, "done")
    assert "已由其他单位办理" in text(browser, "history")
    wait_until(lambda: stack.status("abuse").get("police") == "declined", 90)

    office = open_browser()
    sign_in(office, stack, "office.0001")
    assert office.current_url.endswith("/oversight")
    # A lead's decline escalates at once to the joint meeting office: ids, stages and clocks only.
    wait_until(lambda: rid in rows(office) or office.refresh(), 120, interval=1)
    assert "负责部门退回" in office.find_element(By.CSS_SELECTOR, f'tr[data-referral="{rid}"]').text
    counts = {e.get_attribute("data-department") for e in office.find_elements(By.CSS_SELECTOR, "tr[data-department]")}
    assert {"police", "education"} <= counts
    assert "已由市局专案组办理" not in office.page_source  # the reason's text stays with the department
    screenshot(office, "oversight")


def test_a_supervisor_sees_an_overdue_referral_and_its_escalation(stack, open_browser):
    browser = open_browser()
    sign_in(browser, stack, "head.0101")
    rid = stack.referral("dropout", "education")
    browser.get(f"{stack.url}/supervisor")
    wait_until(lambda: rid in rows(browser) or browser.refresh(), 120, interval=1)
    overdue = browser.find_element(By.CSS_SELECTOR, f'#overdue tr[data-referral="{rid}"]')
    assert "已超时" in overdue.text
    assert overdue.find_element(By.CLASS_NAME, "overdue").value_of_css_property("color") == "rgba(176, 0, 32, 1)"
    wait_until(
        lambda: browser.find_elements(By.CSS_SELECTOR, f'#escalations tr[data-referral="{rid}"]') or browser.refresh(),
        120,
        interval=1,
    )
    assert "区教育局 · supervisor" in browser.find_element(By.ID, "escalations").text
    screenshot(browser, "supervisor")


def test_another_department_s_referral_by_url_is_403(stack, open_browser):
    browser = open_browser()
    sign_in(browser, stack, "teacher.0100")
    browser.get(f"{stack.url}/referrals/{stack.referral('trafficking', 'police')}")
    assert "不是本部门的线索" in text(browser, "error")
    assert "403" in browser.execute_script(
        "return String(performance.getEntriesByType('navigation')[0].responseStatus)"
    )
    screenshot(browser, "forbidden")


def test_an_action_without_its_csrf_token_is_refused(stack, open_browser):
    browser = open_browser()
    sign_in(browser, stack, "teacher.0100")
    rid = stack.referral("abuse", "education")
    wait_until(lambda: rid in rows(browser) or browser.refresh(), 120, interval=1)
    browser.get(f"{stack.url}/referrals/{rid}")
    # A forged form: the same action without the session's token (the page itself has no script).
    browser.execute_script("document.querySelector('#decline-form input[name=csrf]').remove()")
    browser.find_element(By.ID, "reason").send_keys("forged")
    submit(browser, "decline")
    assert "安全令牌" in text(browser, "error")
    browser.get(f"{stack.url}/referrals/{rid}")
    assert browser.find_elements(By.ID, "decline")  # still open: nothing was declined
    assert stack.status("abuse").get("education") in ("routed", "received")


def test_repeated_bad_passwords_lock_the_account(stack, open_browser):
    browser = open_browser()
    for _ in range(2):
        sign_in(browser, stack, "inspector.0007", "not-the-password")
        assert "工号或密码错误" in text(browser, "message")
    sign_in(browser, stack, "inspector.0007", "not-the-password")
    assert "已暂时锁定" in text(browser, "message")
    sign_in(browser, stack, "inspector.0007")  # the right password does not open a locked account
    assert "已暂时锁定" in text(browser, "message") and browser.current_url.endswith("/signin")
    screenshot(browser, "lockout")
