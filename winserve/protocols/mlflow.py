"""MLflow's scoring protocol (``mlflow models serve``), so MLflow clients work unchanged.

``POST /invocations`` takes JSON with exactly one of ``dataframe_split``, ``dataframe_records``,
``instances`` or ``inputs``, or a ``text/csv`` body with a header line (cells read as
``pd.read_csv`` reads them: an empty cell or ``NA`` is a missing value). The method that
answers is the one MLflow's server uses: the MLflow folder's ``predict_fn`` (``predict``
otherwise); ``params`` are applied exactly when MLflow would, i.e. for an MLflow folder whose
signature has a params schema (``params.predict_method``, ``predict`` or ``predict_proba``,
when the schema declares it), and are otherwise ignored, as ``mlflow models serve`` ignores
them (issue 22). The answer is ``{"predictions": [...]}``; errors are
``{"error_code": ..., "message": ...}`` with MLflow's statuses (400, 415 for other content
types or charsets) and codes (``INVALID_PARAMETER_VALUE`` where the columns do not match the
model, or a parameter is wrong). As in MLflow's own server, content types are matched as the
code does it (``text/csv``, not the documented ``application/csv``).

Explanations (issue 25) are winserve's own extension: ``"params": {"explain": true}`` (or the
query ``?explain=true``, the only way for a CSV body) adds each row's Shapley values beside
the predictions, ``{"predictions": [...], "explanations": [...]}``, as ``/predict?explain=true``
gives them. ``explain`` is taken out of ``params`` before they are read for the model: it is
never a parameter of the model's, whatever its signature declares.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any, Required, TypedDict

from winserve.errors import (
    BadRequest,
    SchemaMismatch,
    UnsupportedMediaType,
    WinserveError,
    value_count,
)
from winserve.model_info import ModelInfo
from winserve.protocols import native
from winserve.rows import PredictRequest
from winserve.spreadsheet import NA_VALUES

INPUT_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")
INPUT_SET = frozenset(INPUT_KEYS)
SPLIT_KEYS = frozenset({"columns", "data"})
ERROR_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    404: "RESOURCE_DOES_NOT_EXIST",
    413: "REQUEST_LIMIT_EXCEEDED",
    415: "BAD_REQUEST",
    500: "INTERNAL_ERROR",
    409: "INVALID_STATE",  # an explanation asked of a model without a reference sample
    503: "TEMPORARILY_UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
SUPPORTED = "application/json or text/csv"
PREDICT_METHODS = ("predict", "predict_proba")


class InvalidParameter(BadRequest):
    """A ``params`` entry MLflow's scikit-learn flavour would refuse."""


# MLflow answers a schema or parameter problem with INVALID_PARAMETER_VALUE (mlflow models serve)
INVALID_PARAMETER = (SchemaMismatch, InvalidParameter)


EXPLAIN = "explain"  # winserve's own entry of params (issue 25), never the model's


@dataclass(frozen=True)
class Invocation:
    request: PredictRequest
    params: Any = None  # as sent, less ``explain``; ``predict_method`` decides what they mean
    explain: bool = False  # params.explain: each row's explanation beside its prediction


def _explain_param(value: Any) -> bool:
    """``params.explain``: JSON true or false (the texts ``"true"``/``"false"`` too, as MLflow
    clients that send every parameter as a string do); else ``InvalidParameter``."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise InvalidParameter(f"params.explain must be true or false; got {str(value)[:40]!r}")


def split_params(params: Any) -> tuple[Any, bool]:
    """``params`` without winserve's ``explain``, and whether it asked for explanations."""
    if not isinstance(params, dict) or EXPLAIN not in params:
        return params, False
    rest = {k: v for k, v in params.items() if k != EXPLAIN}
    return (rest or None), _explain_param(params[EXPLAIN])


def content_kind(mimetype: str, params: dict[str, str]) -> str:
    """``json`` or ``csv``; 415 for anything else, as MLflow's server answers."""
    if mimetype not in ("application/json", "text/csv"):
        raise UnsupportedMediaType(
            f"content type {mimetype or 'none'!r} is not supported; send {SUPPORTED}"
        )
    charset = params.get("charset", "utf-8").lower()
    if charset not in ("utf-8", "utf8"):
        raise UnsupportedMediaType("The scoring server only supports UTF-8")
    extra = sorted(set(params) - {"charset"})
    if extra:
        raise UnsupportedMediaType(
            f"content type parameters {', '.join(extra)} are not supported: the scoring "
            "protocol changed in MLflow 2.0; send one of "
            + ", ".join(INPUT_KEYS)
            + " in a JSON body"
        )
    return "json" if mimetype == "application/json" else "csv"


def _columns(inputs: dict[str, Any]) -> PredictRequest:
    lengths = {len(v) if isinstance(v, list) else -1 for v in inputs.values()}
    if -1 in lengths or len(lengths) > 1:
        raise BadRequest(
            '"inputs" as an object must map each column to a list of values, all of the same length'
        )
    return PredictRequest.from_columns({str(k): v for k, v in inputs.items()})


