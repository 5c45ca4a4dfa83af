"""MLflow's scoring protocol in ``/openapi.json``: ``/invocations`` (its four JSON shapes with
the model's columns, CSV, ``params``), ``/ping``, ``/version``. A ``ModelInfo`` in, path items
out."""

from __future__ import annotations

from winserve.model_info import ModelInfo
from winserve.protocols import mlflow
from winserve.web.openapi import bodies
from winserve.web.openapi.common import ANY_OBJECT, JSON, MLFLOW_ERROR, Schema, error, get, ok

PARAMS: Schema = {
    "type": "object",
    "properties": {
        "predict_method": {"enum": list(mlflow.PREDICT_METHODS)},
        # winserve's own (issue 25): taken out before params are read for the model
        mlflow.EXPLAIN: {
            "type": "boolean",
            "description": "winserve's extension: also return each row's explanation beside "
            "the predictions ('explanations', as /predict?explain=true; the query "
            "?explain=true does the same, also for a CSV body); 409 when the model has no "
            "reference sample. Never passed to the model.",
        },
    },
}


def paths(info: ModelInfo | None) -> Schema:
    """``/invocations``, ``/ping`` and ``/version`` for the model ``info``."""
    body = {
        "oneOf": [
            {
                "type": "object",
                "properties": {key: schema, "params": PARAMS},
                "required": [key],
                "additionalProperties": False,
            }
            for key, schema in (
                ("dataframe_split", bodies.split(info)),
                (
                    "dataframe_records",
                    {"type": "array", "items": bodies.row_object(info), "minItems": 1},
                ),
                ("instances", {"type": "array", "items": bodies.row_list(info), "minItems": 1}),
                ("inputs", {"type": "array", "items": bodies.row_list(info), "minItems": 1}),
            )
        ],
        "description": "exactly one of "
        + ", ".join(mlflow.INPUT_KEYS)
        + "; params.predict_method ("
        + " or ".join(mlflow.PREDICT_METHODS)
        + ") is applied as MLflow applies it: for an MLflow folder whose signature's params "
        "schema declares it",
    }
    return {
        "/invocations": {
            "post": {
                "summary": "Predict (MLflow scoring protocol)",
                "tags": ["MLflow"],
                "requestBody": {
                    "required": True,
                    "content": {
                        JSON: {"schema": body},
                        "text/csv": {"schema": {"type": "string"}},
                    },
                },
                "responses": {"200": ok(bodies.PREDICTIONS), "default": error(MLFLOW_ERROR)},
            }
        },
        "/ping": get("200 once the model is serving", ok(ANY_OBJECT), MLFLOW_ERROR, "MLflow"),
        "/version": get(
            "winserve version", ok({"type": "string"}, media="text/plain"), MLFLOW_ERROR, "MLflow"
        ),
    }
