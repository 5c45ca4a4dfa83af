"""An Open Inference Protocol infer request decoded: the JSON body (and Triton's binary data
after it) in, an ``InferRequest`` out: the rows as a ``PredictRequest`` (one 2-D tensor, a
tensor per column, or tensors of any rank for a model that takes them), the outputs asked for,
the request's id and whether explanations are asked for."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from winserve.errors import BadRequest, NotFound, shown
from winserve.model_info import ModelInfo
from winserve.protocols.oip.tensor_values import tensor_values
from winserve.rows import PredictRequest, Tensors

VERSION = "1"

EXPLANATIONS = "explanations"  # the output of each row's Shapley values (issue 25)


@dataclass(frozen=True)
class InferRequest:
    request: PredictRequest
    outputs: tuple[str, ...]
    id: str | None
    explain: bool = False  # parameters.explain, or the output "explanations" asked for


def check_model(name: str, version: str | None, info: ModelInfo) -> None:
    if name != info.name:
        raise NotFound(f"model {shown(name)} is not served here; this server serves {info.name!r}")
    if version is not None and version != VERSION:
        raise NotFound(f"model {info.name!r} has no version {shown(version)}; it has {VERSION!r}")


def _matrix(name: str, shape: list[int], values: Any, info: ModelInfo) -> PredictRequest:
    rows, width = shape
    if info.features and width != info.n_features:
        raise BadRequest(
            f"input {shown(name)} has shape {shape}; the model expects [rows, "
            f"{info.n_features}] with columns {', '.join(info.feature_names[:20])}"
        )
    if not isinstance(values, list):  # numbers, decoded as a whole: no per-value round trip
        return PredictRequest.from_matrix(values.reshape(rows, width))
    return PredictRequest.from_rows([values[r * width : (r + 1) * width] for r in range(rows)])


def _columns(tensors: list[tuple[str, list[int], Any]]) -> PredictRequest:
    columns: dict[str, list[Any]] = {}
    for name, shape, raw in tensors:
        values = raw if isinstance(raw, list) else raw.tolist()
        if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
            raise BadRequest(
                f"input {shown(name)} has shape {shape}; with one tensor per column each must "
                "have shape [rows] or [rows, 1]"
            )
        if name in columns:
            raise BadRequest(f"input {shown(name)} is given more than once")
        columns[name] = values
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise BadRequest(
            "the column tensors have different numbers of rows: "
            + ", ".join(f"{shown(n)} {len(v)}" for n, v in columns.items())
        )
    return PredictRequest.from_columns(columns)


def _tensor_inputs(tensors: list[tuple[str, list[int], Any]], info: ModelInfo) -> PredictRequest:
    """One tensor per input of a model that takes tensors, ``[rows, ...]`` of the input's
    shape; an image input takes a ``BYTES`` tensor ``[rows]`` of files: base64 texts in JSON,
    the raw bytes in Triton's binary extension (as tritonclient sends them).
    ``winserve.tensors`` checks them as it checks JSON's."""
    import numpy as np

    kinds = {f.name: f.kind for f in info.features}
    given: dict[str, Any] = {}
    for name, shape, values in tensors:
        if name in given:
            raise BadRequest(f"input {shown(name)} is given more than once")
        if kinds.get(name) == "image":
            if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
                raise BadRequest(
                    f"input {shown(name)} is an image input: send a BYTES tensor of shape "
                    "[rows] (or [rows, 1]), each element the base64 of an image file"
                )
            if not isinstance(values, list) or not all(isinstance(v, (str, bytes)) for v in values):
                raise BadRequest(
                    f"input {shown(name)} is an image input: its datatype is BYTES, each "
                    "element an image file (base64 in JSON, the file's bytes in binary data)"
                )
            given[name] = [v if isinstance(v, bytes) else {"b64": v} for v in values]
        elif isinstance(values, list):  # text or null among the numbers: named there
            given[name] = np.array(values, dtype=object).reshape(shape)
        else:
            given[name] = values.reshape(shape)
    return PredictRequest(Tensors(given), 0)  # rows: known once the tensors are read


def _explain(body: dict[str, Any]) -> bool:
    """The request's ``parameters.explain``: true or false (the texts too: OIP parameters
    are strings, numbers or booleans, and some clients send strings only)."""
    parameters = body.get("parameters")
    if parameters is None:
        return False
    if not isinstance(parameters, dict):
        raise BadRequest('"parameters" must be an object, e.g. {"explain": true}')
    value = parameters.get("explain", False)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise BadRequest(f"parameters.explain must be true or false; got {repr(value)[:40]}")


def _outputs(body: dict[str, Any], info: ModelInfo) -> tuple[str, ...]:
    """The outputs asked for (``predict`` by default); ``explanations`` among them is not
    one of the model's outputs but the request for explanations (``decode`` takes it out)."""
    requested = body.get("outputs")
    if requested is None:
        return ("predict",)
    if not isinstance(requested, list) or not requested:
        raise BadRequest('"outputs" must be a non-empty list of {"name": ...} objects')
    names: list[str] = []
    for item in requested:
        name = item.get("name") if isinstance(item, dict) else None
        if name not in info.outputs and name != EXPLANATIONS:
            offered = ", ".join(repr(o) for o in info.outputs)
            raise BadRequest(f"unknown output {shown(name)}; this model has outputs {offered}")
        if name not in names:
            names.append(name)
    return tuple(names)


def decode(body: Any, info: ModelInfo, binary: memoryview | None = None) -> InferRequest:
    if not isinstance(body, dict):
        raise BadRequest('the body must be a JSON object with "inputs"')
    request_id = body.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequest('"id" must be a string')
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise BadRequest('"inputs" must be a non-empty list of tensors')
    outputs = _outputs(body, info)
    explain = _explain(body) or EXPLANATIONS in outputs
    outputs = tuple(o for o in outputs if o != EXPLANATIONS) or ("predict",)
    images = frozenset(f.name for f in info.features if f.kind == "image")
    tensors = []
    offset = 0
    for position, tensor in enumerate(inputs):
        name, shape, values, offset = tensor_values(tensor, position, binary, offset, images)
        tensors.append((name, shape, values))
    names = set(info.feature_names)
    if info.tensor_inputs:  # tensors of any rank, images as BYTES (issue 24)
        request = _tensor_inputs(tensors, info)
    elif len(tensors) == 1:
        name, shape, values = tensors[0]
        if len(shape) == 2 and not (name in names and shape[1] == 1 and info.n_features > 1):
            request = _matrix(name, shape, values, info)
        elif len(shape) == 1 and name not in names and info.n_features == 1:
            request = _matrix(name, [shape[0], 1], values, info)
        elif len(shape) == 1 and name not in names:
            raise BadRequest(
                f"input {shown(name)} is 1-D; send one 2-D tensor of shape [rows, "
                f"{info.n_features or 'features'}], or one tensor per column named after the "
                "model's features"
            )
        elif len(shape) > 2:
            raise BadRequest(f"input {shown(name)} has {len(shape)} dimensions; at most 2")
        else:
            request = _columns(tensors)
    else:
        request = _columns(tensors)
    request.proba = "predict_proba" in outputs
    request.scores = bool(info.score_method) and info.score_method in outputs
    return InferRequest(request, outputs, request_id, explain)
