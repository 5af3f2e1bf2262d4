"""Example events of each released schema version, kept forever for compatibility tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def load_examples(version: str = "v1", kind: str = "reports") -> dict[str, dict[str, Any]]:
    """Name -> JSON object of the examples of one version (``reports`` or ``events``)."""
    folder = HERE / version / kind
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.json"))}
