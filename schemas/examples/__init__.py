"""Example events of each released schema version, kept forever for compatibility tests.

``v1/reports/<source>-<category>.json``: one report per file, every source and
every category covered; ``v1/events/<name>.json``: one of each bus event. All
people, places and numbers in them are fictional (names start with 示例, "example").
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
KINDS = ("reports", "events")


def load_examples(version: str = "v1", kind: str = "reports") -> dict[str, dict[str, Any]]:
    """File stem -> JSON object of one version's examples (``kind``: ``reports`` or ``events``).

    Raises ``FileNotFoundError`` for a version or kind that does not exist, so that a
    typo cannot make a test run over no examples at all.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    folder = HERE / version / kind
    if not folder.is_dir():
        raise FileNotFoundError(f"no examples for schema version {version!r} ({folder})")
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.json"))}
