"""The Open Inference Protocol v2 in ``/openapi.json``: ``/v2``, its health, each model's
metadata, readiness and ``infer`` (tensors named after the model's columns, any version being
served) and the repository's index, load and unload. A ``ModelInfo``, the models' names and the
versions served in, path items out."""

from __future__ import annotations

from winserve.model_info import ModelInfo
from winserve.protocols import oip
from winserve.web.openapi.common import (
    ANY_OBJECT,
    JSON,
    NATIVE_ERROR,
    OIP_ERROR,
    Schema,
    error,
    get,
    ok,
)

TAG = "Open Inference Protocol v2"
PARAMETERS: Schema = {  # issue 25
    "type": "object",
    "properties": {
        "explain": {
            "type": "boolean",
            "description": "winserve's extension: also return the output 'explanations', "
            "FP64 [rows, inputs + 1]: each input's Shapley value in the order of the model "
            "metadata's inputs, then the baseline (a row adds up to the number explained: the "
            "predicted class's probability, or the value); its parameters name the columns "
            "('columns', a JSON list) and what is explained ('explained'). Asking for the "
            "output 'explanations' by name does the same. 409 when the model has no reference "
            "sample.",
        }
    },
}


def _tensor_input(info: ModelInfo | None) -> Schema:
    names = info.feature_names if info is not None and info.feature_names_known else []
    name: Schema = {"type": "string"}
    if names:
        name["description"] = "input-0 for one 2-D tensor, or a column name: " + ", ".join(names)
    return {
        "type": "object",
        "properties": {
            "name": name,
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
            "datatype": {"type": "string", "enum": list(oip.DATATYPES)},
            "parameters": ANY_OBJECT,
            "data": {"type": "array"},
        },
        "required": ["name", "shape", "datatype", "data"],
    }


def paths(info: ModelInfo | None, names: list[str], versions: list[str] | None) -> Schema:
    """The ``/v2`` routes; ``names``: the models served (the ``model_name`` a route takes),
    ``versions``: those served when the document was made (examples of ``model_version``)."""
    name_schema: Schema = {"enum": names} if names else {"type": "string"}
    model_name = {"name": "model_name", "in": "path", "required": True, "schema": name_schema}
    # any version being served: "1" at first, 2, 3, … as the file is reloaded, and the one
    # before while it drains (issue 23: this said only "1", and a reloaded model answers at
    # /versions/2); the versions served when the document was made are its examples
    version_schema: Schema = {"type": "string"}
    if versions:
        version_schema["examples"] = versions
    model_version = {
        "name": "model_version",
        "in": "path",
        "required": True,
        "description": "a version of the model being served (GET /v2/models/{model_name} "
        "lists them)",
        "schema": version_schema,
    }
    infer_body = {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "parameters": PARAMETERS,
            "inputs": {"type": "array", "items": _tensor_input(info), "minItems": 1},
            "outputs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "name": {
                            "type": "string",
                            "enum": [*(info.outputs if info else ["predict"]), oip.EXPLANATIONS],
                        }
                    },
                    "required": ["name"],
                },
            },
        },
        "required": ["inputs"],
    }
    infer = {
        "summary": "Predict (Open Inference Protocol v2)",
        "tags": [TAG],
        "requestBody": {"required": True, "content": {JSON: {"schema": infer_body}}},
        "responses": {"200": ok(ANY_OBJECT), "default": error(OIP_ERROR)},
    }
    return {
        "/v2": get("Server metadata", ok(ANY_OBJECT), OIP_ERROR, TAG),
        "/v2/health/live": get("Server live", ok(ANY_OBJECT), OIP_ERROR, TAG),
        "/v2/health/ready": get("Server ready", ok(ANY_OBJECT), OIP_ERROR, TAG),
        "/v2/models/{model_name}": get(
            "Model metadata", ok(ANY_OBJECT), OIP_ERROR, TAG, parameters=[model_name]
        ),
        "/v2/models/{model_name}/ready": get(
            "Model ready", ok(ANY_OBJECT), OIP_ERROR, TAG, parameters=[model_name]
        ),
        "/v2/models/{model_name}/versions/{model_version}": get(
            "Model metadata",
            ok(ANY_OBJECT),
            OIP_ERROR,
            TAG,
            parameters=[model_name, model_version],
        ),
        "/v2/models/{model_name}/versions/{model_version}/ready": get(
            "Model ready",
            ok(ANY_OBJECT),
            OIP_ERROR,
            TAG,
            parameters=[model_name, model_version],
        ),
        "/v2/models/{model_name}/infer": {"post": {**infer, "parameters": [model_name]}},
        "/v2/models/{model_name}/versions/{model_version}/infer": {
            "post": {**infer, "parameters": [model_name, model_version]}
        },
        "/v2/repository/index": {
            "post": {
                "summary": "The models: name, version, state (and why, if not ready)",
                "tags": [TAG],
                "responses": {
                    "200": ok({"type": "array", "items": ANY_OBJECT}),
                    "default": error(NATIVE_ERROR),
                },
            }
        },
        **{
            f"/v2/repository/models/{{model_name}}/{action}": {
                "post": {
                    "summary": summary,
                    "tags": [TAG],
                    "parameters": [{**model_name, "schema": {"type": "string"}}],
                    "responses": {"200": ok(ANY_OBJECT), "default": error(NATIVE_ERROR)},
                }
            }
            for action, summary in (
                ("load", "Load (or reload) a model from its file now"),
                ("unload", "Stop serving a model"),
            )
        },
    }
