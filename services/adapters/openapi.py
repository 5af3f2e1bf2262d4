"""The adapter's OpenAPI document: FastAPI's, plus what it cannot infer from the handlers.

The handlers read their bodies themselves (the size limit is counted while reading), so
FastAPI does not see a request body or a header parameter; they are declared here: the
sector's submission schema (``$defs`` lifted into ``components``), the batch media
types, the ``Idempotency-Key`` header, the form of a receipt id and bearer authentication
on every ``/v1/`` path.

A body valid against its schema may still be refused (422) by a rule JSON Schema cannot
state; each media type lists those under ``x-cluebus-refusals`` as ``{reason, rule}``
(``reason``: a fragment of the refusal's ``errors[].reason``): the submission models'
cross-field rules (``schemas/model_rules.py``) and a CSV upload's header rules
(``batch.py``). ``tests/integration/adapters/test_openapi_conformance.py`` holds the
document to the server with schemathesis.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from schemas import ENVELOPE_FIELDS, Source
from schemas.examples import load_examples
from schemas.model_rules import model_rules
from schemas.report import UUID7_PATTERN
from services.adapters.batch import CSV_REFUSALS
from services.adapters.intake import IDEMPOTENCY_KEY, IDEMPOTENCY_KEY_RULE

REFUSALS_KEY = "x-cluebus-refusals"
# A JSON-lines batch has a row when a line holds a byte other than ASCII whitespace
# (``batch.parse_ndjson`` strips lines with bytes.strip()); \s would also match Unicode spaces.
NOT_BLANK = r"[^\t\n\v\f\r ]"


def example_submission(source: Source) -> dict[str, Any]:
    """The first bundled example of ``source``, as its systems post it (no envelope)."""
    reports = sorted((k, v) for k, v in load_examples("v1").items() if v.get("source") == source.value)
    return {k: v for k, v in reports[0][1].items() if k not in ENVELOPE_FIELDS}


def example_csv(source: Source) -> str:
    """A one-row CSV the batch endpoint accepts: plain columns, objects and lists as JSON cells."""
    data = example_submission(source)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(list(data))
    writer.writerow([v if isinstance(v, str) else json.dumps(v, ensure_ascii=False) for v in data.values()])
    return out.getvalue()


def install_openapi(app: FastAPI, model: type[BaseModel], source: Source) -> None:
    """Replace ``app.openapi`` with a builder that adds the parts above (built once, cached)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components = doc.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
        components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        paths = doc.get("paths", {})
        submission = {"$ref": f"#/components/schemas/{model.__name__}"}
        single = paths["/v1/reports"]["post"]
        single["requestBody"] = {
            "required": True,
            "description": f"One {source.value} submission. Besides its schema, the rules under "
            f"`{REFUSALS_KEY}` apply (422 naming the field).",
            "content": {
                "application/json": {
                    "schema": submission,
                    "example": example_submission(source),
                    REFUSALS_KEY: [{"reason": r.reason, "rule": r.rule} for r in model_rules(source)],
                }
            },
        }
        single["parameters"] = [
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": IDEMPOTENCY_KEY.pattern},
                "description": f"Optional ({IDEMPOTENCY_KEY_RULE}); a retry with it gets the original receipt.",
            }
        ]
        paths["/v1/reports/batch"]["post"]["requestBody"] = {
            "required": True,
            "description": "Rows, each answered on its own in the 200 (a row that is not a valid "
            "submission is `rejected` there, with its problems); the whole upload is refused only "
            "when it has no rows or, for CSV, breaks a rule under `x-cluebus-refusals`.",
            "content": {
                "application/x-ndjson": {
                    "schema": {
                        "type": "string",
                        "pattern": NOT_BLANK,
                        "description": f"One {model.__name__} per line (`x-cluebus-row-schema`); "
                        "blank lines are skipped.",
                    },
                    "x-cluebus-row-schema": submission,
                    "example": json.dumps(example_submission(source), ensure_ascii=False) + "\n",
                },
                "text/csv": {
                    "schema": {
                        "type": "string",
                        "description": "A header row of dotted paths into the submission, then one "
                        f"{model.__name__} per row (`x-cluebus-row-schema`).",
                    },
                    "x-cluebus-row-schema": submission,
                    "example": example_csv(source),
                    REFUSALS_KEY: [{"reason": reason, "rule": rule} for reason, rule in CSV_REFUSALS],
                },
            },
        }
        receipt = paths["/v1/reports/{report_id}"]["get"]
        receipt["responses"].pop("422", None)  # FastAPI's; a path of text cannot be invalid here
        for parameter in receipt["parameters"]:
            if parameter["name"] == "report_id":
                parameter["schema"] = {"type": "string", "pattern": UUID7_PATTERN}
                parameter["description"] = "The report_id of a receipt (UUIDv7); any other id is 404."
        if "HTTPValidationError" not in json.dumps(paths):  # FastAPI's; errors.py answers ErrorOut
            schemas.pop("HTTPValidationError", None)
            schemas.pop("ValidationError", None)
        for path, ops in paths.items():
            if path.startswith("/v1/"):
                for op in ops.values():
                    op["security"] = [{"bearer": []}]
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
