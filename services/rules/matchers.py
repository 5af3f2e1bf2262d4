"""The matcher language of ``routing_rules.toml`` (its shape, validated by pydantic at load).

A matcher table (``match`` / ``match_not`` of a route, or an element of ``any`` /
``all`` / ``not``) holds keys that must all hold (AND); a list of values matches any
of them (OR). The keys and their meaning are listed in ``docs/RULES.md``; the
design is ``/work/coord/rules-language.md`` §1. Whether a ``details`` path exists
in a source's schema is checked when the tree is compiled
(``services/rules/detail_fields.py``), because that depends on the route's place
in the tree. Evaluation lives in ``services/rules/predicates.py``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)

from schemas.enums import AgeBand, Category, Disability, Indicator, Sex, Source, SubjectRole, Urgency
from schemas.report import CountryCode


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class _AtLeastOne(_Strict):
    """A table of options of which at least one must be given."""

    @model_validator(mode="after")
    def _given(self) -> _AtLeastOne:
        if all(getattr(self, name) is None for name in type(self).model_fields):
            keys = ", ".join(f.alias or n for n, f in type(self).model_fields.items())
            raise ValueError(f"give at least one of: {keys}")
        return self


Sources = Annotated[frozenset[Source], Field(min_length=1)]
Categories = Annotated[frozenset[Category], Field(min_length=1)]
Urgencies = Annotated[frozenset[Urgency], Field(min_length=1)]
Indicators = Annotated[frozenset[Indicator], Field(min_length=1)]
Roles = Annotated[frozenset[SubjectRole], Field(min_length=1)]
AgeBands = Annotated[frozenset[AgeBand], Field(min_length=1)]
Sexes = Annotated[frozenset[Sex], Field(min_length=1)]
Countries = Annotated[frozenset[CountryCode], Field(min_length=1)]
Disabilities = Annotated[frozenset[Disability | Literal["any"]], Field(min_length=1)]
Codes = Annotated[frozenset[str], Field(min_length=1)]


class NumberCompare(_AtLeastOne):
    """``{ lt = 14 }``, ``{ ge = 14, lt = 16 }``: every comparison given must hold."""

    eq: StrictInt | None = None
    lt: StrictInt | None = None
    le: StrictInt | None = None
    gt: StrictInt | None = None
    ge: StrictInt | None = None


class IndicatorSet(_AtLeastOne):
    """``{ any = [...] }``, ``{ all = [...] }``, ``{ none = [...] }``; several keys must all hold."""

    any: Indicators | None = None
    all: Indicators | None = None
    none: Indicators | None = None


class SubjectMatch(_AtLeastOne):
    """Predicates that one and the same subject must satisfy together."""

    role: Roles | None = None
    minor: StrictBool | None = Field(None, description="Under 18 by age or age band (unknown age is not a minor).")
    age: NumberCompare | None = Field(
        None, description="Exact age; without one, holds when every age of the subject's band does."
    )
    age_band: AgeBands | None = None
    sex: Sexes | None = None
    foreign: StrictBool | None = Field(None, description="Nationality given and not CN.")
    nationality: Countries | None = None
    disability: Disabilities | None = Field(None, description="Kinds of disability; 'any' = not none/unknown.")
    has_id: StrictBool | None = Field(None, description="An id_number is given.")


_CODE_LENGTH = {"district_code": 6, "township_code": 9, "village_code": 12}


class Prefix(_Strict):
    """``{ prefix = "120118100" }``: codes lying within an administrative parent."""

    prefix: Codes | StrictStr

    @field_validator("prefix")
    @classmethod
    def _as_set(cls, value: frozenset[str] | str) -> frozenset[str]:
        return frozenset({value}) if isinstance(value, str) else value


CodeMatch = Codes | Prefix


class LocationMatch(_AtLeastOne):
    """Administrative codes of the report's location: a list (membership) or ``{ prefix = ... }``."""

    district_code: CodeMatch | None = None
    township_code: CodeMatch | None = None
    village_code: CodeMatch | None = None

    @model_validator(mode="after")
    def _codes(self) -> LocationMatch:
        for name, length in _CODE_LENGTH.items():
            value = getattr(self, name)
            if isinstance(value, Prefix):
                for code in value.prefix:
                    if not re.fullmatch(rf"\d{{1,{length}}}", code):
                        raise ValueError(f"{name} prefix {code!r} must be 1 to {length} digits")
            elif value is not None:
                for code in value:
                    if not re.fullmatch(rf"\d{{{length}}}", code):
                        raise ValueError(f"{name} {code!r} is not {length} digits")
        return self


Scalar = StrictBool | StrictInt | StrictFloat | StrictStr
Scalars = Annotated[tuple[Scalar, ...], Field(min_length=1)]


def _shorthand(value: Any) -> Any:
    """A scalar means ``{ eq = value }``, a list ``{ in = [...] }``."""
    if isinstance(value, dict):
        return value
    if isinstance(value, list | tuple):
        return {"in": value}
    return {"eq": value}