def _rows_or_records(value: Any, key: str) -> PredictRequest:
    if isinstance(value, dict) and key == "inputs":
        return _columns(value)
    if not isinstance(value, list) or not value:
        raise BadRequest(f'"{key}" must be a non-empty list of rows')
    return native.decode(value, False)


def predict_method(params: Any, info: ModelInfo) -> str:
    """The method that answers: the MLflow folder's ``predict_fn`` (``predict`` for any other
    model), or ``params.predict_method`` where MLflow would apply params at all: a folder
    whose signature has a params schema declaring ``predict_method``. Without a params schema
    MLflow ignores ``params`` (it logs a warning), whatever they hold (issue 22)."""
    folder = info.extra.get("mlflow") or {}
    default = str(folder.get("predict_fn") or "predict")
    default = default if default in PREDICT_METHODS else "predict"
    declared_params = folder.get("params")
    if not declared_params or params is None:  # the usual: no params schema, or no params
        return default
    schema = {str(p.get("name")): p for p in declared_params if isinstance(p, dict)}
    if not schema:
        return default
    if not isinstance(params, dict):
        raise InvalidParameter(
            '"params" must be an object, e.g. {"predict_method": "predict_proba"}'
        )
    declared = schema.get("predict_method")
    if declared is None:  # a parameter the schema does not declare is ignored, as MLflow does
        return default
    method = params.get("predict_method", declared.get("default") or default)
    if method not in PREDICT_METHODS:
        raise InvalidParameter(
            f"params.predict_method must be one of {', '.join(map(repr, PREDICT_METHODS))}; "
            f"got {str(method)[:40]!r}"
        )
    return str(method)


def decode_json(body: Any) -> Invocation:
    request = _decode_rows(body)
    params, explain = split_params(body.get("params"))
    return Invocation(request, params, explain)


def _decode_rows(body: Any) -> PredictRequest:
    if isinstance(body, list):
        raise BadRequest(
            "The input must be a JSON dictionary with exactly one of the input "
            f"fields {set(INPUT_KEYS)}. Received a list."
        )
    if not isinstance(body, dict):
        raise BadRequest(f"The input must be a JSON dictionary; received {type(body).__name__}.")
    fields = body.keys() - {"params"}  # set operations in C (issue 29: a POST /invocations
    if len(fields) != 1 or not fields <= INPUT_SET:  # ran a comprehension for them)
        raise BadRequest(
            "The input must be a JSON dictionary with exactly one of the input "
            f"fields {set(INPUT_KEYS)}. Received dictionary with input fields: "
            f"{sorted(body)}."
        )
    (key,) = fields
    value = body[key]
    if key == "dataframe_split":
        if not isinstance(value, dict):
            raise BadRequest('"dataframe_split" must be an object with "columns" and "data"')
        if not value.keys() <= SPLIT_KEYS:  # anything else ("index", ...) is ignored
            value = {k: v for k, v in value.items() if k in SPLIT_KEYS}
        return native.decode(value, False)
    if key == "dataframe_records" and not (
        isinstance(value, list) and value and all(isinstance(r, dict) for r in value)
    ):
        raise BadRequest('"dataframe_records" must be a non-empty list of objects')
    return _rows_or_records(value, key)


def _cell(value: str) -> str | None:
    return None if value in NA_VALUES else value


def decode_csv(text: str) -> Invocation:
    reader = csv.reader(io.StringIO(text))
    try:
        rows = [row for row in reader if row]
    except csv.Error as exc:
        raise BadRequest(f"Failed to parse input as CSV: {exc}") from None
    if not rows:
        raise BadRequest("the CSV body is empty: send a header line, then rows")
    header, data = rows[0], rows[1:]
    for number, row in enumerate(data, start=2):
        if len(row) != len(header):
            raise BadRequest(
                f"CSV line {number} has {value_count(len(row))}; the header names {len(header)}"
            )
    cells = [[_cell(v) for v in row] for row in data]
    request = native.decode({"columns": header, "data": cells}, False)
    request.cells = True  # columns of kind "any" typed as pd.read_csv types them (issue 22)
    return Invocation(request)


class MlflowAnswer(TypedDict, total=False):
    """MLflow's answer to ``/invocations``; ``explanations`` is winserve's own (issue 25)."""

    predictions: Required[list[Any]]
    explanations: list[Any]


def encode(predictions: list[Any], explanations: list[Any] | None = None) -> MlflowAnswer:
    """MLflow's answer; with ``explanations`` (issue 25) they go beside the predictions."""
    if explanations is None:
        return {"predictions": predictions}
    return {"predictions": predictions, "explanations": explanations}


def error_body(error: WinserveError) -> dict[str, Any]:
    if isinstance(error, INVALID_PARAMETER):
        return {"error_code": "INVALID_PARAMETER_VALUE", "message": error.message}
    return {"error_code": ERROR_CODES.get(error.status, "BAD_REQUEST"), "message": error.message}
