"""The Open Inference Protocol v2 (KServe, Triton, MLServer), REST flavour.

Inputs are either one 2-D tensor ``[rows, features]`` in the model's column order, or one
tensor per column (shape ``[rows]`` or ``[rows, 1]``) named after the model's features; mixed
types travel as ``BYTES``; a model that takes one text per row takes one ``BYTES`` tensor of
shape ``[rows]`` or ``[rows, 1]``. Data may be nested or flat (row-major); a ``null`` element,
or a NaN in a binary floating-point tensor, is a missing value. Triton's binary tensor
extension (``Inference-Header-Content-Length``) is read too, because Triton's own client sends
it by default. Outputs are ``predict`` (default), ``predict_proba`` and the model's score method
(``decision_function`` or ``score_samples``) where it has one, shaped as MLServer's
scikit-learn runtime shapes them (a 1-D prediction is ``[rows, 1]``; a multi-output one
``[rows, outputs]``). Errors are ``{"error": message}`` with 400, 404 or the error's own status.

Explanations (issue 25, winserve's extension): ``"parameters": {"explain": true}`` in the
request, or the output ``explanations`` asked for by name, adds one more output tensor,
``explanations``: FP64, shape ``[rows, inputs + 1]``, each row the Shapley value of each input
in the order of the model's metadata ``inputs`` (its columns), then the baseline, so that a
row adds up to the number explained (the predicted class's probability, or the regressor's
value), as Triton's forest backend lays out its Shapley output (the bias last). A tensor,
not response ``parameters``: those hold only scalars (str, number, bool), and every OIP
client reads an extra output by name (``result.as_numpy("explanations")``) and ignores it
otherwise. The tensor's ``parameters`` say what is explained (``explained``) and name the
columns (``columns``, a JSON list in a string).
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from typing import Any

from winserve import __version__
from winserve.backends.base import Prediction
from winserve.errors import BadRequest, NotFound, WinserveError, shown
from winserve.model_info import ModelInfo
from winserve.request import PredictRequest, Tensors

VERSION = "1"
INT_RANGES = {
    "INT8": (-(2**7), 2**7 - 1),
    "INT16": (-(2**15), 2**15 - 1),
    "INT32": (-(2**31), 2**31 - 1),
    "INT64": (-(2**63), 2**63 - 1),
    "UINT8": (0, 2**8 - 1),
    "UINT16": (0, 2**16 - 1),
    "UINT32": (0, 2**32 - 1),
    "UINT64": (0, 2**64 - 1),
}
FLOATS = ("FP16", "FP32", "FP64")
# The largest value each narrow float holds, and the magnitude from which a number rounds to
# infinity in it (half a unit past the largest): FP16/FP32 data beyond are refused, never
# passed on as numbers the type cannot hold (issue 28)
FLOAT_LIMITS = {
    "FP16": (65504.0, 65520.0),
    "FP32": (3.4028234663852886e38, 2.0**128 * (1 - 2.0**-25)),
}
DATATYPES = ("BOOL", *INT_RANGES, *FLOATS, "BYTES")
NUMPY_DTYPES = {
    "BOOL": "?",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
}
TENSOR_DATATYPES = {
    "float32": "FP32",
    "float64": "FP64",
    "int64": "INT64",
    "int32": "INT32",
    "uint8": "UINT8",
}


EXPLANATIONS = "explanations"  # the output of each row's Shapley values (issue 25)


@dataclass(frozen=True)
class InferRequest:
    request: PredictRequest
    outputs: tuple[str, ...]
    id: str | None
    explain: bool = False  # parameters.explain, or the output "explanations" asked for


def _name(value: Any) -> str:
    return shown(value)


# -- model and version in the path ------------------------------------------------------------


def check_model(name: str, version: str | None, info: ModelInfo) -> None:
    if name != info.name:
        raise NotFound(f"model {_name(name)} is not served here; this server serves {info.name!r}")
    if version is not None and version != VERSION:
        raise NotFound(f"model {info.name!r} has no version {_name(version)}; it has {VERSION!r}")


# -- tensors ----------------------------------------------------------------------------------


def _shape(tensor: dict[str, Any], label: str) -> list[int]:
    shape = tensor.get("shape")
    if (
        not isinstance(shape, list)
        or not shape
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise BadRequest(f'{label}: "shape" must be a list of non-negative integers')
    return shape


def _flatten(data: Any, label: str, size: int) -> list[Any]:
    """Row-major flattening of nested lists, without recursion; stops early when too long."""
    if not isinstance(data, list):
        raise BadRequest(f'{label}: "data" must be a list')
    out: list[Any] = []
    stack: list[Any] = [iter(data)]
    while stack:
        item = next(stack[-1], stack)
        if item is stack:
            stack.pop()
        elif isinstance(item, list):
            stack.append(iter(item))
        else:
            out.append(item)
            if len(out) > size:
                break
    return out


def _check_element(value: Any, datatype: str) -> Any:
    """The value as the model should see it, or ``ValueError`` saying what was expected."""
    if value is None:
        return None  # a missing value: the service decides whether the model takes one
    if datatype == "BYTES":
        if isinstance(value, str):
            return value
        raise ValueError("BYTES elements must be strings")
    if datatype == "BOOL":
        if isinstance(value, bool):
            return float(value)
        raise ValueError("BOOL elements must be true or false")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{datatype} elements must be numbers")
    if datatype in FLOATS:
        if value != value:
            return None  # NaN, only possible in binary data: missing, as in pandas
        if not math.isfinite(value):
            raise ValueError(f"{datatype} elements must be finite")
        if datatype in FLOAT_LIMITS and abs(value) >= FLOAT_LIMITS[datatype][1]:
            largest = FLOAT_LIMITS[datatype][0]
            raise ValueError(f"{datatype} elements must lie between -{largest:g} and {largest:g}")
        return float(value)
    low, high = INT_RANGES[datatype]
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"{datatype} elements must be whole numbers")
    if not low <= value <= high:
        raise ValueError(f"{datatype} elements must lie between {low} and {high}")
    return int(value)


def _from_binary(raw: bytes, datatype: str, label: str, keep_bytes: bool = False) -> Any:
    """BYTES as a list of texts (``keep_bytes``: of bytes, an image input's files, issue 24);
    any other datatype as a NumPy array over ``raw``."""
    if datatype == "BYTES":
        values: list[Any] = []
        offset = 0
        while offset < len(raw):
            if offset + 4 > len(raw):
                raise BadRequest(f"{label}: the binary BYTES data ends inside a length prefix")
            (length,) = struct.unpack_from("<I", raw, offset)
            offset += 4
            chunk = raw[offset : offset + length]
            if len(chunk) != length:
                raise BadRequest(f"{label}: the binary BYTES data ends inside an element")
            try:
                values.append(bytes(chunk) if keep_bytes else chunk.decode("utf-8"))
            except UnicodeDecodeError:
                raise BadRequest(f"{label}: a BYTES element is not UTF-8 text") from None
            offset += length
        return values
    import numpy as np

    dtype = np.dtype(NUMPY_DTYPES[datatype])
    if len(raw) % dtype.itemsize:
        raise BadRequest(
            f"{label}: {len(raw)} bytes of binary data is not a whole number of "
            f"{datatype} elements ({dtype.itemsize} bytes each)"
        )
    return np.frombuffer(raw, dtype=dtype)  # type: ignore[no-any-return]


def _as_numbers(flat: Any, datatype: str) -> Any:
    """A numeric tensor's elements as one float64 array, checked as a whole; ``None`` when some
    element needs a closer look (text, a bool where numbers go, null, out of range, not whole,
    infinite): ``_check_element`` then names the first one. NaN (binary only) is missing."""
    import numpy as np

    if isinstance(flat, list):
        kinds = {type(v) for v in flat}
        if not (kinds <= {bool} if datatype == "BOOL" else kinds <= {int, float}):
            return None
        try:
            array = np.array(flat, dtype=np.float64)
        except (OverflowError, ValueError):
            return None
    else:
        array = flat.astype(np.float64)
    if datatype in INT_RANGES:
        low, high = INT_RANGES[datatype]
        if isinstance(flat, list) and not (
            (np.mod(array, 1) == 0).all() and (array >= low).all() and (array <= high).all()
        ):
            return None
    elif np.isinf(array).any():
        return None
    elif datatype in FLOAT_LIMITS and (np.abs(array) >= FLOAT_LIMITS[datatype][1]).any():
        return None  # past what the type holds: named by _check_element
    return array


def _tensor_values(
    tensor: Any,
    position: int,
    binary: memoryview | None,
    offset: int,
    images: frozenset[str] = frozenset(),
) -> tuple[str, list[int], Any, int]:
    """Name, shape and checked values of one input tensor (a float64 array for numbers, else a
    list; for a BYTES tensor of an input in ``images``, its elements as sent: texts in JSON,
    the files' bytes in binary); the new offset into ``binary``."""
    if not isinstance(tensor, dict):
        raise BadRequest(f"inputs[{position}] must be an object with name, shape, datatype, data")
    name = tensor.get("name")
    if not isinstance(name, str) or not name:
        raise BadRequest(f'inputs[{position}] needs a "name" (a string)')
    label = f"input {_name(name)}"
    datatype = tensor.get("datatype")
    if datatype not in DATATYPES:
        raise BadRequest(f'{label}: "datatype" must be one of {", ".join(DATATYPES)}')
    shape = _shape(tensor, label)
    size = math.prod(shape)
    parameters = tensor.get("parameters") or {}
    binary_size = parameters.get("binary_data_size") if isinstance(parameters, dict) else None
    if binary_size is not None:
        if binary is None or not isinstance(binary_size, int) or binary_size < 0:
            raise BadRequest(
                f"{label}: binary_data_size needs a binary body after the JSON header "
                "(header Inference-Header-Content-Length)"
            )
        if offset + binary_size > len(binary):
            raise BadRequest(f"{label}: the body holds less binary data than binary_data_size")
        keep = datatype == "BYTES" and name in images  # image files, not text (issue 24)
        raw = bytes(binary[offset : offset + binary_size])
        flat = _from_binary(raw, datatype, label, keep_bytes=keep)
        offset += binary_size
    else:
        if "data" not in tensor:
            raise BadRequest(f'{label}: "data" is missing')
        flat = _flatten(tensor["data"], label, size)
    if len(flat) != size:
        shown = f"more than {size}" if len(flat) > size else str(len(flat))
        raise BadRequest(f"{label}: shape {shape} needs {size} values; data has {shown}")
    if datatype == "BYTES" and name in images:
        return name, shape, flat, offset
    if datatype != "BYTES":
        numbers = _as_numbers(flat, datatype)
        if numbers is not None:
            return name, shape, numbers, offset
    values: list[Any] = []
    for index, value in enumerate(flat if isinstance(flat, list) else flat.tolist()):
        try:
            values.append(_check_element(value, datatype))
        except ValueError as exc:
            shown = repr(value)[:40]
            raise BadRequest(f"{label}: element {index} is {shown}; {exc}") from None
    return name, shape, values, offset


def _matrix(name: str, shape: list[int], values: Any, info: ModelInfo) -> PredictRequest:
    rows, width = shape
    if info.features and width != info.n_features:
        raise BadRequest(
            f"input {_name(name)} has shape {shape}; the model expects [rows, "
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
                f"input {_name(name)} has shape {shape}; with one tensor per column each must "
                "have shape [rows] or [rows, 1]"
            )
        if name in columns:
            raise BadRequest(f"input {_name(name)} is given more than once")
        columns[name] = values
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise BadRequest(
            "the column tensors have different numbers of rows: "
            + ", ".join(f"{_name(n)} {len(v)}" for n, v in columns.items())
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
            raise BadRequest(f"input {_name(name)} is given more than once")
        if kinds.get(name) == "image":
            if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
                raise BadRequest(
                    f"input {_name(name)} is an image input: send a BYTES tensor of shape "
                    "[rows] (or [rows, 1]), each element the base64 of an image file"
                )
            if not isinstance(values, list) or not all(isinstance(v, (str, bytes)) for v in values):
                raise BadRequest(
                    f"input {_name(name)} is an image input: its datatype is BYTES, each "
                    "element an image file (base64 in JSON, the file's bytes in binary data)"
                )
            given[name] = [v if isinstance(v, bytes) else {"b64": v} for v in values]
        elif isinstance(values, list):  # text or null among the numbers: named there
            given[name] = np.array(values, dtype=object).reshape(shape)
        else:
            given[name] = values.reshape(shape)
    return PredictRequest(Tensors(given))


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
            raise BadRequest(f"unknown output {_name(name)}; this model has outputs {offered}")
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
        name, shape, values, offset = _tensor_values(tensor, position, binary, offset, images)
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
                f"input {_name(name)} is 1-D; send one 2-D tensor of shape [rows, "
                f"{info.n_features or 'features'}], or one tensor per column named after the "
                "model's features"
            )
        elif len(shape) > 2:
            raise BadRequest(f"input {_name(name)} has {len(shape)} dimensions; at most 2")
        else:
            request = _columns(tensors)
    else:
        request = _columns(tensors)
    request.proba = "predict_proba" in outputs
    request.scores = bool(info.score_method) and info.score_method in outputs
    return InferRequest(request, outputs, request_id, explain)


# -- responses --------------------------------------------------------------------------------


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


def server_metadata() -> dict[str, Any]:
    return {"name": "winserve", "version": __version__, "extensions": []}


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
        outputs.append({"name": info.score_method, "datatype": "FP64", "shape": [-1]})
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


def _explainable(info: ModelInfo) -> bool:
    """A model of columns with a usable reference sample (``ModelInfo.extra["reference"]``)."""
    found = info.extra.get("reference")
    return isinstance(found, dict) and not found.get("problem") and not info.tensor_inputs


def error_body(error: WinserveError) -> dict[str, Any]:
    return {"error": error.message}
