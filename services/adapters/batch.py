"""Batch intake for legacy systems: JSON lines or CSV, each row answered on its own.

JSON lines (``application/x-ndjson``)
    One submission object per line, exactly as ``POST /v1/reports`` takes it.
    Blank lines are ignored; ``row`` in the answer is the line number (from 1).

CSV (``text/csv``, UTF-8, optional BOM, header row required)
    Each column header is a dotted path into the sector's submission, and each
    record (``row`` from 1, the header not counted) becomes one submission:

    ============================  ===========================================
    ``source_ref``, ``reported_at``, ``category``, ``urgency``, ``consent``,
    ``narrative``                 the field itself
    ``location.district_code``, ``location.address``, ... ``reporter.name``,
    ``reporter.role``, ``reporter.organisation``, ``reporter.phone``
                                  a field of a nested object
    ``subjects.0.role``, ``subjects.0.age``, ``subjects.1.name``, ...
                                  a field of the n-th subject (from 0)
    ``details.school_name``, ...  a field of the sector's ``details``
    ``indicators``                values separated by ``|`` (or a JSON array)
    ``subjects``, ``attachments``, ``details``, ``location``, ``reporter``
                                  the whole object or list as JSON, instead of
                                  the dotted columns
    ============================  ===========================================

    Empty cells are left out (the field's default applies). Whole numbers are
    read as numbers where the schema wants a number, ``true``/``false`` (any case)
    as booleans where it wants a boolean; any other cell stays text, which such a
    field refuses (the models do not coerce, ``schemas/scalars.py``). An unknown column
    rejects the whole upload (every row would fail).
"""

from __future__ import annotations

import csv
import io
import json
import re
import types
import typing
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic_core import from_json

MAX_INDEX = 99  # highest list index a column may name (subjects allow 50)
_INT = re.compile(r"^[+-]?[0-9]{1,12}$")
_BOOLEANS = {"true": True, "false": False}

NDJSON_TYPES = frozenset(
    {
        "application/x-ndjson",
        "application/jsonl",
        "application/x-jsonlines",
        "application/json-lines",
        "application/jsonlines",
    }
)
CSV_TYPES = frozenset({"text/csv", "application/csv"})

# The reasons ({field, reason}) a whole upload is refused with (422). A schema of a string
# cannot state them, so the OpenAPI document lists them (``x-cluebus-refusals``) with the rule.
NO_ROWS = "no rows"
NOT_UTF8 = "not UTF-8 text"
NUL = "NUL character"
NO_HEADER = "missing header row"
UNKNOWN_COLUMN = "unknown column (see the CSV mapping)"
REPEATED_COLUMN = "column appears twice"
MALFORMED = "malformed CSV"
CSV_REFUSALS: tuple[tuple[str, str], ...] = (
    (NOT_UTF8, "The upload is UTF-8 text (a byte order mark is allowed)."),
    (NUL, "The upload holds no NUL character."),
    (NO_HEADER, "The first row names the columns."),
    (UNKNOWN_COLUMN, "Every column header is a dotted path of the submission (the CSV mapping above)."),
    (REPEATED_COLUMN, "No column header appears twice."),
    (
        MALFORMED,
        "Quoted cells as in RFC 4180: a quote inside a quoted cell is doubled, and the closing quote "
        "is followed by a comma or the end of the line.",
    ),
    (NO_ROWS, "At least one row after the header is not blank."),
)


@dataclass(frozen=True, slots=True)
class Row:
    """One row of a batch: its number and JSON bytes, or the reasons it cannot be read."""

    row: int
    body: bytes | None
    errors: list[dict[str, str]] | None = None


class BatchError(ValueError):
    """The upload as a whole cannot be read; ``errors`` say why."""

    def __init__(self, message: str, errors: list[dict[str, str]]) -> None:
        super().__init__(message)
        self.errors = errors


# -- JSON lines ----------------------------------------------------------------------------
def parse_ndjson(body: bytes, max_rows: int) -> list[Row]:
    rows: list[Row] = []
    for number, line in enumerate(body.split(b"\n"), start=1):
        line = line.strip()
        if not line:
            continue
        rows.append(Row(number, line))
        if len(rows) > max_rows:
            raise TooManyRows(max_rows)
    return rows


class TooManyRows(ValueError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"more than {limit} rows in one batch; split the upload")
        self.limit = limit


