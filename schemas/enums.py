"""Enumerations shared by reports, referrals and acknowledgements.

Over 400 lines on purpose: every enumeration of the published contracts in one
list (most lines are members and what each means), and the lifecycle's rules
beside the ``Stage`` enum that owns them.
"""

from __future__ import annotations

from enum import StrEnum


class Source(StrEnum):
    """The five sectors with a duty to report (强制报告)."""

    hospital = "hospital"  # hospitals, maternity units, medical staff
    school = "school"  # kindergartens, schools, teachers
    labour = "labour"  # labour inspection, employment agencies
    marriage = "marriage"  # marriage registration offices
    venue = "venue"  # entertainment venues and hotels


class Category(StrEnum):
    """What is suspected. Routing rules match on these."""

    #: a woman trafficked or being sold
    suspected_trafficking_woman = "suspected_trafficking_woman"
    #: a child trafficked or being sold
    suspected_trafficking_child = "suspected_trafficking_child"
    #: a child missing now (儿童失踪快速查找): critical
    missing_child = "missing_child"
    #: a minor under 16 employed
    child_labour = "child_labour"
    #: work exacted under threat or by deception
    forced_labour = "forced_labour"
    #: exploiting people with mental or intellectual disability
    illegal_employment_disabled = "illegal_employment_disabled"
    #: foreigners working without a permit
    illegal_employment_foreigner = "illegal_employment_foreigner"
    #: sexual exploitation or abuse of a minor
    sexual_abuse_minor = "sexual_abuse_minor"
    #: a minor admitted to or employed by an entertainment venue
    minor_in_venue = "minor_in_venue"
    #: paid escort services (营利性陪侍)
    escort_services = "escort_services"
    #: a child adopted illegally or sold
    illegal_adoption_or_sale = "illegal_adoption_or_sale"
    #: admission or delivery under another identity
    birth_identity_mismatch = "birth_identity_mismatch"
    #: forged, altered or traded birth medical certificate
    birth_certificate_fraud = "birth_certificate_fraud"
    #: a surrogate pregnancy arranged or carried out (代孕, prohibited)
    surrogacy = "surrogacy"
    #: foetal sex determination without medical need
    non_medical_sex_determination = "non_medical_sex_determination"
    #: a party at registration appears trafficked or coerced
    suspicious_marriage = "suspicious_marriage"
    #: cross-border marriage with identity or entry-exit anomalies
    cross_border_marriage = "cross_border_marriage"
    #: an illegal (international) marriage agency
    illegal_marriage_broker = "illegal_marriage_broker"
    #: a pupil dropping out of compulsory education (控辍保学)
    school_dropout_risk = "school_dropout_risk"
    #: a left-behind or troubled child at risk
    child_at_risk = "child_at_risk"
    #: any other harm to a minor (mandatory report)
    harm_to_minor = "harm_to_minor"
    #: a person forced to beg
    forced_begging = "forced_begging"
    #: trade in human organs
    organ_trade = "organ_trade"
    #: none of the above
    other = "other"


_RANK = {"normal": 0, "high": 1, "critical": 2}


class _Ranked(StrEnum):
    """critical > high > normal; compare with ``rank`` (the values' own order is alphabetical)."""

    @property
    def rank(self) -> int:
        return _RANK[self.value]


class Urgency(_Ranked):
    """The reporter's view of how urgent the report is."""

    critical = "critical"  # danger now: a missing child, a victim still in the suspect's control
    high = "high"
    normal = "normal"


class Priority(_Ranked):
    """The bus's priority of a referral: rules may raise the reporter's urgency, never lower it."""

    critical = "critical"
    high = "high"
    normal = "normal"

    @classmethod
    def of(cls, urgency: Urgency | str) -> Priority:
        return cls(str(getattr(urgency, "value", urgency)))

    @classmethod
    def highest(cls, *levels: Priority | Urgency | str) -> Priority:
        """The highest of some priorities or urgencies (``normal`` when given none)."""
        return max((cls.of(level) for level in levels), key=lambda p: p.rank, default=cls.normal)


class Role(StrEnum):
    """A department's part in a referral, as the plan assigns it."""

    lead = "lead"  # 负责
    cooperating = "cooperating"  # 配合


