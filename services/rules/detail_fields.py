"""``details`` paths of the matcher language, resolved against each source's details model.

A path such as ``identity_check.document_matches_patient`` must name a field of the
details model of at least one source the route can see; the tests given for it are
checked against that field's type and turned into JSON values, which is what the
engine compares with (enum members compare by value, whichever object holds them).
Fields marked personal or identifying may only be tested with ``present``: a rules
file never holds a person's values.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum
from functools import cache
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from schemas.base import SENSITIVITY_KEY
from schemas.enums import Source
from schemas.sources import SUBMISSION_MODELS
from services.rules.matchers import DetailTest

_EQUALITY = frozenset({"eq", "ne", "in", "not_in"})
_ORDER = frozenset({"lt", "le", "gt", "ge"})
_TUPLE = frozenset({"contains", "contains_any", "contains_other_than"})
_ALLOWED = {
    "bool": _EQUALITY,
    "number": _EQUALITY | _ORDER,
    "text": _EQUALITY,
    "enum": _EQUALITY,
    "tuple": _TUPLE,
    "model": frozenset(),
    "time": frozenset(),
}


@dataclass(frozen=True)
class Leaf:
    """A details field as the matcher language sees it."""

    kind: str  # bool | number | text | enum | tuple | model | time
    value_type: Any  # the annotation values are validated with (the item type for tuples)
    personal: bool


def details_model(source: Source) -> type[BaseModel]:
    return SUBMISSION_MODELS[source].model_fields["details"].annotation  # type: ignore[return-value]


def _unwrap_optional(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _base(annotation: Any) -> Any:
    return typing.get_args(annotation)[0] if typing.get_origin(annotation) is typing.Annotated else annotation


def _kind(annotation: Any) -> tuple[str, Any]:
    base = _base(annotation)
    if typing.get_origin(base) is tuple:
        return "tuple", typing.get_args(base)[0]
    if isinstance(base, type):
        if issubclass(base, BaseModel):
            return "model", base
        if issubclass(base, bool):
            return "bool", annotation
        if issubclass(base, Enum):
            return "enum", annotation
        if issubclass(base, int | float):
            return "number", annotation
        if issubclass(base, str):
            return "text", annotation
        if issubclass(base, datetime | date):
            return "time", annotation
    raise TypeError(f"details field of type {annotation!r} is not supported by the matcher language")


@cache
def leaf(source: Source, path: str) -> Leaf | None:
    """The field at ``path`` of ``source``'s details, or None when there is none."""
    model: type[BaseModel] | None = details_model(source)
    parts = path.split(".")
    for i, part in enumerate(parts):
        if model is None or part not in model.model_fields:
            return None
        info = model.model_fields[part]
        kind, value_type = _kind(_unwrap_optional(info.annotation))
        if i < len(parts) - 1:
            model = value_type if kind == "model" else None
            continue
        extra = info.json_schema_extra
        personal = isinstance(extra, dict) and SENSITIVITY_KEY in extra
        return Leaf(kind, value_type, personal)
    return None


@cache
def _adapter(value_type: Any) -> TypeAdapter[Any]:
    return TypeAdapter(value_type)


def _json_value(value: Any, value_type: Any, kind: str) -> Any:
    """``value`` checked against the field's type, as the JSON value a report would hold."""
    base = _base(value_type)
    expected = {"bool": bool, "number": (int, float), "text": str, "enum": str}.get(kind)
    if kind == "tuple":
        expected = bool if base is bool else (int, float) if base in (int, float) else str
    if expected is not None and (not isinstance(value, expected) or (isinstance(value, bool) and expected is not bool)):
        raise ValueError(f"{value!r} is not a {_type_name(value_type, kind)}")
    try:
        adapter = _adapter(value_type)
        return adapter.dump_python(adapter.validate_python(value), mode="json")
    except ValidationError as exc:
        base = _base(value_type)
        reason = "" if isinstance(base, type) and issubclass(base, Enum) else f": {exc.errors()[0]['msg']}"
        raise ValueError(f"{value!r} is not a valid {_type_name(value_type, kind)}{reason}") from None


def _type_name(value_type: Any, kind: str) -> str:
    base = _base(value_type)
    if isinstance(base, type) and issubclass(base, Enum):
        return f"{base.__name__} ({', '.join(str(m.value) for m in base)})"
    if base is bool:
        return "boolean"
    if base in (int, float) or kind == "number":
        return "number"
    return "text" if base is str else getattr(base, "__name__", str(base))


def normalise(path: str, test: DetailTest, leaf_: Leaf) -> dict[str, Any]:
    """The tests of one path with JSON values; raises ValueError saying what is wrong."""
    given = test.given()
    allowed = {"present"} | (set() if leaf_.personal else _ALLOWED[leaf_.kind])
    wrong = sorted(set(given) - allowed)
    if wrong:
        why = "is personal data" if leaf_.personal else f"is a {leaf_.kind} field"
        raise ValueError(f"'{path}' {why}: it accepts {', '.join(sorted(allowed))}, not {', '.join(wrong)}")
    out: dict[str, Any] = {}
    for op, value in given.items():
        if op == "present":
            out[op] = value
        elif op in _ORDER:
            out[op] = _json_value(value, leaf_.value_type, leaf_.kind)
        elif op in ("in", "not_in", "contains_any"):
            out[op] = frozenset(_json_value(v, leaf_.value_type, leaf_.kind) for v in value)
        else:
            out[op] = _json_value(value, leaf_.value_type, leaf_.kind)
    return out


def resolve(path: str, test: DetailTest, scope: frozenset[Source]) -> dict[str, Any]:
    """Normalised tests of ``path`` for the sources in ``scope`` having it (ValueError when none does)."""
    found = {source: leaf(source, path) for source in sorted(scope)}
    having = {source: f for source, f in found.items() if f is not None}
    if not having:
        names = ", ".join(s.value for s in sorted(scope))
        raise ValueError(f"unknown details path '{path}': not a field of the details of {names}")
    results = []
    for source, leaf_ in having.items():
        try:
            results.append(normalise(path, test, leaf_))
        except ValueError as exc:
            raise ValueError(f"details '{path}' of {source.value}: {exc}") from None
    return results[0]
