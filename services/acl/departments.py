"""Department ids of the routing rules, for principals, groups and topic names.

The ids (and any ``topic`` override of a department's referral topic) are
read straight from the ``[departments.<id>]`` tables with
``tomllib``, so that ACLs can be planned from any rules file, including the
small inline ones of the tests. When ``services.rules.load_rules`` (which
validates the whole file) is usable everywhere, :func:`department_ids` can
switch to ``load_rules(path).departments`` (ids and ``.topic``); nothing else
changes.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

# A department id becomes part of a principal (dept-<id>), a group and a topic name.
DEPARTMENT_ID = re.compile(r"^[a-z][a-z0-9_]{0,40}$")


class DepartmentsError(ValueError):
    """The rules file has no usable department list; the message says why."""


TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


def departments_from_toml(text: str, *, origin: str = "rules") -> dict[str, str | None]:
    """Department id -> its referral topic override (``topic = "..."``) or None, sorted by id."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DepartmentsError(f"{origin}: not valid TOML: {exc}") from None
    departments = data.get("departments")
    if not isinstance(departments, dict) or not departments:
        raise DepartmentsError(f"{origin}: no [departments.<id>] tables")
    bad = sorted(d for d in departments if not DEPARTMENT_ID.match(d))
    if bad:
        raise DepartmentsError(
            f"{origin}: department ids must match {DEPARTMENT_ID.pattern} "
            f"(they become principals and topic names): {', '.join(bad)}"
        )
    result: dict[str, str | None] = {}
    for dept in sorted(departments):
        table = departments[dept] if isinstance(departments[dept], dict) else {}
        topic = table.get("topic")
        if topic is not None and (not isinstance(topic, str) or not TOPIC_NAME.match(topic)):
            raise DepartmentsError(f"{origin}: departments.{dept}.topic is not a valid topic name")
        result[dept] = topic
    return result


def department_ids_from_toml(text: str, *, origin: str = "rules") -> list[str]:
    """The sorted department ids of a rules document."""
    return list(departments_from_toml(text, origin=origin))


def departments(rules_file: Path) -> dict[str, str | None]:
    """Department id -> referral topic override (None: ``<prefix>.referrals.<id>``)."""
    try:
        text = Path(rules_file).read_text(encoding="utf-8")
    except OSError as exc:
        raise DepartmentsError(f"cannot read rules file {rules_file}: {exc.strerror}") from None
    return departments_from_toml(text, origin=str(rules_file))


def department_ids(rules_file: Path) -> list[str]:
    """The sorted department ids of the rules file."""
    return list(departments(rules_file))
