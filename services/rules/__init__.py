"""Routing rules (``routing_rules.toml``): departments, clocks, escalation and the routing tree.

Provisional: only the department ids are read here until the validated model lands.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Rules:
    departments: dict[str, dict]


def load_rules(path: Path | str) -> Rules:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"rules file {path} not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: {exc}") from None
    departments = data.get("departments")
    if not isinstance(departments, dict) or not departments:
        raise ValueError(f"{path}: no [departments.<id>] tables")
    return Rules(departments=departments)
