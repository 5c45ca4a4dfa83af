"""``GET /openapi.json``: an OpenAPI 3.1 description of every API endpoint, built for the model
being served (its column names and types appear in the request schemas)."""

from __future__ import annotations

import contextlib
from typing import Any
from urllib.parse import quote

from flask import Blueprint, current_app, jsonify, request
from flask.typing import ResponseReturnValue

from winserve import __version__
from winserve.errors import ModelUnavailable, NotFound
from winserve.model_info import ModelInfo
from winserve.protocols import mlflow, oip
from winserve.tools import value_schema as _value  # one schema per column: MCP's too

bp = Blueprint("openapi", __name__)

JSON = "application/json"
Schema = dict[str, Any]


def _texts(info: ModelInfo | None) -> list[Schema]:
    """A model with one input also takes plain values, one per row (a list of texts)."""
    if info is None or info.n_features != 1:
        return []
    return [
        {
            "type": "array",
            "items": _value(info.features[0]),
            "minItems": 1,
            "description": "one value per row" + (" (a text)" if info.text_input else ""),
        }
    ]


def _row_object(info: ModelInfo | None) -> Schema:
    if info is None or not info.features:
        return {"type": "object", "additionalProperties": True}
    return {
        "type": "object",
        "properties": {f.name: _value(f) for f in info.features},
        "required": info.feature_names,
        "additionalProperties": False,
    }


def _row_list(info: ModelInfo | None) -> Schema:
    schema: Schema = {"type": "array", "description": "values in the model's column order"}
    if info is not None and info.features:
        schema["prefixItems"] = [_value(f) for f in info.features]
        schema["minItems"] = schema["maxItems"] = info.n_features
    return schema


def _tensors(info: ModelInfo | None) -> list[Schema]:
    """A model that takes tensors or images also takes them batched per input (issue 24)."""
    if info is None or not info.tensor_inputs:
        return []
    batches = {f.name: {"type": "array", "items": _value(f), "minItems": 1} for f in info.features}
    return [
        {
            "type": "object",
            "properties": {
                "inputs": {
                    "type": "object",
                    "properties": batches,
                    "required": info.feature_names,
                    "additionalProperties": False,
                }
            },
            "required": ["inputs"],
            "additionalProperties": False,
            "description": "tensors (or images) batched per input: one entry per row",
        }
    ]


def _uploads(info: ModelInfo | None) -> Schema:
    """Image files uploaded as multipart/form-data, a field per image input (issue 24)."""
    names = [f.name for f in info.features if f.kind == "image"] if info is not None else []
    if not names:
        return {}
    files = {"type": "array", "items": {"type": "string", "format": "binary"}}
    schema = {"type": "object", "properties": dict.fromkeys(names, files), "required": names}
    return {"multipart/form-data": {"schema": schema}}


def _split(info: ModelInfo | None) -> Schema:
    columns: Schema = {"type": "array", "items": {"type": "string"}, "minItems": 1}
    if info is not None and info.features:
        columns = {"type": "array", "const": info.feature_names}
    return {
        "type": "object",
        "properties": {
            "columns": columns,
            "data": {"type": "array", "items": _row_list(info), "minItems": 1},
        },
        "required": ["columns", "data"],
        "additionalProperties": False,
    }


