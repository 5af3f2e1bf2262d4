"""Scalar types of the report models that accept exactly what the published JSON Schema accepts.

Other systems validate against ``schemas/json/*.json``, so a model must not take what its
schema refuses (``tests/unit/schemas/test_schema_parity.py`` holds them together):

* ``Flag``: a JSON boolean only (not ``0``, ``"yes"`` or ``"true"``).
* ``Count``: a JSON integer only (not ``"12"`` or ``true``); ``12.0`` is the integer 12 in
  JSON Schema and here.
* ``Timestamp``: an RFC 3339 date-time *string* with its offset (``2026-11-20T09:31:00+08:00``;
  ``T`` and ``Z`` upper case, at most microseconds); not a number of seconds, not a
  space instead of ``T``. The schema states the same as ``format: date-time`` and a pattern.
* ``Line`` and ``FreeText`` (and their ``Optional...`` forms): text with no control
  characters (``FreeText`` allows tab, line feed and carriage return), not only white space,
  kept exactly as sent (never trimmed: a trimmed value would make the model accept what the
  schema refuses at a length limit);
  both are screened for DNA-class content (``schemas/dna.py``), the one rule here the
  JSON Schema cannot state.

Why not ``strict=True``: the submissions' ``mode="wrap"`` validators (the DNA-key rule)
make pydantic hand decoded JSON to the model as Python objects, and Python-mode strictness
then refuses every date-time and enum *string*.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, Field, Strict, StrictBool

from schemas.dna import screen_text

_C0_C1 = r"\u0000-\u001f\u007f-\u009f"
_C0_C1_BUT_TAB_LF_CR = r"\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f"
# Empty, or at least one visible character; never a control character.
LINE_PATTERN = rf"^(?:[^{_C0_C1}]*[^\s{_C0_C1}][^{_C0_C1}]*)?$"
FREE_TEXT_PATTERN = rf"^(?:[^{_C0_C1_BUT_TAB_LF_CR}]*[^\s{_C0_C1}][^{_C0_C1_BUT_TAB_LF_CR}]*)?$"
_YEAR = r"(?:000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})"
RFC3339_PATTERN = (
    rf"^{_YEAR}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
    r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?"
    r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])$"
)
_RFC3339 = re.compile(RFC3339_PATTERN)
TIMESTAMP_RULE = "must be an RFC 3339 date-time string with its timezone offset, e.g. 2026-11-20T09:31:00+08:00"


def _integral(value: Any) -> Any:
    """``12.0`` is the JSON integer 12; every other non-integer is left for the strict check."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _rfc3339(value: Any) -> Any:
    if isinstance(value, str):
        if not _RFC3339.match(value):
            raise ValueError(TIMESTAMP_RULE)
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(TIMESTAMP_RULE)  # a Unix time would be taken as seconds since 1970
    return value  # a datetime (Python callers) or a wrong type: the datetime check answers


_CONTROL = re.compile(f"[{_C0_C1}]")
_CONTROL_BUT_TAB_LF_CR = re.compile(f"[{_C0_C1_BUT_TAB_LF_CR}]")


def _text(value: str, controls: re.Pattern[str]) -> str:
    # The same rule as LINE_PATTERN / FREE_TEXT_PATTERN (published in the schema), checked
    # here so that the refusal says it in words instead of quoting the pattern.
    if controls.search(value):
        raise ValueError("must not contain control characters (U+0000-U+001F, U+007F-U+009F)")
    if value and value.isspace():
        raise ValueError("String should have at least 1 character that is not white space")
    return screen_text(value)


def _line(value: str | None) -> str | None:
    return None if value is None else _text(value, _CONTROL)


def _free_text(value: str | None) -> str | None:
    return None if value is None else _text(value, _CONTROL_BUT_TAB_LF_CR)


def is_free_text(field: Any) -> bool:
    """Whether a pydantic ``FieldInfo`` is ``FreeText`` or ``OptionalFreeText`` (not a ``Line``)."""
    return any(getattr(m, "func", None) is _free_text for m in field.metadata)


# The optional forms put the validator around the whole ``X | None``: inside the union,
# pydantic would apply a field's max_length/ge/le after the validator (a wrong message)
# and publish ``ge``/``le`` instead of ``minimum``/``maximum`` in the JSON Schema.
_Line = Annotated[str, Field(json_schema_extra={"pattern": LINE_PATTERN})]
_FreeText = Annotated[str, Field(json_schema_extra={"pattern": FREE_TEXT_PATTERN})]
Flag = StrictBool
Count = Annotated[int, BeforeValidator(_integral), Strict()]
OptionalCount = Annotated[Annotated[int, Strict()] | None, BeforeValidator(_integral)]
Timestamp = Annotated[
    AwareDatetime,
    BeforeValidator(_rfc3339),
    Field(json_schema_extra={"pattern": RFC3339_PATTERN}),
]
Line = Annotated[_Line, AfterValidator(_line)]
OptionalLine = Annotated[_Line | None, AfterValidator(_line)]
FreeText = Annotated[_FreeText, AfterValidator(_free_text)]
OptionalFreeText = Annotated[_FreeText | None, AfterValidator(_free_text)]
