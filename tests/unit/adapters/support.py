"""Shared helpers of the adapter tests (unit and integration)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from schemas import Source
from schemas.examples import load_examples

ENVELOPE = ("schema_version", "report_id", "source", "source_system", "received_at")


def token_for(source: Source | str, n: int = 1) -> str:
    return f"test-{Source(source).value}-token-{n}-0123456789"


def system_for(source: Source | str, n: int = 1) -> str:
    return f"{Source(source).value}-sys-{n}"


def write_tokens(path: Path) -> Path:
    """Two systems per source, tokens from :func:`token_for`."""
    lines = []
    for source in Source:
        for n in (1, 2):
            digest = hashlib.sha256(token_for(source, n).encode()).hexdigest()
            lines += [
                f"[systems.{system_for(source, n)}]",
                f'source = "{source.value}"',
                f'token_sha256 = "{digest}"',
                "",
            ]
    path.write_text("\n".join(lines))
    return path


def submissions(source: Source | str) -> list[dict[str, Any]]:
    """The v1 examples of a source as submissions (no envelope)."""
    out = []
    for data in load_examples("v1").values():
        if data["source"] == Source(source).value:
            out.append({k: v for k, v in data.items() if k not in ENVELOPE})
    return out


def submission(source: Source | str, ref: str | None = None, index: int = 0) -> dict[str, Any]:
    data = json.loads(json.dumps(submissions(source)[index]))
    if ref is not None:
        data["source_ref"] = ref
    return data


def auth(source: Source | str, n: int = 1) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for(source, n)}"}