def _error(shape: Schema, description: str = "A problem with the request or the model") -> Schema:
    return {"description": description, "content": {JSON: {"schema": shape}}}


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
EXPLANATIONS: Schema = {  # issue 25
    "type": "array",
    "description": "with ?explain=true, one per row: baseline + sum(contributions) = output",
    "items": {
        "type": "object",
        "properties": {
            "baseline": {"type": "number"},
            "output": {"type": "number"},
            "contributions": {"type": "object", "additionalProperties": {"type": "number"}},
            "method": {"enum": ["exact", "permutation"]},
            "background_rows": {"type": "integer"},
            "explained": {"enum": ["probability", "prediction"]},
            "class": {},
        },
    },
}
WHATIF: Schema = {
    "type": "object",
    "properties": {
        "curves": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "column": {"type": "string"},
                    "kind": {"type": "string"},
                    "values": {"type": "array"},
                    "predictions": {"type": "array"},
                    "probabilities": {"type": "array"},
                },
            },
        },
        "classes": {"type": "array"},
    },
}
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
JSONRPC: Schema = {
    "type": "object",
    "properties": {"jsonrpc": {"const": "2.0"}, "id": {"type": ["string", "integer", "null"]}},
    "required": ["jsonrpc"],
}
MLFLOW_PARAMS: Schema = {
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
OIP_PARAMETERS: Schema = {  # issue 25
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


def _ok(schema: Schema, description: str = "OK", media: str = JSON) -> Schema:
    return {"description": description, "content": {media: {"schema": schema}}}


def _period(since_default: str) -> list[dict[str, Any]]:
    """The ``since`` and ``until`` query parameters of a period (/log.csv, /monitor.json)."""
    return [
        {
            "name": moment,
            "in": "query",
            "required": False,
            "description": f"ISO 8601 date or time, UTC unless an offset is given ({hint})",
            "schema": {"type": "string"},
        }
        for moment, hint in (("since", f"default: {since_default}"), ("until", "default: now"))
    ]


def _get(summary: str, ok: Schema, error: Schema, tag: str, **extra: Any) -> Schema:
    return {
        "get": {
            "summary": summary,
            "tags": [tag],
            "responses": {"200": ok, "default": _error(error)},
            **extra,
        }
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


JOB_LINKS: Schema = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "status_url": {"type": "string"},
        "result_url": {"type": "string"},
        "page_url": {"type": "string"},
    },
    "required": ["id", "status_url", "result_url"],
}
JOB_STATUS: Schema = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "state": {"enum": ["queued", "running", "done", "failed", "choose"]},
        "total_rows": {"type": "integer"},
        "done_rows": {"type": "integer"},
        "scored_rows": {"type": "integer"},
        "percent": {"type": "integer"},
        "problem_count": {"type": "integer"},
        "error": {"type": "string"},
        "request_id": {"type": "string"},
        "sheets": {
            "type": "array",
            "items": {"type": "string"},
            "description": "in state 'choose': the workbook's sheets, one to be named",
        },
        "model_version": {},
    },
}
JOB_ID: Schema = {
    "name": "job_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
}


def _jobs() -> Schema:
    """Scoring a whole file in the background (issue 27): the page's form, also for programs,
    which carry ``Authorization: Bearer`` or ``X-Winserve-Client`` instead of the form's value
    (web/csrf.py ``program``)."""
    upload = {
        "type": "object",
        "properties": {
            "file": {"type": "string", "format": "binary", "description": "a CSV file or .xlsx"},
            "rows": {"type": "string", "description": "CSV text with a header line (or file)"},
            "sheet": {"type": "string", "description": "a workbook's sheet to score, by name"},
            "explain": {
                "type": "string",
                "enum": ["true", "false"],
                "description": "true: each row's 3 main reasons as columns 'reason 1'..'reason 3' "
                "(a model with a reference sample; 409 without one; files of at most 1,000 rows)",
            },
        },
    }
    results = [("csv", "text/csv"), ("xlsx", XLSX)]
    return {
        "/jobs": {
            "post": {
                "summary": "Score a CSV file or an Excel workbook in the background",
                "description": "For programs: send 'Authorization: Bearer <token>' when a token "
                "is set, else the header 'X-Winserve-Client: 1' (an HTML form cannot send "
                "either, so the page's CSRF value is not needed). Answers 202 with the job's "
                "URLs and a Location header (its status). Each scored row gets a 'request id' "
                "column: this request's X-Request-Id and the row's number.",
                "tags": ["jobs"],
                "requestBody": {
                    "required": True,
                    "content": {"multipart/form-data": {"schema": upload}},
                },
                "responses": {
                    "202": _ok(JOB_LINKS, "Accepted: the job is queued"),
                    "default": _error(NATIVE_ERROR),
                },
            }
        },
        "/jobs/{job_id}/sheet": {
            "post": {
                "summary": "Score the sheet chosen for a workbook in state 'choose'",
                "tags": ["jobs"],
                "parameters": [JOB_ID],
                "requestBody": {
                    "required": True,
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "properties": {"sheet": {"type": "string"}},
                                "required": ["sheet"],
                            }
                        }
                    },
                },
                "responses": {
                    "202": _ok(JOB_LINKS, "Accepted: the job is queued"),
                    "default": _error(NATIVE_ERROR),
                },
            }
        },
        "/jobs/{job_id}/status": _get(
            "A scoring job's progress", _ok(JOB_STATUS), NATIVE_ERROR, "jobs", parameters=[JOB_ID]
        ),
        **{
            f"/jobs/{{job_id}}/result.{kind}": _get(
                f"A finished job's scored file (.{kind} for a {kind} upload)",
                _ok({"type": "string", "format": "binary"}, media=media),
                NATIVE_ERROR,
                "jobs",
                parameters=[JOB_ID],
            )
            for kind, media in results
        },
    }


