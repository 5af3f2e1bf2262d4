"""The console's words: Chinese first, English available. Department names come from the rules.

``Words(lang, departments)`` is what a template calls: ``t("queue.title")``,
``t.label("stage", "accepted")``, ``t.department("police")``. A key without a
translation is an error at test time (``test_every_key_has_both_languages``),
never a blank on a page.
"""

from __future__ import annotations

from collections.abc import Mapping

LANGS = ("zh", "en")
DEFAULT_LANG = "zh"

TEXT: dict[str, tuple[str, str]] = {
    "app.title": ("反拐线索转递平台", "cluebus referral console"),
    "app.lang_other": ("English", "中文"),
    "nav.queue": ("本部门线索", "My department's referrals"),
    "nav.supervisor": ("督办", "Supervision"),
    "nav.oversight": ("联席会议总览", "Joint meeting overview"),
    "nav.admin": ("运行状态", "Console status"),
    "nav.signout": ("退出", "Sign out"),
    "signin.title": ("登录", "Sign in"),
    "signin.username": ("工号", "Staff id"),
    "signin.password": ("密码", "Password"),
    "signin.submit": ("登录", "Sign in"),
    "signin.failed": ("工号或密码错误。", "Wrong staff id or password."),
    "signin.locked": (
        "多次密码错误，账号已暂时锁定，请稍后再试或联系管理员。",
        "Too many wrong passwords: the account is locked for a while. Try later or ask your administrator.",
    ),
    "signin.rate_limited": (
        "登录失败次数过多，请稍后再试。",
        "Too many failed sign-ins from here. Please wait and try again.",
    ),
    "signin.ended_idle": (
        "长时间未操作，已自动退出，请重新登录。",
        "You were signed out after a period of inactivity.",
    ),
    "signin.ended": ("会话已结束，请重新登录。", "Your session ended. Please sign in again."),
    "signin.signed_out": ("已退出。", "You are signed out."),
    "who.department": ("部门", "Department"),
    "who.role": ("角色", "Role"),
    "queue.title": ("待办线索", "Referrals"),
    "queue.filter": ("按阶段筛选", "Filter by stage"),
    "queue.filter_open": ("全部待办", "All open"),
    "queue.filter_all": ("全部（含已完结）", "All (closed too)"),
    "queue.apply": ("筛选", "Filter"),
    "queue.empty": ("没有符合条件的线索。", "No referrals match."),
    "queue.unavailable": ("本部门收件箱暂不可用：", "This department's inbox is unavailable right now:"),
    "col.referral": ("线索编号", "Referral"),
    "col.priority": ("紧急程度", "Priority"),
    "col.stage": ("阶段", "Stage"),
    "col.category": ("类别", "Category"),
    "col.role": ("职责", "Duty"),
    "col.next": ("当前时限", "Current clock"),
    "col.left": ("剩余时间", "Time left"),
    "col.owner": ("需指定承办人", "Case owner required"),
    "col.department": ("部门", "Department"),
    "col.open": ("未办结", "Open"),
    "col.overdue": ("已超时", "Overdue"),
    "col.escalated": ("已督办", "Escalated"),
    "col.level": ("级别", "Level"),
    "col.target": ("督办对象", "Addressed to"),
    "col.due": ("原定时限", "Was due"),
    "col.when": ("时间", "When"),
    "col.by": ("操作人", "By"),
    "col.reason": ("原因", "Reason"),
    "col.report": ("报告编号", "Report"),
    "col.stored": ("已存本地", "Stored"),
    "col.unsent": ("待发送", "Unsent"),
    "col.last_sync": ("最近同步", "Last sync"),
    "col.error": ("问题", "Problem"),
    "due.overdue": ("已超时", "overdue"),
    "due.left": ("剩余", "left"),
    "due.received": ("签收", "receipt"),
    "due.decided": ("受理或退回", "decision"),
    "due.completed": ("办结", "completion"),
    "due.met": ("已完成", "done"),
    "yes": ("是", "yes"),
    "no": ("否", "no"),
    "referral.title": ("线索详情", "Referral"),
    "referral.copy": ("本部门收到的内容（已按规则脱敏）", "What this department received (reduced by the rules)"),
    "referral.copy_note": (
        "本次查看已记录（查看人、时间、字段类别，不记录内容）。",
        "This opening is recorded (who, when, which field groups; never the content).",
    ),
    "referral.why": ("为何转给本部门", "Why it was sent here"),
    "referral.rule_path": ("规则路径", "Rule path"),
    "referral.role_lead": (
        "本部门为负责单位：按规则须由本部门牵头办理。",
        "This department leads: the rules make it responsible for acting.",
    ),
    "referral.role_cooperating": (
        "本部门为配合单位：按规则须配合负责单位办理。",
        "This department cooperates: the rules ask it to support the lead.",
    ),
    "referral.rules_version": ("规则版本", "Rules version"),
    "referral.clocks": ("时限", "Clocks"),
    "referral.history": ("本部门处理记录", "This department's acknowledgements"),
    "referral.history_empty": ("尚无记录。", "None yet."),
    "referral.unsent": ("（待发送）", "(not yet sent)"),
    "referral.routed_at": ("转递时间", "Routed"),
    "referral.anonymised": ("当事人拒绝共享身份信息，已匿名化。", "The victim refused consent: identity removed."),
    "referral.withheld_identity": (
        "按需知悉：以下当事人的身份信息未向本部门提供：",
        "Need to know: this department was not sent the identity of:",
    ),
    "referral.withheld_free_text": (
        "案情叙述等自由文本可能涉及本部门无权知悉身份的人员，未提供；请阅读报告人撰写的可共享摘要。",
        "Free text (the narrative, descriptions) may name people this department may not identify: withheld. "
        "Read the reporter's shareable summary.",
    ),
    "referral.grants": ("本部门可见内容及依据", "What this department sees, and why"),
    "referral.closed": ("本线索已办结，不能再操作。", "This referral is closed; no further action."),
    "action.accept": ("受理", "Accept"),
    "action.accept_help": ("受理后本部门负责办理。", "Accepting makes this department responsible for it."),
    "action.case_owner": ("承办人工号", "Case owner (staff id)"),
    "action.case_owner_required": (
        "本线索受理时必须指定承办人。",
        "This referral's acceptance must name a case owner.",
    ),
    "action.decline": ("退回", "Decline"),
    "action.reason_code": ("退回原因", "Reason"),
    "action.reason": ("说明", "Explanation"),
    "action.complete": ("办结", "Complete"),
    "action.outcome_code": ("办理结果", "Outcome"),
    "action.outcome": ("说明", "Explanation"),
    "action.done.accepted": ("已受理。", "Accepted."),
    "action.done.declined": ("已退回。", "Declined."),
    "action.done.completed": ("已办结。", "Completed."),
    "action.refused": ("操作未执行：", "Not done:"),
    "action.as": ("操作人：", "Acting as:"),
    "refusal.case_owner_required": ("受理本线索必须指定承办人。", "This referral's acceptance must name a case owner."),
    "refusal.referral_closed": ("本线索已退回或办结，不能再操作。", "This referral is already declined or completed."),
    "refusal.stage_backwards": (
        "本线索已进入后续阶段，不能回退。",
        "This referral has moved on; that step would go back.",
    ),
    "refusal.not_accepted": ("须先受理，才能办结。", "A referral is completed only after it was accepted."),
    "refusal.invalid": ("请填写完整：", "Please complete the form:"),
    "supervisor.title": ("督办", "Supervision"),
    "supervisor.overdue": ("本部门超时线索", "This department's overdue referrals"),
    "supervisor.escalations": ("发给本部门的督办", "Escalations addressed to this department"),
    "supervisor.none": ("无。", "None."),
    "oversight.title": ("各部门办理情况", "Every department's referrals"),
    "oversight.note": (
        "仅显示编号、阶段和时限，不含个人信息。",
        "Ids, stages and clocks only: no personal data.",
    ),
    "oversight.escalations": ("报送联席会议的督办", "Escalations that reached the joint meeting office"),
    "oversight.feed_error": ("数据同步中断：", "The feed is interrupted:"),
    "admin.title": ("运行状态", "Console status"),
    "error.403": ("无权查看：这不是本部门的线索。", "Not allowed: this is not a referral of your department."),
    "error.403_role": ("无权访问此页面。", "Your role may not open this page."),
    "error.404": ("未找到。", "Not found."),
    "error.csrf": (
        "表单已失效（缺少或错误的安全令牌），请返回刷新后重试。",
        "The form has expired (missing or wrong security token). Go back, reload and try again.",
    ),
    "error.back": ("返回", "Back"),
}

