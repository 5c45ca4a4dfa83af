"""winserve's own JSON format (``POST /predict``).

Request bodies, all meaning the same rows:

- records: ``[{"a": 1, "b": "x"}, ...]``; a single object is one row;
- split: ``{"columns": ["a", "b"], "data": [[1, "x"], ...]}``, with ``"index"`` too as
  ``df.to_json(orient="split")`` writes it (ignored, as MLflow does; issue 22);
- positional: ``[[1, "x"], ...]`` in the model's column order;
- plain values: ``["some text", ...]``, one per row, for a model with one input (a text model);
- tensors (a model whose inputs are tensors or images, issue 24): ``{"inputs": {"<name>":
  [row, ...], ...}}``, or ``{"inputs": [row, ...]}`` for a model with one input, a row being
  nested lists of the input's shape per row, or an image as ``{"b64": "<base64 of the file>"}``;
  records (``{"<name>": row}``) and positional rows work too (``winserve.tensors``).

``null`` is a missing value. Response: ``{"predictions": [...]}`` (a list per row for a
multi-output model), plus ``"classes"`` and ``"probabilities"`` (one list per row, in the
order of ``classes``) with ``?proba=true``, and ``"scores"`` (the model's ``decision_function``
or ``score_samples``) with ``?scores=true``. Errors:
``{"error": {"code": ..., "message": ...}}`` with the error's HTTP status.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Required, TypedDict

from winserve.backends.base import Prediction
from winserve.errors import BadRequest, WinserveError, value_count
from winserve.model_info import ModelInfo
from winserve.rows import Columns, PredictRequest, Rows, Tensors, Values


class NativeAnswer(TypedDict, total=False):
    """The answer of ``POST /predict``: the predictions, and what ``?proba``, ``?scores``
    and ``?explain`` add (or why the model cannot give it)."""

    predictions: Required[list[Any]]
    classes: list[Any]
    probabilities: list[Any] | None
    probabilities_unavailable: str
    scores_from: str
    scores: list[Any] | None
    scores_unavailable: str
    explanations: list[Any]


def _records(rows: list[Any], proba: bool, scores: bool) -> PredictRequest:
    first = rows[0]
    keys = first.keys()
    if len(rows) == 1:  # the usual body: one row, kept a row under its names, as a split
        # body's are: validate takes it as it is when the names are the model's, in its order
        # (a list per column, turned back into a row, cost a third more CPU: bench/RESULTS.md,
        # issue 29)
        return PredictRequest(
            Rows([list(first.values())], list(keys)), 1, proba=proba, scores=scores
        )
    if all(row.keys() == keys for row in rows):  # every row names the same columns
        columns = {name: [row[name] for row in rows] for name in first}
        return PredictRequest(Columns(columns), len(rows), proba=proba, scores=scores)
    names: list[str] = []
    seen: set[str] = set()
    for row in rows:
        for key in row:
            if key not in seen:
                seen.add(key)
                names.append(key)
    by_name: dict[str, list[Any]] = {name: [] for name in names}
    for index, row in enumerate(rows):
        if len(row) != len(names):
            missing = [n for n in names if n not in row]
            raise BadRequest(
                f"row {index + 1}: missing column"
                f"{'s' if len(missing) > 1 else ''} " + ", ".join(repr(n) for n in missing)
            )
        for name in names:
            by_name[name].append(row[name])
    return PredictRequest(Columns(by_name), len(rows), proba=proba, scores=scores)


def _split(body: dict[str, Any], proba: bool, scores: bool) -> PredictRequest:
    columns, data = body.get("columns"), body.get("data")
    # set(map(type)): parsed JSON's names are str, never a subclass; the loop runs in C
    if not isinstance(columns, list) or not set(map(type, columns)) <= {str}:
        raise BadRequest('"columns" must be a list of column names')
    if not isinstance(data, list):
        raise BadRequest('"data" must be a list of rows')
    if len(set(columns)) != len(columns):  # linear, not columns.count() per name (O(n²))
        duplicates = sorted(c for c, n in Counter(columns).items() if n > 1)
        raise BadRequest(
            "column names appear more than once: " + ", ".join(repr(c) for c in duplicates[:20])
        )
    for index, row in enumerate(data):
        if not isinstance(row, list) or len(row) != len(columns):
            got = value_count(len(row)) if isinstance(row, list) else f"a {type(row).__name__}"
            raise BadRequest(f'row {index + 1} has {got}; "columns" names {len(columns)}')
    # kept as rows under their names: the service picks the model's columns out of them once
    # it has checked the names (a body naming a million columns costs no million lists)
    return PredictRequest(Rows(data, list(columns)), len(data), proba=proba, scores=scores)


def decode(body: Any, proba: bool, scores: bool = False) -> PredictRequest:
    """``body`` (parsed JSON) as the request it means; ``proba``, ``scores``: what the
    caller asks of the answer (``?proba=true``, ``?scores=true``)."""
    if isinstance(body, dict):
        if set(body) == {"inputs"}:  # tensors, batched per input (issue 24); rows: 0 until read
            return PredictRequest(Tensors(body["inputs"]), 0, proba=proba, scores=scores)
        if "columns" in body or "data" in body:
            # "index": what df.to_json(orient="split") writes; ignored, as MLflow's
            # /invocations ignores it (issue 22)
            extra = set(body) - {"columns", "data", "index"}
            if extra:
                raise BadRequest(
                    'a split body has only "columns" and "data" (and "index", ignored); '
                    "unexpected: " + ", ".join(repr(k) for k in sorted(extra))
                )
            return _split(body, proba, scores)
        return _records([body], proba, scores)
    if isinstance(body, list):
        if not body:
            raise BadRequest("no rows to predict: send at least one row")
        # the rows' types, found in C (map): parsed JSON holds dicts and lists, never their
        # subclasses (issue 29: two generator expressions ran on every list body)
        kinds = set(map(type, body))
        if kinds == {dict}:
            return _records(body, proba, scores)
        if kinds == {list}:
            return PredictRequest(Rows(body), len(body), proba=proba, scores=scores)
        if not kinds & {list, dict}:
            return PredictRequest(Values(body), len(body), proba=proba, scores=scores)
        raise BadRequest(
            "rows must be all objects or all lists, not a mix of both (or of plain values)"
        )
    raise BadRequest(
        'expected a JSON object (one row), a list of rows, or {"columns": [...], "data": [[...]]}'
    )


def decode_whatif(body: Any) -> tuple[PredictRequest, list[str]]:
    """``POST /whatif`` (issue 25): ``{"row": <one row, as /predict takes it>, "columns":
    ["a", ...]}`` (``columns`` optional: every input), or the row object alone."""
    if isinstance(body, dict) and "row" in body and set(body) <= {"row", "columns"}:
        columns = body.get("columns", [])
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            raise BadRequest('"columns" must be a list of column names')
        request = decode(body["row"], False)
    elif isinstance(body, dict) and "columns" not in body and "data" not in body:
        columns, request = [], decode(body, False)
    else:
        raise BadRequest(
            'expected {"row": {...one row...}, "columns": ["a", ...]} ("columns" optional: '
            "every input), or the row object alone"
        )
    if request.n_rows != 1:
        raise BadRequest(f"what-if takes one row; {request.n_rows} were sent")
    return request, list(dict.fromkeys(columns))


def from_uploads(
    files: dict[str, list[bytes]], proba: bool, scores: bool = False
) -> PredictRequest:
    """Image files uploaded as multipart/form-data, by input name (issue 24)."""
    return PredictRequest(Tensors(dict(files)), 0, proba=proba, scores=scores)


def encode(
    prediction: Prediction, info: ModelInfo, proba: bool, scores: bool = False
) -> NativeAnswer:
    body: NativeAnswer = {"predictions": prediction.predictions}
    if proba:
        per_output = info.extra.get("output_classes")
        if per_output and not info.has_proba:  # one list per output, in each (issue 22)
            body["classes"] = per_output
            body["probabilities"] = prediction.probabilities
        elif not info.has_proba:
            body["probabilities_unavailable"] = (
                "this multi-output model gives no probabilities per output"
                if info.n_outputs > 1
                else "this model has no predict_proba"
            )
        else:
            body["classes"] = list(info.classes)
            body["probabilities"] = prediction.probabilities
    if scores:
        if not info.score_method:
            body["scores_unavailable"] = "this model has no decision_function or score_samples"
        else:
            body["scores_from"] = info.score_method
            body["scores"] = prediction.scores
    return body


def error_body(error: WinserveError) -> dict[str, Any]:
    return {"error": {"code": error.code, "message": error.message}}
