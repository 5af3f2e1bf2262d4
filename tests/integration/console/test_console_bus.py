"""The console against the real bus: its actions reach the tracker and the reporter sees the new stage."""

from __future__ import annotations

import re

from schemas import AccessEvent, Ack
from schemas.examples import load_examples

from ..support import collect, metric_value, wait_until
from .conftest import sign_in


def test_a_console_action_reaches_the_tracker_and_the_reporter_s_status(stack):
    rid = stack.referral("trafficking", "police")
    with stack.http() as officer:
        assert sign_in(officer, "officer.0042").status_code == 303
        queue = wait_until(lambda: rid in (page := officer.get("/queue").text) and page, 60)
        assert stack.referral("dropout", "education") not in queue  # another department's referral
        assert stack.referral("trafficking", "education") not in queue
        page = officer.get(f"/referrals/{rid}")
        assert page.status_code == 200
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        refused = officer.post(f"/referrals/{rid}/accept", data={"csrf": csrf, "case_owner": ""})
        assert refused.status_code == 409
        accepted = officer.post(f"/referrals/{rid}/accept", data={"csrf": csrf, "case_owner": "inspector.0007"})
        assert accepted.status_code == 303
        wait_until(lambda: stack.status("trafficking").get("police") == "accepted", 90)
        assert wait_until(
            lambda: (
                metric_value(stack.tracker_metrics, "cluebus_acks_total", {"department": "police", "stage": "accepted"})
                == 1
            ),
            30,
        )
        completed = officer.post(
            f"/referrals/{rid}/complete",
            data={"csrf": csrf, "outcome_code": "case_opened", "outcome": "Case opened by the task force."},
        )
        assert completed.status_code == 303
        wait_until(lambda: stack.status("trafficking").get("police") == "completed", 90)

    acks = [
        Ack.model_validate_json(m.value)
        for m in collect(stack.bootstrap, [stack.names.acks], done=lambda ms: len(ms) >= 3, timeout=30)
    ]
    mine = [a for a in acks if a.referral_id == rid]
    assert [(a.stage.value, a.by) for a in mine] == [
        ("received", "cluebus-console"),  # the console's sync took it in
        ("accepted", "officer.0042"),
        ("completed", "officer.0042"),
    ]
    assert mine[1].case_owner == "inspector.0007"
    opened = [
        AccessEvent.model_validate_json(m.value)
        for m in collect(stack.bootstrap, [stack.names.access_audit], done=lambda ms: len(ms) >= 2, timeout=30)
    ]
    mine = [e for e in opened if e.referral_id == rid]
    assert {(e.by, e.channel.value, e.department) for e in mine} == {("officer.0042", "console", "police")}
    assert len(mine) >= 2  # the page, and the page again with the refusal
    log = stack.console.log_path.read_text()
    assert "Case opened by the task force" not in log and "inspector.0007" not in log  # no free text in logs
    subjects = load_examples("v1", "reports")["school-suspected_trafficking_child"]["subjects"]
    for value in (v for s in subjects for k, v in s.items() if k in ("name", "id_number", "phone") and v):
        assert value not in log  # nor any identity from the copy that was shown
    assert '"referral opened"' in log and '"action done"' in log  # ids and codes are logged

    def metric(name, **labels):  # type: ignore[no-untyped-def]
        return metric_value(stack.console_metrics, name, labels) or 0.0

    assert metric("cluebus_console_actions_total", department="police", action="accept", outcome="done") == 1
    assert metric("cluebus_console_actions_total", department="police", action="accept", outcome="refused") == 1
    assert metric("cluebus_console_actions_total", department="police", action="complete", outcome="done") == 1
    assert metric("cluebus_console_sign_ins_total", role="staff") >= 1
    assert metric("cluebus_console_referral_openings_total", department="police") >= 2
