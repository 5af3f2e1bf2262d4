"""Enumerations shared by reports, referrals and acknowledgements."""

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

    suspected_trafficking_woman = "suspected_trafficking_woman"  # a woman trafficked or being sold
    suspected_trafficking_child = "suspected_trafficking_child"  # a child trafficked or being sold
    missing_child = "missing_child"  # a child missing now (儿童失踪快速查找): critical
    child_labour = "child_labour"  # a minor under 16 employed
    forced_labour = "forced_labour"  # work exacted under threat or by deception
    illegal_employment_disabled = "illegal_employment_disabled"  # exploiting people with mental or intellectual disability
    illegal_employment_foreigner = "illegal_employment_foreigner"  # foreigners working without a permit
    sexual_abuse_minor = "sexual_abuse_minor"  # sexual exploitation or abuse of a minor
    minor_in_venue = "minor_in_venue"  # a minor admitted to or employed by an entertainment venue
    escort_services = "escort_services"  # paid escort services (营利性陪侍)
    illegal_adoption_or_sale = "illegal_adoption_or_sale"  # a child adopted illegally or sold
    birth_identity_mismatch = "birth_identity_mismatch"  # admission or delivery under another identity
    birth_certificate_fraud = "birth_certificate_fraud"  # forged, altered or traded birth medical certificate
    surrogacy = "surrogacy"  # surrogacy
    non_medical_sex_determination = "non_medical_sex_determination"  # foetal sex determination without medical need
    suspicious_marriage = "suspicious_marriage"  # a party at registration appears trafficked or coerced
    cross_border_marriage = "cross_border_marriage"  # cross-border marriage with identity or entry-exit anomalies
    illegal_marriage_broker = "illegal_marriage_broker"  # an illegal (international) marriage agency
    school_dropout_risk = "school_dropout_risk"  # a pupil dropping out of compulsory education (控辍保学)
    child_at_risk = "child_at_risk"  # a left-behind or troubled child at risk
    harm_to_minor = "harm_to_minor"  # any other harm to a minor (mandatory report)
    forced_begging = "forced_begging"  # a person forced to beg
    organ_trade = "organ_trade"  # trade in human organs
    other = "other"  # none of the above


class Urgency(StrEnum):
    """The reporter's view of how urgent the report is."""

    critical = "critical"
    high = "high"
    normal = "normal"


class Priority(StrEnum):
    """The bus's priority of a referral: the rules may raise the reporter's urgency."""

    critical = "critical"
    high = "high"
    normal = "normal"

    @property
    def rank(self) -> int:
        return {"normal": 0, "high": 1, "critical": 2}[self.value]


class Role(StrEnum):
    lead = "lead"  # 负责
    cooperating = "cooperating"  # 配合


class Stage(StrEnum):
    """A referral's lifecycle: routed -> received -> accepted | declined -> completed."""

    routed = "routed"
    received = "received"
    accepted = "accepted"
    declined = "declined"
    completed = "completed"

    @property
    def rank(self) -> int:
        return {"routed": 0, "received": 1, "accepted": 2, "declined": 2, "completed": 3}[self.value]

    @property
    def terminal(self) -> bool:
        return self in (Stage.declined, Stage.completed)


class AckStage(StrEnum):
    """Stages a department can acknowledge (``routed`` is the router's)."""

    received = "received"
    accepted = "accepted"
    declined = "declined"
    completed = "completed"


class DueStage(StrEnum):
    """The clocks of a referral: when each next step is due."""

    received = "received"
    decided = "decided"  # accepted or declined
    completed = "completed"


class SubjectRole(StrEnum):
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

    @classmethod
    def for_age(cls, age: int) -> AgeBand:
        for band, upper in ((cls.infant, 5), (cls.child, 13), (cls.adolescent, 17),
                            (cls.young_adult, 29), (cls.adult, 59)):
            if age <= upper:
                return band
        return cls.senior


class Consent(StrEnum):
    """An adult victim's consent to share their identity with non-police departments."""

    given = "given"
    refused = "refused"
    unknown = "unknown"
    not_required = "not_required"  # e.g. only minors are involved


class Disability(StrEnum):
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

    abuse_of_vulnerability = "abuse_of_vulnerability"
    deception = "deception"
    restriction_of_movement = "restriction_of_movement"
    isolation = "isolation"
    physical_sexual_violence = "physical_sexual_violence"
    intimidation_threats = "intimidation_threats"
    retention_of_identity_documents = "retention_of_identity_documents"
    withholding_of_wages = "withholding_of_wages"
    debt_bondage = "debt_bondage"
    abusive_working_conditions = "abusive_working_conditions"
    excessive_overtime = "excessive_overtime"
    under_age = "under_age"
    accompanied_by_controller = "accompanied_by_controller"
    inconsistent_account = "inconsistent_account"
    identity_document_anomaly = "identity_document_anomaly"
    signs_of_injury = "signs_of_injury"
    pregnancy_of_minor = "pregnancy_of_minor"
    no_contract = "no_contract"
    recruited_by_agency = "recruited_by_agency"
    cross_border_movement = "cross_border_movement"
    online_contact = "online_contact"


class AttachmentKind(StrEnum):
    document = "document"
    photo = "photo"
    audio = "audio"
    video = "video"
    medical_record = "medical_record"
    other = "other"


class DeclineReason(StrEnum):
    not_in_remit = "not_in_remit"
    insufficient_information = "insufficient_information"
    duplicate = "duplicate"
    handled_elsewhere = "handled_elsewhere"
    other = "other"


class OutcomeCode(StrEnum):
    case_opened = "case_opened"
    referred_on = "referred_on"
    victim_placed = "victim_placed"
    services_provided = "services_provided"
    no_concern_found = "no_concern_found"
    closed_other = "closed_other"


class EscalationReason(StrEnum):
    overdue = "overdue"
    declined_by_lead = "declined_by_lead"


# Categories where the report is about a child, so a minor (or a person of unknown age)
# must be among the subjects.
CHILD_CATEGORIES = frozenset({
    Category.missing_child, Category.suspected_trafficking_child, Category.child_labour,
    Category.sexual_abuse_minor, Category.minor_in_venue, Category.school_dropout_risk,
    Category.child_at_risk, Category.harm_to_minor, Category.illegal_adoption_or_sale,
})

# Categories where a report may name only suspects or brokers, no victim.
NO_VICTIM_NEEDED = frozenset({
    Category.illegal_marriage_broker, Category.escort_services, Category.birth_certificate_fraud,
    Category.non_medical_sex_determination, Category.surrogacy, Category.other,
    Category.illegal_employment_foreigner,
})
