"""The request and answer bodies of ``/openapi.json`` built from a model's columns: a
``ModelInfo`` (None while the model loads) in, JSON schemas out. ``/predict`` and
``/invocations`` take rows in the same shapes (records, split, lists), so both read them here."""

from __future__ import annotations

from winserve.model_info import ModelInfo
from winserve.tools import value_schema as _value  # one schema per column: MCP's too
from winserve.web.openapi.common import Schema

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
# the answer of /predict and of /invocations
PREDICTIONS: Schema = {
    "type": "object",
    "properties": {"predictions": {"type": "array"}, "explanations": EXPLANATIONS},
}


def texts(info: ModelInfo | None) -> list[Schema]:
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


def row_object(info: ModelInfo | None) -> Schema:
    if info is None or not info.features:
        return {"type": "object", "additionalProperties": True}
    return {
        "type": "object",
        "properties": {f.name: _value(f) for f in info.features},
        "required": info.feature_names,
        "additionalProperties": False,
    }


def row_list(info: ModelInfo | None) -> Schema:
    schema: Schema = {"type": "array", "description": "values in the model's column order"}
    if info is not None and info.features:
        schema["prefixItems"] = [_value(f) for f in info.features]
        schema["minItems"] = schema["maxItems"] = info.n_features
    return schema


def tensors(info: ModelInfo | None) -> list[Schema]:
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


def uploads(info: ModelInfo | None) -> Schema:
    """Image files uploaded as multipart/form-data, a field per image input (issue 24)."""
    names = [f.name for f in info.features if f.kind == "image"] if info is not None else []
    if not names:
        return {}
    files = {"type": "array", "items": {"type": "string", "format": "binary"}}
    schema = {"type": "object", "properties": dict.fromkeys(names, files), "required": names}
    return {"multipart/form-data": {"schema": schema}}


def split(info: ModelInfo | None) -> Schema:
    columns: Schema = {"type": "array", "items": {"type": "string"}, "minItems": 1}
    if info is not None and info.features:
        columns = {"type": "array", "const": info.feature_names}
    return {
        "type": "object",
        "properties": {
            "columns": columns,
            "data": {"type": "array", "items": row_list(info), "minItems": 1},
        },
        "required": ["columns", "data"],
        "additionalProperties": False,
    }