def _paths(
    info: ModelInfo | None, names: list[str] | None = None, versions: list[str] | None = None
) -> Schema:
    """The routes for ``info`` (the default model); ``names``: the models served, which the
    Open Inference Protocol's routes take (default: ``info``'s own name)."""
    row = _row_object(info)
    rows_body = {
        "oneOf": [
            {"type": "array", "items": row, "minItems": 1, "description": "records"},
            row,
            _split(info),
            {"type": "array", "items": _row_list(info), "minItems": 1, "description": "lists"},
            *_texts(info),
            *_tensors(info),
        ]
    }
    mlflow_body = {
        "oneOf": [
            {
                "type": "object",
                "properties": {key: schema, "params": MLFLOW_PARAMS},
                "required": [key],
                "additionalProperties": False,
            }
            for key, schema in (
                ("dataframe_split", _split(info)),
                ("dataframe_records", {"type": "array", "items": row, "minItems": 1}),
                ("instances", {"type": "array", "items": _row_list(info), "minItems": 1}),
                ("inputs", {"type": "array", "items": _row_list(info), "minItems": 1}),
            )
        ],
        "description": "exactly one of "
        + ", ".join(mlflow.INPUT_KEYS)
        + "; params.predict_method ("
        + " or ".join(mlflow.PREDICT_METHODS)
        + ") is applied as MLflow applies it: for an MLflow folder whose signature's params "
        "schema declares it",
    }
    predictions = {
        "type": "object",
        "properties": {"predictions": {"type": "array"}, "explanations": EXPLANATIONS},
    }
    if not names:
        names = [info.name] if info is not None else []
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
            "parameters": OIP_PARAMETERS,
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
        "tags": ["Open Inference Protocol v2"],
        "requestBody": {"required": True, "content": {JSON: {"schema": infer_body}}},
        "responses": {"200": _ok(ANY_OBJECT), "default": _error(OIP_ERROR)},
    }
    oip_tag = "Open Inference Protocol v2"
    paths: Schema = {
        "/predict": {
            "post": {
                "summary": "Predict (winserve's own format)",
                "tags": ["winserve"],
                "parameters": [
                    {
                        "name": "proba",
                        "in": "query",
                        "schema": {"type": "boolean"},
                        "description": "also return class probabilities",
                    },
                    {
                        "name": "scores",
                        "in": "query",
                        "schema": {"type": "boolean"},
                        "description": "also return the model's scores (decision_function or "
                        "score_samples), where it has them",
                    },
                    {
                        "name": "explain",
                        "in": "query",
                        "schema": {"type": "boolean"},
                        "description": "also return each row's explanation: how much each input "
                        "column moved the prediction (a classifier's: the probability of its "
                        "predicted class) from the average over the model's reference sample "
                        "(<name>.reference.csv); 409 when the model has none (issue 25)",
                    },
                ],
                "requestBody": {
                    "required": True,
                    "content": {JSON: {"schema": rows_body}, **_uploads(info)},
                },
                "responses": {"200": _ok(predictions), "default": _error(NATIVE_ERROR)},
            }
        },
        "/whatif": {
            "post": {
                "summary": "What if: one row's prediction as each input sweeps its reference "
                "range (numbers: quantiles; categories: each value seen); 409 without a "
                "reference sample",
                "tags": ["winserve"],
                "requestBody": {
                    "required": True,
                    "content": {
                        JSON: {
                            "schema": {
                                "oneOf": [
                                    {
                                        "type": "object",
                                        "properties": {
                                            "row": row,
                                            "columns": {
                                                "type": "array",
                                                "items": {"type": "string"},
                                                "description": "the inputs to sweep "
                                                "(default: every input)",
                                            },
                                        },
                                        "required": ["row"],
                                        "additionalProperties": False,
                                    },
                                    row,
                                ]
                            }
                        }
                    },
                },
                "responses": {"200": _ok(WHATIF), "default": _error(NATIVE_ERROR)},
            }
        },
        "/model": _get("What the model is and expects", _ok(ANY_OBJECT), NATIVE_ERROR, "winserve"),
        "/health": _get(
            "Model replicas' state (503 unless serving)", _ok(ANY_OBJECT), NATIVE_ERROR, "winserve"
        ),
        "/metrics": _get(
            "Prometheus metrics",
            _ok({"type": "string"}, media="text/plain"),
            NATIVE_ERROR,
            "winserve",
        ),
        "/log.csv": _get(
            "The prediction log from since to until, as CSV (the owner's: this computer, or "
            "the token's holder; issue 26)",
            _ok({"type": "string"}, media="text/csv"),
            NATIVE_ERROR,
            "winserve",
            parameters=_period("log_days ago"),
        ),
        "/monitor.json": _get(
            "Drift of each input from since to until against the reference sample: the "
            "population stability index per column, its words and bins (the owner's, as "
            "/log.csv; issue 26)",
            _ok(ANY_OBJECT),
            NATIVE_ERROR,
            "winserve",
            parameters=_period("7 days ago"),
        ),
        "/invocations": {
            "post": {
                "summary": "Predict (MLflow scoring protocol)",
                "tags": ["MLflow"],
                "requestBody": {
                    "required": True,
                    "content": {
                        JSON: {"schema": mlflow_body},
                        "text/csv": {"schema": {"type": "string"}},
                    },
                },
                "responses": {"200": _ok(predictions), "default": _error(MLFLOW_ERROR)},
            }
        },
        "/ping": _get("200 once the model is serving", _ok(ANY_OBJECT), MLFLOW_ERROR, "MLflow"),
        "/version": _get(
            "winserve version", _ok({"type": "string"}, media="text/plain"), MLFLOW_ERROR, "MLflow"
        ),
        "/v2": _get("Server metadata", _ok(ANY_OBJECT), OIP_ERROR, oip_tag),
        "/v2/health/live": _get("Server live", _ok(ANY_OBJECT), OIP_ERROR, oip_tag),
        "/v2/health/ready": _get("Server ready", _ok(ANY_OBJECT), OIP_ERROR, oip_tag),
        "/v2/models/{model_name}": _get(
            "Model metadata", _ok(ANY_OBJECT), OIP_ERROR, oip_tag, parameters=[model_name]
        ),
        "/v2/models/{model_name}/ready": _get(
            "Model ready", _ok(ANY_OBJECT), OIP_ERROR, oip_tag, parameters=[model_name]
        ),
        "/v2/models/{model_name}/versions/{model_version}": _get(
            "Model metadata",
            _ok(ANY_OBJECT),
            OIP_ERROR,
            oip_tag,
            parameters=[model_name, model_version],
        ),
        "/v2/models/{model_name}/versions/{model_version}/ready": _get(
            "Model ready",
            _ok(ANY_OBJECT),
            OIP_ERROR,
            oip_tag,
            parameters=[model_name, model_version],
        ),
        "/v2/models/{model_name}/infer": {"post": {**infer, "parameters": [model_name]}},
        "/v2/models/{model_name}/versions/{model_version}/infer": {
            "post": {**infer, "parameters": [model_name, model_version]}
        },
        "/v2/repository/index": {
            "post": {
                "summary": "The models: name, version, state (and why, if not ready)",
                "tags": [oip_tag],
                "responses": {
                    "200": _ok({"type": "array", "items": ANY_OBJECT}),
                    "default": _error(NATIVE_ERROR),
                },
            }
        },
        **{
            f"/v2/repository/models/{{model_name}}/{action}": {
                "post": {
                    "summary": summary,
                    "tags": [oip_tag],
                    "parameters": [{**model_name, "schema": {"type": "string"}}],
                    "responses": {"200": _ok(ANY_OBJECT), "default": _error(NATIVE_ERROR)},
                }
            }
            for action, summary in (
                ("load", "Load (or reload) a model from its file now"),
                ("unload", "Stop serving a model"),
            )
        },
        "/openapi.json": _get("This document", _ok(ANY_OBJECT), NATIVE_ERROR, "winserve"),
        # issue 27: the models as tools for AI assistants (web/mcp.py)
        "/mcp": {
            "post": {
                "summary": "Model Context Protocol (streamable HTTP, JSON responses): one tool "
                "per served model",
                "tags": ["MCP"],
                "requestBody": {"required": True, "content": {JSON: {"schema": JSONRPC}}},
                "responses": {
                    "200": _ok(JSONRPC, "A JSON-RPC response"),
                    "202": {"description": "A notification or response, accepted"},
                    "default": _error(JSONRPC, "A JSON-RPC error object"),
                },
            }
        },
        "/tools.json": _get(
            "The served models as OpenAI-style function definitions",
            _ok({"type": "array", "items": ANY_OBJECT}),
            NATIVE_ERROR,
            "MCP",
        ),
        **_jobs(),
    }
    return paths