# -- CSV -------------------------------------------------------------------------------------
def _unwrap(annotation: Any) -> list[Any]:
    """The alternatives of an annotation, without None, Optional and Annotated."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        out: list[Any] = []
        for arg in typing.get_args(annotation):
            out.extend(_unwrap(arg))
        return out
    if annotation is type(None):
        return []
    return [annotation]


def _item_type(annotation: Any) -> Any | None:
    """The item type of a tuple[X, ...] / list[X] annotation, else None."""
    origin = typing.get_origin(annotation)
    if origin in (tuple, list):
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        return args[0] if args else Any
    return None


@dataclass(frozen=True)
class Column:
    name: str
    parts: tuple[str | int, ...]
    kind: str  # "int", "bool", "list", "json", "text"


def _leaf_kind(alternatives: list[Any]) -> str:
    for alt in alternatives:
        if _item_type(alt) is not None:
            item_alts = _unwrap(_item_type(alt))
            if any(isinstance(a, type) and issubclass(a, BaseModel) for a in item_alts):
                return "json"
            return "list"
        if isinstance(alt, type) and issubclass(alt, BaseModel):
            return "json"
        if typing.get_origin(alt) is dict or alt is dict:
            return "json"
    if any(alt is int for alt in alternatives) and not any(alt is str for alt in alternatives):
        return "int"
    if alternatives and all(alt is bool for alt in alternatives):
        return "bool"
    return "text"


def resolve_column(model: type[BaseModel], name: str) -> Column | None:
    """The column's path and how to read its cells, or None if the model has no such field."""
    parts: list[str | int] = []
    alternatives: list[Any] = [model]
    for raw in name.split("."):
        nxt: list[Any] = []
        for alt in alternatives:
            if isinstance(alt, type) and issubclass(alt, BaseModel):
                field = alt.model_fields.get(raw)
                if field is not None:
                    nxt = _unwrap(field.annotation)
                    parts.append(raw)
                    break
            item = _item_type(alt)
            if item is not None and raw.isdigit() and int(raw) <= MAX_INDEX:
                nxt = _unwrap(item)
                parts.append(int(raw))
                break
        if not nxt:
            return None
        alternatives = nxt
    return Column(name, tuple(parts), _leaf_kind(alternatives))


def _cell(column: Column, text: str) -> Any:
    if column.kind == "int":
        return int(text) if _INT.match(text) else text
    if column.kind == "bool":
        return _BOOLEANS.get(text.lower(), text)  # anything else stays text: the model refuses it
    if column.kind == "list":
        if text.startswith("["):
            return from_json(text)
        return [item.strip() for item in text.split("|") if item.strip()]
    if column.kind == "json":
        return from_json(text)
    return text


def _place(tree: dict[Any, Any], parts: tuple[str | int, ...], value: Any) -> bool:
    """Put ``value`` at ``parts``; False if a cell already filled that place or a parent of it."""
    node = tree
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            return False
        node = child
    if parts[-1] in node:
        return False
    node[parts[-1]] = value
    return True


def _listify(node: Any) -> Any:
    """Dicts keyed by list indexes (ints) become lists; gaps become empty objects."""
    if not isinstance(node, dict):
        return node
    out = {k: _listify(v) for k, v in node.items()}
    if out and all(isinstance(k, int) for k in out):
        return [out.get(i, {}) for i in range(max(out) + 1)]
    return out


def parse_csv(body: bytes, model: type[BaseModel], max_rows: int) -> list[Row]:
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BatchError("the CSV is not UTF-8 text", [{"field": "body", "reason": NOT_UTF8}]) from None
    if "\x00" in text:
        raise BatchError("the CSV contains NUL characters", [{"field": "body", "reason": NUL}])
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if header is None or not any(h.strip() for h in header):
            raise BatchError("the CSV has no header row", [{"field": "header", "reason": NO_HEADER}])
        names = [h.strip() for h in header]
        problems: list[dict[str, str]] = []
        columns: list[Column] = []
        for index, name in enumerate(names, start=1):
            column = resolve_column(model, name) if name else None
            if column is None:
                problems.append({"field": f"header.{index}", "reason": UNKNOWN_COLUMN})
            elif name in names[: index - 1]:
                problems.append({"field": f"header.{index}", "reason": REPEATED_COLUMN})
            columns.append(column)  # type: ignore[arg-type]
        if problems:
            raise BatchError("the CSV header has unknown or repeated columns", problems)
        rows: list[Row] = []
        for number, record in enumerate(reader, start=1):
            if not any(cell.strip() for cell in record):
                continue
            if len(rows) >= max_rows:
                raise TooManyRows(max_rows)
            rows.append(_csv_row(number, record, columns))
    except csv.Error as exc:
        line = getattr(reader, "line_num", 0)
        raise BatchError(
            "the CSV cannot be read",
            [{"field": f"line.{line}", "reason": f"{MALFORMED} ({exc})"}],
        ) from None
    return rows


def _csv_row(number: int, record: list[str], columns: list[Column]) -> Row:
    if len(record) > len(columns):
        return Row(number, None, [{"field": "row", "reason": "more cells than header columns"}])
    tree: dict[Any, Any] = {}
    errors: list[dict[str, str]] = []
    for column, raw in zip(columns, record, strict=False):
        cell = raw.strip()
        if not cell:
            continue
        try:
            value = _cell(column, cell)
        except ValueError:
            errors.append({"field": column.name, "reason": "not valid JSON"})
            continue
        if not _place(tree, column.parts, value):
            errors.append(
                {
                    "field": column.name,
                    "reason": "given twice (as a JSON column and as dotted columns)",
                }
            )
    if errors:
        return Row(number, None, errors)
    try:
        body = json.dumps(_listify(tree), ensure_ascii=False).encode("utf-8")
    except (ValueError, UnicodeEncodeError, RecursionError):
        return Row(
            number,
            None,
            [{"field": "row", "reason": "a cell holds text that is not valid Unicode"}],
        )
    return Row(number, body)
