"""What the rules tools read: a published report, a departmental system's submission, or a corpus case.

All three become a report, so the tools route exactly what the router would. A
submission gets a stand-in envelope (a fresh id, ``source_system`` ``rules-tool``,
received now); its source comes from ``--source`` or, for a corpus case, from the
case's ``source``. Errors name fields and reasons, never the values given.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from schemas import Source, make_report, parse_report, parse_submission
from services.common.ids import uuid7
from services.deadletter.letters import describe_error

TOOL_SOURCE_SYSTEM = "rules-tool"


class InputError(ValueError):
    """A file the tools cannot route; the message says why (without personal values)."""


def report_from_submission(source: Source | str, submission: Any, received_at: datetime | None = None) -> Any:
    """A report as the adapter would stamp it; raises ``pydantic.ValidationError``."""
    return make_report(
        parse_submission(source, submission),
        source=source,
        report_id=uuid7(),
        source_system=TOOL_SOURCE_SYSTEM,
        received_at=received_at or datetime.now(UTC),
    )


def as_report(data: Any, source: Source | str | None = None) -> Any:
    """A report from decoded JSON: a report, a corpus case (``submission`` + ``source``) or a submission."""
    if not isinstance(data, dict):
        raise InputError("not a JSON object")
    try:
        if "submission" in data and "source" in data:
            return report_from_submission(_source(data["source"]), data["submission"])
        if "report_id" in data:
            return parse_report(json.dumps(data))
        if source is None:
            raise InputError("a submission (no report_id): give its sector with --source")
        return report_from_submission(_source(source), data)
    except ValidationError as exc:
        raise InputError(describe_error(exc)[1]) from None


def _source(value: Any) -> Source:
    try:
        return Source(value)
    except ValueError:
        raise InputError(f"unknown source {value!r} (one of {', '.join(s.value for s in Source)})") from None


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON (line {exc.lineno})") from None
    except UnicodeDecodeError:
        raise InputError("not UTF-8 text") from None


def read_report(path: Path, source: Source | str | None = None) -> Any:
    """The report in a JSON file (see :func:`as_report`); raises :class:`InputError`."""
    return as_report(read_json(path), source)


def json_files(paths: list[Path]) -> list[Path]:
    """The JSON files among ``paths``, directories searched recursively, in a stable order."""
    out: list[Path] = []
    for path in paths:
        out.extend(sorted(path.rglob("*.json")) if path.is_dir() else [path])
    return out
