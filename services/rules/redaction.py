"""Need-to-know copies of a report, one per department.

Each department's allowed fields (``fields`` in ``routing_rules.toml``) are
expanded once at load into a *keep tree* per source schema; a referral's copy
holds only the branches of that tree. Paths address JSON keys; lists are
transparent (``subjects.age_band`` keeps the age band of every subject).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import cache, lru_cache
from typing import Any

from schemas import REPORT_MODELS, Sensitivity, field_paths, sensitive_fields
from schemas.enums import Source

KeepTree = dict[str, Any]  # value True = keep the whole branch, dict = keep some children

# Names that would carry DNA or biometric data, reserved to the police by law.
DNA_PATTERN = re.compile(r"dna|genetic|biometric|fingerprint|iris|face_?print|voiceprint", re.I)


@cache
def schema_paths(source: Source) -> frozenset[str]:
    return frozenset(field_paths(REPORT_MODELS[source]))


@cache
def schema_leaves(source: Source) -> frozenset[str]:
    """Paths of a source schema that have no children."""
    paths = schema_paths(source)
    return frozenset(p for p in paths if not any(q.startswith(p + ".") for q in paths))


@lru_cache(maxsize=1)
def all_paths() -> frozenset[str]:
    return frozenset().union(*(schema_paths(s) for s in Source))


@lru_cache(maxsize=1)
def sensitivity_of() -> Mapping[str, Sensitivity]:
    merged: dict[str, Sensitivity] = {}
    for source in Source:
        merged.update(sensitive_fields(REPORT_MODELS[source]))
    return merged


def expand(spec: Iterable[str], field_sets: Mapping[str, Iterable[str]], _seen: tuple[str, ...] = ()) -> set[str]:
    """Turn ``@set`` names, ``prefix.*`` and ``*`` into concrete schema paths.

    Raises ``ValueError`` naming the first unknown path or set.
    """
    known = all_paths()
    out: set[str] = set()
    for item in spec:
        if item.startswith("@"):
            name = item[1:]
            if name not in field_sets:
                raise ValueError(f"unknown field set '{item}'")
            if name in _seen:
                raise ValueError(f"field set '{item}' includes itself")
            out |= expand(field_sets[name], field_sets, (*_seen, name))
        elif item == "*":
            out |= known
        elif item.endswith(".*"):
            prefix = item[:-2]
            if prefix not in known:
                raise ValueError(f"unknown field '{prefix}' in '{item}'")
            out |= {p for p in known if p == prefix or p.startswith(prefix + ".")}
        else:
            if item not in known:
                raise ValueError(f"unknown field '{item}'")
            out.add(item)
    return out


def _tree(paths: Iterable[str]) -> KeepTree:
    tree: KeepTree = {}
    # Shorter paths first, so that a kept parent swallows its children.
    for path in sorted(paths, key=lambda p: p.count(".")):
        node = tree
        parts = path.split(".")
        for i, part in enumerate(parts):
            if node.get(part) is True:
                break
            if i == len(parts) - 1:
                node[part] = True
            else:
                node = node.setdefault(part, {})
    return tree


def project(data: Any, tree: KeepTree | bool) -> Any:
    if tree is True:
        return data
    if isinstance(data, list):
        return [project(item, tree) for item in data]
    if isinstance(data, dict):
        return {key: project(data[key], sub) for key, sub in tree.items() if key in data}
    return data


def remove(data: Any, tree: KeepTree | bool) -> Any:
    """The complement of :func:`project`: drop the branches named by ``tree``."""
    if tree is True:
        return None
    if isinstance(data, list):
        return [remove(item, tree) for item in data]
    if isinstance(data, dict):
        out = {}
        for key, value in data.items():
            sub = tree.get(key)
            if sub is True:
                continue
            out[key] = remove(value, sub) if sub else value
        return out
    return data


def _whole_branches(tree: KeepTree, kept: set[str], leaves: frozenset[str], prefix: str = "") -> KeepTree:
    """``tree`` with every branch whose schema leaves are all kept replaced by ``True``.

    A validated report has no keys outside its schema, so such a branch is copied
    whole instead of being rebuilt leaf by leaf (the police copy is most of a report).
    """
    out: KeepTree = {}
    for key, sub in tree.items():
        path = f"{prefix}{key}"
        if sub is True:
            out[key] = True
            continue
        under = {leaf for leaf in leaves if leaf.startswith(path + ".")}
        out[key] = True if under and under <= kept else _whole_branches(sub, kept, leaves, path + ".")
    return out


class Projection:
    """What one department receives of reports from one source."""

    __slots__ = ("department", "source", "keep", "fields", "anonymised_keep", "anonymised_fields")

    def __init__(self, department: str, source: Source, allowed: set[str], anonymise: set[str]) -> None:
        # Work on leaves: a container path stands for all its leaves, so that removing
        # one leaf (anonymisation) cannot be undone by a kept parent.
        leaves = schema_leaves(source)
        in_schema = {leaf for leaf in leaves if any(leaf == p or leaf.startswith(p + ".") for p in allowed)}
        removed = {leaf for leaf in in_schema if any(leaf == a or leaf.startswith(a + ".") for a in anonymise)}
        self.department = department
        self.source = source
        self.keep = _whole_branches(_tree(in_schema), in_schema, leaves)
        self.fields = tuple(sorted(in_schema))
        self.anonymised_keep = _whole_branches(_tree(in_schema - removed), in_schema - removed, leaves)
        self.anonymised_fields = tuple(sorted(in_schema - removed))

    def apply(self, report_json: Mapping[str, Any], *, anonymise: bool) -> tuple[dict[str, Any], tuple[str, ...]]:
        """The department's copy and the field paths it was allowed (names only, for audit)."""
        if anonymise:
            return project(report_json, self.anonymised_keep), self.anonymised_fields
        return project(report_json, self.keep), self.fields


def forbidden_for_non_police(paths: Iterable[str]) -> list[str]:
    """Paths that only the police may see: biometric-class fields and DNA-like names."""
    classes = sensitivity_of()
    return sorted(p for p in paths if classes.get(p) == Sensitivity.biometric or DNA_PATTERN.search(p))
