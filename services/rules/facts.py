"""What the routing tree sees of a report: its facts, held in memory only.

``Facts`` carries the report's source, category, urgency, indicators, location
codes, one ``SubjectFacts`` per subject (role, age, band, sex, nationality,
disability, whether an id is given: never a name, number or phone) and the
sector's ``details`` (the model itself, or a mapping in a test case). Nothing
here is logged or recorded: decisions record route paths and matcher kinds only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from schemas.enums import Category, Disability, Indicator, Source, Urgency
from schemas.report import Location, Subject
from services.rules.detail_fields import leaf

_NO_DISABILITY = (Disability.none.value, Disability.unknown.value)


@dataclass(frozen=True, slots=True)
class SubjectFacts:
    """One subject as the ``subject`` matcher sees it (enum values as plain strings)."""

    role: str
    minor: bool = False
    age: int | None = None
    age_band: str = "unknown"
    sex: str = "unknown"
    nationality: str | None = None
    disability: str = "unknown"
    has_id: bool = False

    @property
    def foreign(self) -> bool:
        return self.nationality is not None and self.nationality != "CN"

    @property
    def has_disability(self) -> bool:
        return self.disability not in _NO_DISABILITY

    @classmethod
    def of(cls, subject: Any) -> SubjectFacts:
        return cls(
            role=subject.role.value,
            minor=subject.is_minor,
            age=subject.age,
            age_band=subject.age_band.value,
            sex=subject.sex.value,
            nationality=subject.nationality,
            disability=subject.disability.value,
            has_id=subject.id_number is not None,
        )


@dataclass(frozen=True)
class Facts:
    """The facts of one report. Built with :meth:`of` (a report or submission) or :meth:`from_mapping`."""

    source: Source
    category: Category
    urgency: Urgency
    any_minor: bool = False
    any_foreign: bool = False
    any_disability: bool = False
    indicators: frozenset[str] = frozenset()
    township: str | None = None
    subjects: tuple[SubjectFacts, ...] = ()
    district: str | None = None
    village: str | None = None
    details: Any = field(default=None, compare=False)  # the details model, or a mapping

    def __post_init__(self) -> None:
        # Callers may pass plain strings; the index is keyed by the enums.
        object.__setattr__(self, "source", Source(self.source))
        object.__setattr__(self, "category", Category(self.category))
        object.__setattr__(self, "urgency", Urgency(self.urgency))

    @classmethod
    def of(cls, report: Any, source: Source | str | None = None) -> Facts:
        """The facts of a report, or of a submission (then ``source`` says whose)."""
        subjects = tuple(SubjectFacts.of(s) for s in getattr(report, "subjects", ()) or ())
        location = getattr(report, "location", None)
        return cls(
            source=Source(source if source is not None else report.source),
            category=report.category,
            urgency=report.urgency,
            any_minor=any(s.minor for s in subjects),
            any_foreign=any(s.foreign for s in subjects),
            any_disability=any(s.has_disability for s in subjects),
            indicators=frozenset(str(getattr(i, "value", i)) for i in report.indicators or ()),
            township=location.township_code if location else None,
            subjects=subjects,
            district=location.district_code if location else None,
            village=location.village_code if location else None,
            details=getattr(report, "details", None),
        )

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> Facts:
        """Facts written by hand (a test case's ``facts`` table); raises ValueError naming the fault.

        ``any_minor`` / ``any_foreign`` / ``any_disability`` default to what ``subjects`` say.
        """
        try:
            given = _FactsInput.model_validate(dict(raw))
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise ValueError(f"facts.{where}: {err['msg']}") from None
        unknown = [p for p in _leaf_paths(given.details) if leaf(given.source, p) is None]
        if unknown:
            raise ValueError(f"facts.details: not fields of {given.source.value} details: {', '.join(unknown)}")
        subjects = tuple(SubjectFacts.of(s) for s in given.subjects)
        location = given.location or Location()

        def flag(value: bool | None, derived: bool) -> bool:
            return derived if value is None else value

        return cls(
            source=given.source,
            category=given.category,
            urgency=given.urgency,
            any_minor=flag(given.any_minor, any(s.minor for s in subjects)),
            any_foreign=flag(given.any_foreign, any(s.foreign for s in subjects)),
            any_disability=flag(given.any_disability, any(s.has_disability for s in subjects)),
            indicators=frozenset(i.value for i in given.indicators),
            township=given.township or location.township_code,
            subjects=subjects,
            district=location.district_code,
            village=location.village_code,
            details=given.details,
        )


class _FactsInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: Source
    category: Category
    urgency: Urgency = Urgency.normal
    any_minor: bool | None = None
    any_foreign: bool | None = None
    any_disability: bool | None = None
    indicators: tuple[Indicator, ...] = ()
    township: str | None = Field(None, pattern=r"^\d{9}$")
    location: Location | None = None
    subjects: tuple[Subject, ...] = ()
    details: dict[str, Any] = Field(default_factory=dict)


def _leaf_paths(data: Mapping[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.extend(_leaf_paths(value, path + "."))
        else:
            out.append(path)
    return out
