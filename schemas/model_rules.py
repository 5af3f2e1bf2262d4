"""The rules of the submission models that JSON Schema cannot state.

A document that a published ``*-submission.json`` schema accepts may still be refused by
the model (an adapter's ``422``) for one of these, and for nothing else: the parity test
(``tests/unit/schemas/test_schema_parity.py``) holds that. Each rule's ``reason`` is a
fragment of the refusal's message (the ``reason`` of the adapter's ``{field, reason}``),
so that a client, and the adapter's OpenAPI document (``x-cluebus-refusals``), can tell
these refusals from schema violations.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.enums import CHILD_CATEGORIES, NO_VICTIM_NEEDED, Source
from schemas.report import FUTURE_TOLERANCE, URI_SCHEMES


@dataclass(frozen=True, slots=True)
class ModelRule:
    reason: str  # a fragment of the refusal's message
    rule: str  # what the rule requires, for the reader of the document
    sources: frozenset[Source] = frozenset(Source)


MODEL_RULES: tuple[ModelRule, ...] = (
    ModelRule(
        "reported_at is in the future",
        f"reported_at is at most {FUTURE_TOLERANCE.seconds // 60} minutes ahead of the bus clock.",
    ),
    ModelRule(
        "is not an ISO 3166-1",
        "nationality is an ISO 3166-1 alpha-2 code (the schema lists them too).",
    ),
    ModelRule(
        "does not agree with age_band",
        "A subject's age_band, when given with age, is the band of that age.",
    ),
    ModelRule(
        "id_type is required when id_number is given",
        "A subject's id_number comes with its id_type.",
    ),
    ModelRule(
        "does not lie within location",
        "location.township_code starts with district_code, village_code with township_code.",
    ),
    ModelRule(
        "needs at least one subject with role 'victim'",
        "A subject has role 'victim', except in the categories "
        + ", ".join(sorted(c.value for c in NO_VICTIM_NEEDED))
        + ".",
    ),
    ModelRule(
        "concerns a child",
        "In the categories "
        + ", ".join(sorted(c.value for c in CHILD_CATEGORIES))
        + " a subject is a minor or of unknown age.",
    ),
    ModelRule(
        "'refused' applies to adult victims only",
        "consent 'refused' is not accepted when a victim is a minor (mandatory reporting).",
    ),
    ModelRule(
        "pupil_subject_index",
        "details.pupil_subject_index is an entry of subjects who is a minor or of unknown age.",
        frozenset({Source.school}),
    ),
    ModelRule(
        "uri must",
        f"An attachment uri has one of the schemes {', '.join(sorted(URI_SCHEMES))}; but for urn it names "
        "a host or bucket (scheme://host/path) and carries no credentials.",
    ),
    ModelRule(
        "attachments are references",
        "An attachment is a reference (no data: URI, no inline content).",
    ),
    ModelRule(
        "may only be collected by the police",
        "No DNA, genetic or biometric data: no such keys, and no such content in any text field "
        "(STR profiles, DNA comparisons and kinship results, sequences, templates, encoded binary "
        "records; schemas/dna.py). The plan reserves DNA to the police.",
    ),
    ModelRule(
        "shareable_summary must not identify anyone",
        "shareable_summary repeats no name, id number, phone or address given elsewhere in the report "
        "(it may go to departments that see no one's identity).",
    ),
)


def model_rules(source: Source | str) -> tuple[ModelRule, ...]:
    """The rules that apply to ``source``'s submissions."""
    source = Source(source)
    return tuple(rule for rule in MODEL_RULES if source in rule.sources)