LABELS: dict[str, dict[str, tuple[str, str]]] = {
    "stage": {
        "routed": ("已转递", "routed"),
        "received": ("已签收", "received"),
        "accepted": ("已受理", "accepted"),
        "declined": ("已退回", "declined"),
        "completed": ("已办结", "completed"),
    },
    "priority": {"critical": ("特急", "critical"), "high": ("紧急", "high"), "normal": ("一般", "normal")},
    "role": {"lead": ("负责", "lead"), "cooperating": ("配合", "cooperating")},
    "subject_role": {
        "victim": ("被害人", "victim"),
        "suspect": ("嫌疑人", "suspect"),
        "buyer": ("收买人", "buyer"),
        "guardian": ("监护人", "guardian"),
        "witness": ("证人", "witness"),
        "other": ("其他当事人", "other party"),
    },
    "grant_basis": {
        "summary": ("案情摘要（所有接收部门）", "case summary (every recipient)"),
        "department": ("本部门牵头职责", "this department's duty as lead"),
        "route": ("规则", "route"),
    },
    "user_role": {
        "staff": ("经办人", "staff"),
        "supervisor": ("督办负责人", "supervisor"),
        "joint_meeting": ("联席会议办公室", "joint meeting office"),
        "admin": ("管理员", "administrator"),
    },
    "decline": {
        "not_in_remit": ("不属本部门职责", "not this department's duty"),
        "insufficient_information": ("信息不足，无法办理", "not enough information to act"),
        "duplicate": ("重复线索", "duplicate"),
        "handled_elsewhere": ("已由其他单位办理", "handled by another unit"),
        "other": ("其他", "other"),
    },
    "outcome": {
        "case_opened": ("已立案", "case opened"),
        "referred_on": ("已转交", "referred on"),
        "victim_placed": ("已安置被害人", "victim placed"),
        "services_provided": ("已提供服务", "services provided"),
        "no_concern_found": ("经核查无问题", "no concern found"),
        "closed_other": ("其他方式办结", "closed otherwise"),
    },
    "escalation": {"overdue": ("超时", "overdue"), "declined_by_lead": ("负责部门退回", "declined by the lead")},
    "category": {
        "suspected_trafficking_woman": ("疑似拐卖妇女", "suspected trafficking of a woman"),
        "suspected_trafficking_child": ("疑似拐卖儿童", "suspected trafficking of a child"),
        "missing_child": ("儿童失踪", "missing child"),
        "child_labour": ("使用童工", "child labour"),
        "forced_labour": ("强迫劳动", "forced labour"),
        "illegal_employment_disabled": ("非法使用残疾人劳动", "illegal employment of disabled people"),
        "illegal_employment_foreigner": ("外国人非法就业", "foreigners working illegally"),
        "sexual_abuse_minor": ("性侵害未成年人", "sexual abuse of a minor"),
        "minor_in_venue": ("未成年人进入娱乐场所", "minor in an entertainment venue"),
        "escort_services": ("营利性陪侍", "paid escort services"),
        "illegal_adoption_or_sale": ("非法收养或买卖儿童", "illegal adoption or sale of a child"),
        "birth_identity_mismatch": ("冒名住院或分娩", "admission or birth under another identity"),
        "birth_certificate_fraud": ("出生医学证明造假", "birth certificate fraud"),
        "surrogacy": ("代孕", "surrogacy"),
        "non_medical_sex_determination": ("非医学需要胎儿性别鉴定", "non-medical foetal sex determination"),
        "suspicious_marriage": ("可疑婚姻登记", "suspicious marriage"),
        "cross_border_marriage": ("涉外婚姻异常", "cross-border marriage anomaly"),
        "illegal_marriage_broker": ("非法婚介", "illegal marriage broker"),
        "school_dropout_risk": ("辍学风险", "school dropout risk"),
        "child_at_risk": ("困境儿童", "child at risk"),
        "harm_to_minor": ("侵害未成年人", "harm to a minor"),
        "forced_begging": ("强迫乞讨", "forced begging"),
        "organ_trade": ("器官买卖", "organ trade"),
        "other": ("其他", "other"),
    },
}


class Words:
    def __init__(self, lang: str, departments: Mapping[str, tuple[str, str]]) -> None:
        self.lang = lang if lang in LANGS else DEFAULT_LANG
        self._i = LANGS.index(self.lang)
        self._departments = departments

    def __call__(self, key: str) -> str:
        return TEXT[key][self._i]

    def label(self, kind: str, value: str | None) -> str:
        if value is None:
            return ""
        pair = LABELS[kind].get(str(value))
        return pair[self._i] if pair else str(value)

    def department(self, department: str) -> str:
        pair = self._departments.get(department)
        return pair[self._i] if pair else department

    def target(self, target: str) -> str:
        """An escalation target: ``police.duty_supervisor`` -> the department's name and the role id."""
        department, _, role = target.partition(".")
        return self.department(department) + (f" · {role}" if role else "")
