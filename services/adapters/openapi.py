"""The adapter's OpenAPI document: FastAPI's, plus what it cannot infer from the handlers.

The handlers read their bodies themselves (the size limit is counted while reading), so
FastAPI does not see a request body or a header parameter; they are declared here: the
sector's submission schema (``$defs`` lifted into ``components``), the batch media
types, the ``Idempotency-Key`` header and bearer authentication on every ``/v1/`` path.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel


def install_openapi(app: FastAPI, model: type[BaseModel]) -> None:
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
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}},
        }
        single["parameters"] = [
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "maxLength": 128},
                "description": "Optional; a retry with the same key gets the original receipt.",
            }
        ]
        paths["/v1/reports/batch"]["post"]["requestBody"] = {
            "required": True,
            "content": {
                "application/x-ndjson": {
                    "schema": {"type": "string"},
                    "example": "{...one submission...}\n{...another...}\n",
                },
                "text/csv": {
                    "schema": {"type": "string"},
                    "example": "source_ref,reported_at,category,...\n",
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
