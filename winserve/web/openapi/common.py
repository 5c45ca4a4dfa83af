"""The building blocks every part of ``/openapi.json`` shares: an answer (``ok``), an error
answer in a protocol's own shape (``error`` with ``NATIVE_ERROR``, ``MLFLOW_ERROR`` or
``OIP_ERROR``) and a whole GET operation (``get``). Plain dicts in, plain dicts out."""

from __future__ import annotations

from typing import Any

JSON = "application/json"
Schema = dict[str, Any]

NATIVE_ERROR: Schema = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        }
    },
}
MLFLOW_ERROR: Schema = {
    "type": "object",
    "properties": {"error_code": {"type": "string"}, "message": {"type": "string"}},
}
OIP_ERROR: Schema = {"type": "object", "properties": {"error": {"type": "string"}}}
ANY_OBJECT: Schema = {"type": "object"}


def ok(schema: Schema, description: str = "OK", media: str = JSON) -> Schema:
    return {"description": description, "content": {media: {"schema": schema}}}


def error(shape: Schema, description: str = "A problem with the request or the model") -> Schema:
    return {"description": description, "content": {JSON: {"schema": shape}}}


def get(summary: str, answer: Schema, error_shape: Schema, tag: str, **extra: Any) -> Schema:
    return {
        "get": {
            "summary": summary,
            "tags": [tag],
            "responses": {"200": answer, "default": error(error_shape)},
            **extra,
        }
    }
