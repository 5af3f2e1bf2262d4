"""Base model, sensitivity marks and the field registry used by redaction and log scrubbing."""

from __future__ import annotations

import re
import types
import typing
from enum import StrEnum
from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1
SENSITIVITY_KEY = "x-cluebus-sensitivity"


class Model(BaseModel):
    """Every cluebus model: immutable, unknown keys rejected, text trimmed."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Sensitivity(StrEnum):
    """How personal a field is; drives need-to-know copies and log scrubbing."""

    identifying = "identifying"  # names, id numbers, phones, exact addresses, record numbers
    personal = "personal"  # other facts about a person: age, sex, nationality, free text
    special = "special"  # PIPL sensitive data: health, disability, sexual life
    biometric = "biometric"  # reserved: no source schema carries any (DNA is police-only)


def personal(sensitivity: Sensitivity | str, default: Any = ..., **kwargs: Any) -> Any:
    """A field marked with its sensitivity in the model and the JSON Schema."""
    extra = dict(kwargs.pop("json_schema_extra", None) or {})
    extra[SENSITIVITY_KEY] = Sensitivity(sensitivity).value
    return Field(default, json_schema_extra=extra, **kwargs)


def _nested_models(annotation: Any) -> list[type[BaseModel]]:
    """Model classes inside an annotation (Optional, list, tuple, Annotated, unions)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        found.extend(_nested_models(arg))
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType) or origin is None:
        return found
    return found


def _sensitivity(field: Any) -> Sensitivity | None:
    extra = field.json_schema_extra
    if isinstance(extra, dict) and SENSITIVITY_KEY in extra:
        return Sensitivity(extra[SENSITIVITY_KEY])
    return None


@cache
def _walk(model: type[BaseModel]) -> tuple[tuple[str, Sensitivity | None], ...]:
    out: list[tuple[str, Sensitivity | None]] = []
    for name, field in model.model_fields.items():
        key = field.alias or name
        out.append((key, _sensitivity(field)))
        for sub in _nested_models(field.annotation):
            for path, mark in _walk(sub):
                out.append((f"{key}.{path}", mark))
    return tuple(out)


def field_paths(model: type[BaseModel]) -> frozenset[str]:
    """Every dotted path of a model, containers and leaves (lists are transparent)."""
    return frozenset(path for path, _ in _walk(model))


def sensitive_fields(model: type[BaseModel]) -> dict[str, Sensitivity]:
    """Dotted path -> sensitivity for every marked field of a model, nested included."""
    return {path: mark for path, mark in _walk(model) if mark is not None}


# Keys that would carry DNA or biometric data. The plan reserves DNA to the police, so
# no source may send it; saying so beats a generic "extra field" error.
DNA_KEY = re.compile(r"dna|genetic|biometric|fingerprint|iris|face_?print|voiceprint", re.I)


def find_dna_keys(data: Any, prefix: str = "") -> list[str]:
    """Paths of keys anywhere in raw input whose name looks like DNA/biometric data."""
    found: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(key, str) and DNA_KEY.search(key):
                found.append(path)
            found.extend(find_dna_keys(value, path))
    elif isinstance(data, list):
        for i, item in enumerate(data):
            found.extend(find_dna_keys(item, f"{prefix}.{i}" if prefix else str(i)))
    return found
