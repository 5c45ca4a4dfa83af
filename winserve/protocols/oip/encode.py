"""Open Inference Protocol answers: a prediction (and explanations) in, the response's output
tensors out, shaped as MLServer's scikit-learn runtime shapes them; the server's and a model's
metadata (its inputs and outputs with their datatypes and shapes); the error body."""

from __future__ import annotations

import json
from typing import Any

from winserve import __version__
from winserve.backends.base import Prediction
from winserve.errors import WinserveError
from winserve.model_info import ModelInfo
from winserve.protocols.oip.decode import EXPLANATIONS, VERSION, InferRequest

TENSOR_DATATYPES = {
    "float32": "FP32",
    "float64": "FP64",
    "int64": "INT64",
    "int32": "INT32",
    "uint8": "UINT8",
}


def _datatype(values: list[Any]) -> str:
    if values and all(isinstance(v, bool) for v in values):
        return "BOOL"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "INT64"
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return "FP64"
    return "BYTES"


def _tensor(name: str, rows: list[Any]) -> dict[str, Any]:
    if rows and all(isinstance(r, list) for r in rows):
        width = len(rows[0])
        flat = [v for r in rows for v in r] if all(len(r) == width for r in rows) else None
        shape = [len(rows), width]
    else:
        flat, shape = list(rows), [len(rows), 1]
    if flat is None:  # ragged outputs: one text per row
        flat, shape = [str(r) for r in rows], [len(rows), 1]
    datatype = _datatype(flat)
    if datatype == "BYTES":
        flat = [v if isinstance(v, str) else str(v) for v in flat]
    return {
        "name": name,
        "shape": shape,
        "datatype": datatype,
        "parameters": {"content_type": "np"},
        "data": flat,
    }


def explanations_tensor(explanations: list[dict[str, Any]]) -> dict[str, Any]:
    """Each row's contributions in the model's column order, then its baseline (see the
    module docstring): ``[rows, inputs + 1]`` FP64."""
    columns = list(explanations[0]["contributions"]) if explanations else []
    data = [
        float(v)
        for found in explanations
        for v in (*found["contributions"].values(), found["baseline"])
    ]
    explained = str(explanations[0].get("explained", "prediction")) if explanations else ""
    return {
        "name": EXPLANATIONS,
        "shape": [len(explanations), len(columns) + 1],
        "datatype": "FP64",
        "parameters": {
            "content_type": "np",
            "explained": explained,  # "probability" (of the class predicted) or "prediction"
            "columns": json.dumps([*columns, "baseline"]),
        },
        "data": data,
    }


def encode(
    prediction: Prediction,
    infer: InferRequest,
    info: ModelInfo,
    version: str | None,
    explanations: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"model_name": info.name}
    if version is not None:
        body["model_version"] = version
    if infer.id is not None:
        body["id"] = infer.id
    outputs = []
    for name in infer.outputs:
        if name == "predict":
            outputs.append(_tensor(name, prediction.predictions))
        elif name == "predict_proba":
            outputs.append(_tensor(name, prediction.probabilities or []))
        else:
            outputs.append(_tensor(name, prediction.scores or []))
    if explanations is not None:
        outputs.append(explanations_tensor(explanations))
    body["outputs"] = outputs
    return body


# The protocol's extensions served (its server metadata lists them; Triton's names): the model
# repository (web/models.py: index, load, unload). Binary tensor data is not listed: winserve
# reads binary inputs but always answers in JSON (a new user's trial: the list was empty).
EXTENSIONS = ("model_repository",)


def server_metadata() -> dict[str, Any]:
    return {"name": "winserve", "version": __version__, "extensions": list(EXTENSIONS)}


def _class_datatype(info: ModelInfo) -> str:
    if info.task == "regression" or not info.classes:
        return "FP64"
    return _datatype(list(info.classes))


def input_datatype(kind: str) -> str:
    return {"number": "FP64", "bool": "BOOL"}.get(kind, "BYTES")


def model_metadata(info: ModelInfo) -> dict[str, Any]:
    if info.text_input:
        inputs = [{"name": info.feature_names[0], "datatype": "BYTES", "shape": [-1]}]
    elif info.tensor_inputs:  # each input's own shape, -1 where any length goes (issue 24)
        inputs = [
            {"name": f.name, "datatype": "BYTES", "shape": [-1]}
            if f.kind == "image"
            else {
                "name": f.name,
                "datatype": TENSOR_DATATYPES.get(f.dtype, "FP32"),
                "shape": [-1, *(-1 if d is None else d for d in f.shape)],
            }
            for f in info.features
        ]
    elif info.feature_names_known:
        inputs = [
            {"name": f.name, "datatype": input_datatype(f.kind), "shape": [-1]}
            for f in info.features
        ]
    else:
        inputs = [{"name": "input-0", "datatype": "FP64", "shape": [-1, info.n_features or -1]}]
    outputs = [
        {"name": "predict", "datatype": _class_datatype(info), "shape": [-1, info.n_outputs]}
    ]
    if info.has_proba:
        outputs.append(
            {"name": "predict_proba", "datatype": "FP64", "shape": [-1, len(info.classes) or -1]}
        )
    if info.score_method:
        outputs.append({"name": info.score_method, "datatype": "FP64", "shape": _score_shape(info)})
    if _explainable(info):  # asked for with parameters.explain (issue 25)
        width = info.n_features + 1
        outputs.append({"name": EXPLANATIONS, "datatype": "FP64", "shape": [-1, width]})
    return {
        "name": info.name,
        "versions": [VERSION],
        "platform": "sklearn" if info.saved_with_sklearn else "python",
        "inputs": inputs,
        "outputs": outputs,
    }


def _score_shape(info: ModelInfo) -> list[int]:
    """The shape ``encode`` gives the scores: always [rows, k] (issue 23: the metadata said [-1]
    while infer answered [n, 3], a rank a client checks). One score a row for score_samples and a
    two-class decision_function; one per class (or per pair of classes, SVC's "ovo") beyond:
    -1, any width, as the web process cannot tell which."""
    if info.score_method == "decision_function" and len(info.classes) > 2:
        return [-1, -1]
    return [-1, 1]


def _explainable(info: ModelInfo) -> bool:
    """A model of columns with a usable reference sample (``ModelInfo.extra["reference"]``)."""
    found = info.extra.get("reference")
    return isinstance(found, dict) and not found.get("problem") and not info.tensor_inputs


def error_body(error: WinserveError) -> dict[str, Any]:
    return {"error": error.message}