# The one owner of the lifecycle: the tracker, the inboxes, the console and schemas/lifecycle.py ask it.
# (Its docstring is the published contracts' description of a stage.)
class Stage(StrEnum):
    """A referral's lifecycle: routed -> received -> accepted | declined; accepted -> completed.

    A department may skip ``received`` (accepting implies receipt). ``declined`` is
    terminal for that referral (the tracker escalates a lead's decline); ``completed``
    only follows ``accepted``.
    """

    routed = "routed"  # the router published the referral
    received = "received"  # the department's system has it (safe storage)
    accepted = "accepted"  # the department takes it on
    declined = "declined"  # the department refuses it, with a reason code
    completed = "completed"  # the department finished, with an outcome code

    @property
    def rank(self) -> int:
        """Order of the stages; ``accepted`` and ``declined`` share a rank: neither may follow the other."""
        return _STAGE_RANK[self.value]

    @property
    def terminal(self) -> bool:
        return self in (Stage.declined, Stage.completed)

    @property
    def open(self) -> bool:
        """The department still owes something (a receipt, a decision or a completion)."""
        return not self.terminal

    @property
    def undecided(self) -> bool:
        """Neither accepted nor declined yet (a required case owner is still to be named)."""
        return self in (Stage.routed, Stage.received)

    @property
    def waiting_on(self) -> DueStage | None:
        """The clock a referral at this stage waits on (None: closed)."""
        return _WAITING_ON[self]

    @property
    def next_stages(self) -> frozenset[Stage]:
        """The stages a referral may move to from this one."""
        return _NEXT_STAGES[self]

    def can_move_to(self, stage: Stage | str) -> bool:
        """Whether ``self -> stage`` is a legal forward step (a repeat of the same stage is not)."""
        return Stage(stage) in _NEXT_STAGES[self]


_STAGE_RANK = {"routed": 0, "received": 1, "accepted": 2, "declined": 2, "completed": 3}
_NEXT_STAGES: dict[Stage, frozenset[Stage]] = {
    Stage.routed: frozenset({Stage.received, Stage.accepted, Stage.declined}),
    Stage.received: frozenset({Stage.accepted, Stage.declined}),
    Stage.accepted: frozenset({Stage.completed}),
    Stage.declined: frozenset(),
    Stage.completed: frozenset(),
}
OPEN_STAGES: tuple[Stage, ...] = tuple(s for s in Stage if s.open)


class AckStage(StrEnum):
    """Stages a department can acknowledge (``routed`` is the router's)."""

    received = "received"
    accepted = "accepted"
    declined = "declined"
    completed = "completed"

    @property
    def stage(self) -> Stage:
        return Stage(self.value)


class AccessChannel(StrEnum):
    """Where a person opened a referral's personal data."""

    inbox = "inbox"  # `cluebus inbox <department> show`
    console = "console"  # the web console's referral page


class DueStage(StrEnum):
    """The clocks of a referral: when each next step is due."""

    received = "received"
    decided = "decided"  # accepted or declined
    completed = "completed"


_WAITING_ON: dict[Stage, DueStage | None] = {
    Stage.routed: DueStage.received,
    Stage.received: DueStage.decided,
    Stage.accepted: DueStage.completed,
    Stage.declined: None,
    Stage.completed: None,
}


class SubjectRole(StrEnum):
    """Why a person is named in a report."""

    victim = "victim"
    suspect = "suspect"
    buyer = "buyer"
    guardian = "guardian"
    witness = "witness"
    other = "other"


class Sex(StrEnum):
    female = "female"
    male = "male"
    unknown = "unknown"


class AgeBand(StrEnum):
    """Age bands: enough for routing and statistics without the exact age."""

    infant = "0-5"
    child = "6-13"
    adolescent = "14-17"
    young_adult = "18-29"
    adult = "30-59"
    senior = "60+"
    unknown = "unknown"

    @property
    def is_minor(self) -> bool:
        return self in (AgeBand.infant, AgeBand.child, AgeBand.adolescent)

    @property
    def is_under_14(self) -> bool:
        """PIPL art. 28: a child under 14's personal information is sensitive information."""
        return self in (AgeBand.infant, AgeBand.child)

    @property
    def bounds(self) -> tuple[int, int] | None:
        """The youngest and oldest age of the band (None for ``unknown``)."""
        return _AGE_BOUNDS.get(self.value)

    @classmethod
    def for_age(cls, age: int) -> AgeBand:
        for band in cls:
            bounds = band.bounds
            if bounds is not None and age <= bounds[1]:
                return band
        return cls.senior


_AGE_BOUNDS = {
    "0-5": (0, 5),
    "6-13": (6, 13),
    "14-17": (14, 17),
    "18-29": (18, 29),
    "30-59": (30, 59),
    "60+": (60, 120),
}


class Consent(StrEnum):
    """An adult victim's consent to share their identity with non-police departments."""

    given = "given"
    refused = "refused"
    unknown = "unknown"
    not_required = "not_required"  # e.g. only minors are involved


