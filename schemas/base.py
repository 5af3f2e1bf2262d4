"""Base model, sensitivity marks and the field registry used by redaction and log scrubbing.

The rule that DNA and biometric data are for the police only lives in ``schemas/dna.py``.
"""

from __future__ import annotations

import typing
from enum import StrEnum
from functools import cache
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1
SENSITIVITY_KEY = "x-cluebus-sensitivity"
# A free-text field written by the reporter to be shared with every recipient (no names, ids or phones).
SHAREABLE_KEY = "x-cluebus-shareable"


class Model(BaseModel):
    """Every cluebus model: immutable, unknown keys rejected, text trimmed."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Sensitivity(StrEnum):
    """How personal a field is; drives need-to-know copies and log scrubbing."""

    identifying = "identifying"  # names, id numbers, phones, exact addresses, record numbers
    personal = "personal"  # other facts about a person: age, sex, nationality, free text
    special = "special"  # PIPL sensitive data: health, disability, sexual life
    biometric = "biometric"  # reserved: no source schema carries any (DNA is police-only)


def personal(sensitivity: Sensitivity | str, default: Any = ..., **field_kwargs: Any) -> Any:
    """A ``Field`` marked with its sensitivity, in the model and in the JSON Schema.

    ``personal(Sensitivity.identifying, None, max_length=100)`` is an optional
    identifying field; without a default the field is required.
    """
    extra = dict(field_kwargs.pop("json_schema_extra", None) or {})
    extra[SENSITIVITY_KEY] = Sensitivity(sensitivity).value
    return Field(default, json_schema_extra=extra, **field_kwargs)


def _nested_models(annotation: Any) -> list[type[BaseModel]]:
    """Model classes inside an annotation: Optional, unions, list/tuple items, Annotated."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        for model in _nested_models(arg):
            if model not in found:
                found.append(model)
    return found


def _sensitivity(field: Any) -> Sensitivity | None:
    extra = field.json_schema_extra
    if isinstance(extra, dict) and SENSITIVITY_KEY in extra:
        return Sensitivity(extra[SENSITIVITY_KEY])
    return None


@cache
def _walk(model: type[BaseModel]) -> tuple[tuple[str, Sensitivity | None], ...]:
    return tuple((path, _sensitivity(field)) for path, field in _fields(model))


@cache
def _fields(model: type[BaseModel]) -> tuple[tuple[str, Any], ...]:
    return tuple(_walk_uncached(model, ()))


def _walk_uncached(model: type[BaseModel], seen: tuple[type[BaseModel], ...]) -> list[tuple[str, Any]]:
    if model in seen:
        raise TypeError(f"{model.__name__} contains itself; field paths would be infinite")
    out: list[tuple[str, Any]] = []
    for name, field in model.model_fields.items():
        key = field.alias or name  # paths address JSON keys
        out.append((key, field))
        for sub in _nested_models(field.annotation):
            for path, info in _walk_uncached(sub, (*seen, model)):
                out.append((f"{key}.{path}", info))
    return out


@cache
def field_paths(model: type[BaseModel]) -> frozenset[str]:
    """Every dotted path of a model, containers and leaves (lists and Optional are transparent).

    ``subjects`` and ``subjects.name`` are both paths; list indexes never appear.
    """
    return frozenset(path for path, _ in _walk(model))


@cache
def field_order(model: type[BaseModel]) -> tuple[str, ...]:
    """Every dotted path of a model in the order its fields are declared (parents before children)."""
    return tuple(path for path, _ in _fields(model))


@cache
def _sensitive(model: type[BaseModel]) -> MappingProxyType[str, Sensitivity]:
    return MappingProxyType({path: mark for path, mark in _walk(model) if mark is not None})


@cache
def free_text_fields(model: type[BaseModel], *, shareable: bool = False) -> frozenset[str]:
    """Dotted paths of a model's free-text fields (``FreeText`` in ``schemas/scalars.py``: narratives,
    descriptions), which may name anyone. ``shareable=False`` leaves out those written to be shared
    with every recipient (marked ``SHAREABLE_KEY``); ``True`` gives only those."""
    from schemas.scalars import is_free_text

    return frozenset(path for path, field in _fields(model) if is_free_text(field) and _shareable(field) == shareable)


def _shareable(field: Any) -> bool:
    extra = field.json_schema_extra
    return isinstance(extra, dict) and extra.get(SHAREABLE_KEY) is True


def sensitive_fields(model: type[BaseModel]) -> dict[str, Sensitivity]:
    """Dotted path -> sensitivity of every marked field of a model, nested models included.

    Computed once per model; the caller gets its own copy.
    """
    return dict(_sensitive(model))
