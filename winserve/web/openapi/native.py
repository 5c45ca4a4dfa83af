"""winserve's own routes in ``/openapi.json``: ``/predict`` and ``/whatif`` with the model's
columns, ``/model``, ``/health``, ``/metrics``, the owner's ``/log.csv`` and ``/monitor.json``
(``paths``); and the descriptions for programs and AI assistants, ``/openapi.json``, ``/mcp``,
``/tools.json`` (``about_paths``). A ``ModelInfo`` in, path items out."""

from __future__ import annotations

from typing import Any

from winserve.model_info import ModelInfo
from winserve.web.openapi import bodies
from winserve.web.openapi.common import (
    ANY_OBJECT,
    JSON,
    NATIVE_ERROR,
    Schema,
    error,
    get,
    ok,
)

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
JSONRPC: Schema = {
    "type": "object",
    "properties": {"jsonrpc": {"const": "2.0"}, "id": {"type": ["string", "integer", "null"]}},
    "required": ["jsonrpc"],
}


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


def paths(info: ModelInfo | None) -> Schema:
    """``/predict``, ``/whatif``, ``/model``, ``/health``, ``/metrics``, ``/log.csv``,
    ``/monitor.json`` for the model ``info``."""
    row = bodies.row_object(info)
    rows_body = {
        "oneOf": [
            {"type": "array", "items": row, "minItems": 1, "description": "records"},
            row,
            bodies.split(info),
            {
                "type": "array",
                "items": bodies.row_list(info),
                "minItems": 1,
                "description": "lists",
            },
            *bodies.texts(info),
            *bodies.tensors(info),
        ]
    }
    return {
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
                        "(<name>.reference.csv); 409 when the model has none",
                    },
                ],
                "requestBody": {
                    "required": True,
                    "content": {JSON: {"schema": rows_body}, **bodies.uploads(info)},
                },
                "responses": {"200": ok(bodies.PREDICTIONS), "default": error(NATIVE_ERROR)},
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
                "responses": {"200": ok(WHATIF), "default": error(NATIVE_ERROR)},
            }
        },
        "/model": get("What the model is and expects", ok(ANY_OBJECT), NATIVE_ERROR, "winserve"),
        "/health": get(
            "Model replicas' state (503 unless serving)", ok(ANY_OBJECT), NATIVE_ERROR, "winserve"
        ),
        "/metrics": get(
            "Prometheus metrics",
            ok({"type": "string"}, media="text/plain"),
            NATIVE_ERROR,
            "winserve",
        ),
        "/log.csv": get(
            "The prediction log from since to until, as CSV (the owner's: this computer when "
            "no token is set, else an owner token); the bare /log.csv of a folder of "
            "several models without a default: every model's, the model column telling them "
            "apart",
            ok({"type": "string"}, media="text/csv"),
            NATIVE_ERROR,
            "winserve",
            parameters=_period("log_days ago"),
        ),
        "/monitor.json": get(
            "Drift of each input from since to until against the reference sample: the "
            "population stability index per column, its words and bins (the owner's, as "
            "/log.csv); 'summary': the page's sentence; 'activity': requests, "
            "errors and latency p50/p95 per hour (a period of up to 2 days) or day, errors by "
            "status and route, the answers per bucket (each class's share, or a regressor's "
            "p5/median/p95); 'events': loads, restarts, failed loads, refused swaps and CSV "
            "jobs in time order; 'accuracy': the outcomes uploaded, per week and version; "
            "'callers': who used it (requests, errors and last seen per caller). The bare "
            "/monitor.json of a folder of several models without a default is its index: "
            "'models', each with its requests, errors, last request, drift in a line and links",
            ok(ANY_OBJECT),
            NATIVE_ERROR,
            "winserve",
            parameters=_period("7 days ago"),
        ),
        "/outcomes": _outcomes(),
    }


def _outcomes() -> Schema:
    """``POST /outcomes``: the truth once known, joined with the logged predictions."""
    columns = [
        {
            "name": name,
            "in": "query",
            "required": False,
            "description": what,
            "schema": {"type": "string"},
        }
        for name, what in (
            ("key", "an input column to join on (default: the file's 'request id' column)"),
            ("outcome", "the outcome column (default: 'outcome')"),
        )
    ]
    form = {
        "type": "object",
        "properties": {
            "file": {
                "type": "string",
                "format": "binary",
                "description": "a CSV file or an .xlsx workbook",
            },
            "key": {"type": "string"},
            "outcome": {"type": "string"},
            "sheet": {"type": "string", "description": "a workbook's sheet, by name"},
        },
        "required": ["file"],
    }
    return {
        "post": {
            "summary": "Upload outcomes (a CSV or a workbook) joined with the logged "
            "predictions by request id (X-Request-Id, a scored file's 'request id'; "
            "'<id>-<n>': row n of a request) or by an input column; the owner's, as "
            "/log.csv",
            "description": "For programs: 'Authorization: Bearer <token>' or the header "
            "'X-Winserve-Client: 1', as POST /jobs. An outcome uploaded again for the same "
            "key replaces the earlier one.",
            "tags": ["winserve"],
            "parameters": columns,
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {"schema": form},
                    "text/csv": {"schema": {"type": "string"}},
                },
            },
            "responses": {
                "200": ok(
                    {
                        "type": "object",
                        "properties": {
                            "stored": {"type": "integer"},
                            "matched": {"type": "integer"},
                            "unmatched": {"type": "integer"},
                            "unmatched_examples": {"type": "array", "items": {"type": "string"}},
                        },
                    }
                ),
                "default": error(NATIVE_ERROR),
            },
        }
    }


def about_paths() -> Schema:
    """``/openapi.json`` itself, and the models as tools for AI assistants (issue 27:
    web/mcp.py)."""
    return {
        "/openapi.json": get("This document", ok(ANY_OBJECT), NATIVE_ERROR, "winserve"),
        "/mcp": {
            "post": {
                "summary": "Model Context Protocol (streamable HTTP, JSON responses): one tool "
                "per served model",
                "tags": ["MCP"],
                "requestBody": {"required": True, "content": {JSON: {"schema": JSONRPC}}},
                "responses": {
                    "200": ok(JSONRPC, "A JSON-RPC response"),
                    "202": {"description": "A notification or response, accepted"},
                    "default": error(JSONRPC, "A JSON-RPC error object"),
                },
            }
        },
        "/tools.json": get(
            "The served models as OpenAI-style function definitions",
            ok({"type": "array", "items": ANY_OBJECT}),
            NATIVE_ERROR,
            "MCP",
        ),
    }