class Disability(StrEnum):
    """Kind of disability (special category data under PIPL)."""

    none = "none"
    physical = "physical"
    intellectual = "intellectual"
    mental = "mental"
    sensory = "sensory"
    multiple = "multiple"
    unknown = "unknown"


class IdType(StrEnum):
    resident_id = "resident_id"
    passport = "passport"
    other = "other"


class Indicator(StrEnum):
    """Named indicators; the first eleven are the ILO indicators of forced labour."""

    #: ILO 1: exploiting poverty, irregular status, disability, youth
    abuse_of_vulnerability = "abuse_of_vulnerability"
    #: ILO 2: false promises about the work, pay or place
    deception = "deception"
    #: ILO 3: locked in, watched, not free to leave
    restriction_of_movement = "restriction_of_movement"
    #: ILO 4: cut off from family, phone or outside contact
    isolation = "isolation"
    #: ILO 5: beaten, raped or sexually abused
    physical_sexual_violence = "physical_sexual_violence"
    #: ILO 6: threats against them or their family, e.g. of denunciation
    intimidation_threats = "intimidation_threats"
    #: ILO 7: someone else keeps their ID card or passport
    retention_of_identity_documents = "retention_of_identity_documents"
    #: ILO 8: pay withheld, deferred or never paid
    withholding_of_wages = "withholding_of_wages"
    #: ILO 9: works off a debt that never ends
    debt_bondage = "debt_bondage"
    #: ILO 10: degrading, dangerous or unhealthy conditions
    abusive_working_conditions = "abusive_working_conditions"
    #: ILO 11: hours far beyond the legal limits
    excessive_overtime = "excessive_overtime"
    #: a person appears younger than stated or than the law allows
    under_age = "under_age"
    #: someone speaks for the person or will not leave them alone
    accompanied_by_controller = "accompanied_by_controller"
    #: the story or the papers do not add up
    inconsistent_account = "inconsistent_account"
    #: missing, forged, borrowed or mismatched identity papers
    identity_document_anomaly = "identity_document_anomaly"
    #: visible injuries or signs of neglect
    signs_of_injury = "signs_of_injury"
    #: a pregnant girl under 18
    pregnancy_of_minor = "pregnancy_of_minor"
    #: working without a written contract
    no_contract = "no_contract"
    #: brought in by a recruiter, agency or marriage broker
    recruited_by_agency = "recruited_by_agency"
    #: brought across a national border
    cross_border_movement = "cross_border_movement"
    #: recruited or groomed online
    online_contact = "online_contact"


class AttachmentKind(StrEnum):
    document = "document"
    photo = "photo"
    audio = "audio"
    video = "video"
    medical_record = "medical_record"
    other = "other"


class DeclineReason(StrEnum):
    """Why a department declines a referral (the free-text reason goes beside the code)."""

    not_in_remit = "not_in_remit"  # not this department's duty
    insufficient_information = "insufficient_information"  # cannot act on what was shared
    duplicate = "duplicate"  # the same case is already open here
    handled_elsewhere = "handled_elsewhere"  # another unit already handles it
    other = "other"


class OutcomeCode(StrEnum):
    """How a department completed a referral (fed back to the reporter as a code)."""

    case_opened = "case_opened"
    referred_on = "referred_on"
    victim_placed = "victim_placed"
    services_provided = "services_provided"
    no_concern_found = "no_concern_found"
    closed_other = "closed_other"


class EscalationReason(StrEnum):
    """Why the tracker raised a referral to the next level."""

    overdue = "overdue"  # a stage's clock ran out
    declined_by_lead = "declined_by_lead"  # the lead department declined: someone else must decide


# Categories where the report is about a child, so a minor (or a person of unknown age)
# must be among the subjects.
CHILD_CATEGORIES = frozenset(
    {
        Category.missing_child,
        Category.suspected_trafficking_child,
        Category.child_labour,
        Category.sexual_abuse_minor,
        Category.minor_in_venue,
        Category.school_dropout_risk,
        Category.child_at_risk,
        Category.harm_to_minor,
        Category.illegal_adoption_or_sale,
    }
)

# Categories where a report may name only suspects or brokers, no victim.
NO_VICTIM_NEEDED = frozenset(
    {
        Category.illegal_marriage_broker,
        Category.escort_services,
        Category.birth_certificate_fraud,
        Category.non_medical_sex_determination,
        Category.surrogacy,
        Category.other,
        Category.illegal_employment_foreigner,
    }
)
