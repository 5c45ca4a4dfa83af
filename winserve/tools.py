"""A served model as a tool an AI assistant can call (issue 27): its name, description and
JSON schemas, built from what winserve already knows about the model.

::

    ModelInfo (the model's inputs: kinds, categories, missing accepted or refused)
      + ModelCard (labels, help, units, class names)   ──► Tool(name, title, description,
                                                              input_schema, output_schema)
    Tool ──► MCP's tools/list entry (web/mcp.py) and an OpenAI-style function (/tools.json)
    a tool call's arguments ──► one row {column: value}, absent inputs missing (None)
    the model's Prediction  ──► {"prediction", "label", "probabilities"}

A value's schema (``value_schema``) is also what ``/openapi.json`` gives each column, so the
two descriptions of a model cannot drift apart. Plain data in, plain data out: no Flask here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from winserve.card import ModelCard
from winserve.model_info import Feature, ModelInfo

Schema = dict[str, Any]

# What both MCP (letters, digits, "_", "-", ".", up to 128) and OpenAI's function names
# (letters, digits, "_", "-", up to 64) allow: one name serves both lists.
NAME_MAX = 64
_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9_-]+")


def value_schema(feature: Feature) -> Schema:
    """One value of ``feature``; ``null`` (missing) unless the model refuses a missing value."""
    if feature.kind == "image":  # an image file per row (issue 24)
        return {
            "type": "object",
            "properties": {"b64": {"type": "string", "contentEncoding": "base64"}},
            "required": ["b64"],
            "additionalProperties": False,
            "description": f"{feature.name}: an image file (PNG, JPEG, …) as base64",
        }
    if feature.kind == "tensor":  # nested lists of the input's shape per row (issue 24)
        return _tensor_schema(feature, list(feature.shape))
    if feature.kind == "any":
        return {"description": feature.name}
    kind = {"number": "number", "bool": "boolean"}.get(feature.kind, "string")
    schema: Schema = {"type": kind if feature.required else [kind, "null"]}
    if feature.kind == "number":
        schema["description"] = f"{feature.name} (a number)"
    if feature.kind == "datetime":  # the card's kind = "datetime" (issue 22)
        schema["format"] = "date-time"
        schema["description"] = f"{feature.name} (a date and time, e.g. 2024-03-01T12:30:00)"
    if feature.strict_categories and feature.categories:
        # a bool column's values stay true/false: "True" would contradict its type (issue 27)
        shown = bool if feature.kind == "bool" else str
        values = [shown(c) for c in feature.categories]
        schema["enum"] = values + ([] if feature.required else [None])
    if feature.required:
        schema["description"] = f"{feature.name} (required: the model takes no missing value)"
    return schema


def _tensor_schema(feature: Feature, shape: list[int | None]) -> Schema:
    if not shape:
        kind = "number" if feature.dtype.startswith("float") else "integer"
        return {"type": kind}
    schema: Schema = {"type": "array", "items": _tensor_schema(feature, shape[1:])}
    if shape[0] is not None:
        schema["minItems"] = schema["maxItems"] = shape[0]
    if len(shape) == len(feature.shape):
        dims = ", ".join("any" if d is None else str(d) for d in feature.shape)
        schema["description"] = f"{feature.name}: {feature.dtype}, shape [{dims}] per row"
    return schema


def tool_name(model: str) -> str:
    """``model``'s name as a tool name: characters tools may not have become "_"."""
    name = _NOT_ALLOWED.sub("_", model).strip("_") or "model"
    return name[:NAME_MAX]


def tool_names(models: list[str]) -> dict[str, str]:
    """Tool name → model name, one tool per model: two models whose names read the same once
    sanitised ("sales 2024", "sales_2024") get a numbered suffix, in name order."""
    found: dict[str, str] = {}
    for model in sorted(models):
        name = base = tool_name(model)
        number = 2
        while name in found:
            suffix = f"_{number}"
            name = base[: NAME_MAX - len(suffix)] + suffix
            number += 1
        found[name] = model
    return found


