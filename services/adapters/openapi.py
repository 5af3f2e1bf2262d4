"""The adapter's OpenAPI document: FastAPI's, plus what it cannot infer from the handlers.

The handlers read their bodies themselves (the size limit is counted while reading), so
FastAPI does not see a request body or a header parameter; they are declared here: the
sector's submission schema (``$defs`` lifted into ``components``), the batch media
types, the ``Idempotency-Key`` header and bearer authentication on every ``/v1/`` path.
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
from services.adapters.intake import IDEMPOTENCY_KEY, IDEMPOTENCY_KEY_RULE


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
        single = paths["/v1/reports"]["post"]
        single["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"$ref": f"#/components/schemas/{model.__name__}"},
                    "example": example_submission(source),
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
            "content": {
                "application/x-ndjson": {
                    "schema": {"type": "string"},
                    "example": json.dumps(example_submission(source), ensure_ascii=False) + "\n",
                },
                "text/csv": {
                    "schema": {"type": "string"},
                    "example": example_csv(source),
                },
            },
        }
        for path, ops in paths.items():
            if path.startswith("/v1/"):
                for op in ops.values():
                    op["security"] = [{"bearer": []}]
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