# the routes each model also has under /models/<name> (web/app.py registers the native and
# MLflow blueprints there), described with that model's own columns
MODEL_ROUTES = (
    "/predict",
    "/whatif",
    "/model",
    "/health",
    "/invocations",
    "/ping",
    "/version",
    "/log.csv",
    "/monitor.json",
    "/jobs",
    "/jobs/{job_id}/sheet",
    "/jobs/{job_id}/status",
    "/jobs/{job_id}/result.csv",
    "/jobs/{job_id}/result.xlsx",
)


def _model_paths(name: str, info: ModelInfo | None) -> Schema:
    """``/models/<name>`` and its routes, for the model ``name`` (``info``: None while it
    loads); the name is in the path itself, percent-encoded, so each model's request bodies
    name its own columns."""
    base = "/models/" + quote(name, safe="")
    own = _paths(info, [name])
    paths: Schema = {
        base: _get(
            f"What {name} is and expects, with the version serving",
            _ok(ANY_OBJECT),
            NATIVE_ERROR,
            "winserve",
        )
    }
    for route in MODEL_ROUTES:
        paths[base + route] = own[route]
    return paths


def document(
    info: ModelInfo | None,
    base_url: str,
    token_required: bool,
    models: dict[str, ModelInfo | None] | None = None,
    versions: list[str] | None = None,
) -> Schema:
    """The document for the default model ``info`` (the bare routes) and each of ``models``
    (by name: the routes under ``/models/<name>``)."""
    title = f"winserve: {info.name}" if info is not None else "winserve"
    paths = _paths(info, sorted(models) if models else None, versions)
    for name, model in sorted((models or {}).items()):
        paths.update(_model_paths(name, model))
    doc: Schema = {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": __version__,
            "description": "Predictions from one model over winserve's own JSON API, MLflow's "
            "scoring protocol and the Open Inference Protocol v2.",
        },
        "servers": [{"url": base_url}],
        "paths": paths,
    }
    if token_required:
        doc["components"] = {"securitySchemes": {"token": {"type": "http", "scheme": "bearer"}}}
        doc["security"] = [{"token": []}]
    return doc


@bp.get("/openapi.json")
def openapi_json() -> ResponseReturnValue:
    from winserve.web import held

    plane = held.plane()

    def described(name: str | None) -> ModelInfo | None:
        try:
            return held.held(name).info()
        except (ModelUnavailable, NotFound):  # loading, or a folder of models and none named
            return None

    names = plane.names()
    models = {name: described(name) for name in names}
    versions: set[str] = set()
    for name in names:
        with contextlib.suppress(NotFound):  # unloaded meanwhile
            versions.update(plane.versions(name))
    token = bool(current_app.config.get("WINSERVE_TOKEN"))
    ordered = sorted(versions, key=lambda v: (len(v), v))
    base = request.host_url.rstrip("/")
    return jsonify(document(described(None), base, token, models, ordered))