class DetailTest(_AtLeastOne):
    """The tests of one ``details`` path; every one given must hold. Checked against the field's type."""

    eq: Scalar | None = None
    ne: Scalar | None = None
    lt: StrictInt | StrictFloat | None = None
    le: StrictInt | StrictFloat | None = None
    gt: StrictInt | StrictFloat | None = None
    ge: StrictInt | StrictFloat | None = None
    in_: Scalars | None = Field(None, alias="in")
    not_in: Scalars | None = None
    present: StrictBool | None = None
    contains: Scalar | None = Field(None, description="A tuple field holds this element.")
    contains_any: Scalars | None = Field(None, description="A tuple field holds any of these elements.")
    contains_other_than: Scalar | None = Field(
        None, description="A tuple field holds an element different from this (e.g. a party who is not CN)."
    )

    def given(self) -> dict[str, Any]:
        """The tests given, by their TOML name."""
        return {("in" if name == "in_" else name): v for name, v in self if v is not None}


DetailPath = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")]
Details = Annotated[
    dict[DetailPath, Annotated[DetailTest, BeforeValidator(_shorthand)]],
    Field(min_length=1),
]


class Matchers(_Strict):
    """All given matchers must hold (AND); a list matches any of its values (OR)."""

    source: Sources | None = None
    category: Categories | None = None
    urgency: Urgencies | None = None
    any_minor: StrictBool | None = None
    any_foreign: StrictBool | None = None
    any_disability: StrictBool | None = None
    indicators: Indicators | IndicatorSet | None = Field(None, description="A list: any of these indicators.")
    township: Codes | None = Field(None, description="Township codes (9 digits); short for location.township_code.")
    subject: SubjectMatch | None = Field(None, description="Some subject satisfies every predicate.")
    location: LocationMatch | None = None
    details: Details | None = Field(None, description="The sector's detail fields by dotted path.")
    any_: Annotated[tuple[Matchers, ...], Field(min_length=1)] | None = Field(None, alias="any")
    all_: Annotated[tuple[Matchers, ...], Field(min_length=1)] | None = Field(None, alias="all")
    not_: Matchers | None = Field(None, alias="not")

    @field_validator("township")
    @classmethod
    def _codes(cls, value: frozenset[str] | None) -> frozenset[str] | None:
        for code in value or ():
            if not re.fullmatch(r"\d{9}", code):
                raise ValueError(f"township code {code!r} is not 9 digits")
        return value

    @field_validator("any_", "all_")
    @classmethod
    def _elements_not_empty(cls, value: tuple[Matchers, ...] | None) -> tuple[Matchers, ...] | None:
        for i, element in enumerate(value or ()):
            if element.is_empty():
                raise ValueError(f"element {i} is an empty matcher (it would match every report)")
        return value

    @field_validator("not_")
    @classmethod
    def _not_empty(cls, value: Matchers | None) -> Matchers | None:
        if value is not None and value.is_empty():
            raise ValueError("'not' of an empty matcher matches no report")
        return value

    def is_empty(self) -> bool:
        return all(getattr(self, name) is None for name in type(self).model_fields)

    def given(self) -> dict[str, Any]:
        """The matchers given, by their TOML name, in the order of the language (not of the file)."""
        return {(type(self).model_fields[name].alias or name): v for name, v in self if v is not None}


Matchers.model_rebuild()


def _values(values: Any) -> str:
    if isinstance(values, frozenset | set | tuple | list):
        return ", ".join(sorted(str(getattr(v, "value", v)) for v in values))
    return str(getattr(values, "value", values)).lower() if isinstance(values, bool) else str(values)


def _options(table: BaseModel) -> str:
    """``role victim, other; minor true`` for a table of options (subject, indicators, a detail test)."""
    parts = []
    for name, value in table:
        if value is None:
            continue
        key = type(table).model_fields[name].alias or name
        parts.append(f"{key} {_values(value) if not isinstance(value, BaseModel) else _options(value)}")
    return "; ".join(parts)


def describe(m: Matchers) -> list[str]:
    """One line per given matcher of ``m``, in words a person can check against the file.

    ``category: suspected_trafficking_child``, ``subject: role victim; minor true``,
    ``details.escort_services: eq true``, ``any of: (…) | (…)``. Names and codes only: a
    rules file holds no personal values (personal detail fields take only ``present``).
    """
    lines = []
    for key, value in m.given().items():
        if key in ("any", "all"):
            inner = " | " if key == "any" else " & "
            lines.append(f"{key} of: " + inner.join(f"({'; '.join(describe(e))})" for e in value))
        elif key == "not":
            lines.append(f"not: ({'; '.join(describe(value))})")
        elif key == "details":
            lines += [f"details.{path}: {_options(test)}" for path, test in value.items()]
        elif isinstance(value, BaseModel):
            lines.append(f"{key}: {_options(value)}")
        else:
            lines.append(f"{key}: {_values(value)}")
    return lines