def _input(feature: Feature, card: ModelCard) -> Schema:
    """``feature``'s value, titled and described as the model card names it."""
    schema = value_schema(feature)
    doc = card.features.get(feature.name)
    if doc is None:
        return schema
    if doc.label:
        schema["title"] = doc.label
    said = [doc.label or feature.name]
    if doc.help:
        said.append(doc.help)
    if doc.unit:
        said.append(f"unit: {doc.unit}")
    if doc.allowed and "enum" not in schema:
        said.append("one of " + ", ".join(str(v) for v in doc.allowed))
    if feature.required:
        said.append("required: the model takes no missing value")
    schema["description"] = "; ".join(said)
    return schema


def input_schema(info: ModelInfo, card: ModelCard) -> Schema:
    """The arguments: one per input column; those the model refuses missing are required,
    the others may be left out (the model receives a missing value, as for an empty cell)."""
    return {
        "type": "object",
        "properties": {f.name: _input(f, card) for f in info.features},
        "required": [f.name for f in info.features if f.required],
        "additionalProperties": False,
    }


def _prediction(info: ModelInfo) -> Schema:
    if info.n_outputs > 1:
        return {"type": "array", "description": "one value per output of the model"}
    if info.task == "classification" and info.classes:
        return {"enum": list(info.classes), "description": "the predicted class"}
    if info.task == "regression":
        return {"type": "number", "description": "the predicted value"}
    return {"description": "what the model predicts"}


def output_schema(info: ModelInfo) -> Schema:
    properties: Schema = {"prediction": _prediction(info)}
    if info.task == "classification" and info.n_outputs == 1:
        properties["label"] = {
            "type": "string",
            "description": "the predicted class as the model card names it",
        }
    if info.has_proba:
        properties["probabilities"] = {
            "type": "object",
            "description": "the chance of each class",
            "properties": {str(c): {"type": "number"} for c in info.classes},
        }
    return {"type": "object", "properties": properties, "required": ["prediction"]}


def _description(model: str, info: ModelInfo, card: ModelCard) -> str:
    said = [card.description.strip()] if card.description.strip() else []
    task = {
        "classification": "Predicts a class",
        "regression": "Predicts a number",
        "clustering": "Assigns a cluster",
        "outlier_detection": "Tells outliers (-1) from inliers (1)",
    }.get(info.task, "Predicts")
    said.append(f"{task} with the model {model!r} ({info.model_type}) from one row of inputs.")
    if info.task == "classification" and info.classes:
        shown = [
            f"{c} ({card.class_name(c)})" if card.class_name(c) != str(c) else str(c)
            for c in info.classes[:20]
        ]
        said.append("Classes: " + ", ".join(shown) + (" …" if len(info.classes) > 20 else ""))
    if info.has_proba:
        said.append("Also gives the probability of each class.")
    return " ".join(said)


@dataclass(frozen=True)
class Tool:
    name: str
    model: str  # the served model's own name
    title: str
    description: str
    input_schema: Schema
    output_schema: Schema

    def mcp(self) -> Schema:
        """The entry of MCP's ``tools/list``."""
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "inputSchema": self.input_schema,
            "outputSchema": self.output_schema,
            "annotations": {"readOnlyHint": True, "idempotentHint": True, "openWorldHint": False},
        }

    def function(self) -> Schema:
        """An OpenAI-style function definition (chat completions' ``tools``)."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.input_schema,
            },
        }


def describe(name: str, model: str, info: ModelInfo, card: ModelCard) -> Tool:
    """The tool ``name`` for the served model ``model``."""
    return Tool(
        name=name,
        model=model,
        title=card.title or model,
        description=_description(model, info, card),
        input_schema=input_schema(info, card),
        output_schema=output_schema(info),
    )


def row(info: ModelInfo, arguments: dict[str, Any]) -> dict[str, list[Any]]:
    """A tool call's arguments as one row, in the model's column order: an input left out is
    missing. A name that is not an input stays in, for the service to refuse by name."""
    columns = {f.name: [arguments.get(f.name)] for f in info.features}
    columns.update({k: [v] for k, v in arguments.items() if k not in columns})
    return columns


def result(info: ModelInfo, card: ModelCard, prediction: Any, probabilities: Any) -> Schema:
    """One row's answer, as the output schema describes it."""
    answer: Schema = {"prediction": prediction}
    if info.task == "classification" and info.n_outputs == 1:
        answer["label"] = card.class_name(prediction)
    if info.has_proba and probabilities is not None:
        answer["probabilities"] = {
            str(c): float(p) for c, p in zip(info.classes, probabilities, strict=True)
        }
    return answer
