"""One prediction in the model host: the payload made the model's input, the model called, its
output made plain data, the answer record.

::

    web process ── payload (plain data; a matrix as raw bytes + shape) ──► Predictor.predict
        build_input: the model's input (the matrix copied once, as the model may write to it)
        _answer:     model.predict / predict_proba / the score method, under scikit-learn's
                     assume_finite when the web process checked the numbers (issue 23: once);
                     with probabilities, one predict_proba call gives the labels too where
                     the model's class is one whose predict is their argmax (``labels``,
                     issue 29); a forest's summed without joblib (``forest_proba``)
        plain:       builtins, NaN as None ──► Predicted | Failed (``host.answers``)
        a call that raised on several rows: the failing rows isolated (``isolate``)

The whole of a prediction's path in the host, in one module (issue 23: a newcomer follows it
through one file); ``ModelHost`` (``model_host.py``) is a ``Predictor`` that loads and describes
the model it predicts with. ``describe``, ``columns`` and the compile probes use ``plain`` at
load.

Payload shapes (built by ``winserve.service``):
- ``{"matrix": float64 ndarray}``: every column numeric, already in the model's column order
  (a missing value is NaN); from the web process it comes as ``{MATRIX_BYTES: its buffer,
  MATRIX_SHAPE: (rows, columns)}``, cheaper to pickle (``winserve.backends.replica``), copied
  once here into the array the model gets; with ``WITHIN_FLOAT32: True`` when the web
  process found every number finite and within float32's range (``winserve.validate``);
- ``{"columns": {name: [values...]}}``: mixed kinds, one list per column (a missing value is
  NaN, whatever the column's kind);
- ``{"rows": [[...], ...]}``: the model declares no columns; passed on as an array;
- ``{"tensors": {name: array | [image bytes, ...]}}``: a model that takes tensors or images
  (issue 24) gets ``{name: array}`` from ``winserve.host.tensors``.

A column of kind ``any`` (no step of the model declares one, issue 22) gets the dtype pandas
infers from its values, as ``pd.DataFrame(records)`` does; a model whose first step is a
DictVectorizer (``records_input``) gets a list of dicts, one per row.

The input is built as pandas would build it from the same rows in the data scientist's
notebook, with the training dtypes where the model keeps them: a model fitted on a DataFrame
gets a DataFrame with the same column names (float64 numbers, object text with NaN where a
value is missing, bool, and ``category`` with the training categories where the model needs
one, as LightGBM does; datetime64 where the model card says ``kind = "datetime"``); a
model fitted on a list of documents gets a list of strings.
"""

from __future__ import annotations

import contextlib
import functools
import math
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

from winserve.host import linear
from winserve.host.answer_text import as_text
from winserve.host.answers import INPUT_ERRORS, PredictAnswer, Predicted, error_record, failure
from winserve.host.tensors import feed, takes_tensors
from winserve.rows import CALL_STARTS, COLUMN_MAJOR, TEXTS, WITHIN_FLOAT32

__all__ = [
    "MATRIX_BYTES",
    "MATRIX_SHAPE",
    "WITHIN_FLOAT32",
    "Predictor",
    "all_finite_matrix",
    "build_input",
    "finite_switch",
    "plain",
    "quiet_feature_names",
]

FEATURE_NAMES_WARNING = "X does not have valid feature names"

MATRIX_BYTES = "matrix_f64"  # a float64 matrix's bytes, C order
MATRIX_SHAPE = "matrix_shape"
KIND_DTYPES = {
    "number": "float64",
    "category": "object",
    "string": "object",
    "bool": "object",
    "any": "object",
    "datetime": "datetime64[ns]",
}


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _series(values: list[Any], feature: dict[str, Any]) -> Any:
    import pandas as pd

    if feature.get("dtype") == "category":
        categories = list(feature.get("categories") or [])
        if not categories:  # categories the model keeps to itself (XGBoost re-codes by name)
            return pd.Series(pd.Categorical([None if _missing(v) else v for v in values]))
        known = set(categories)
        # a value the model never saw is missing to it (as LightGBM's own set_categories()
        # makes it); pandas is about to refuse building such a Categorical, so say it here
        cleaned = [v if not _missing(v) and v in known else None for v in values]
        return pd.Series(pd.Categorical(cleaned, categories=categories))
    if feature["kind"] == "any":
        # as sent: the dtype pandas infers, as pd.DataFrame(records) does (issue 22)
        return pd.Series(values)
    if feature["kind"] == "datetime":
        # the card's kind = "datetime" (issue 22): ISO text from the web process (or the
        # card's example) to datetime64, as pd.to_datetime reads it; missing is NaT
        return pd.Series(pd.to_datetime([None if _missing(v) else v for v in values]))
    if feature["kind"] == "bool" and not any(_missing(v) for v in values):
        return pd.Series(values, dtype="bool")
    return pd.Series(values, dtype=KIND_DTYPES[feature["kind"]])


def all_finite_matrix(payload: dict[str, Any]) -> bool:
    """Whether ``payload`` is a number matrix without NaN or infinities."""
    import numpy as np

    if MATRIX_BYTES in payload:
        return bool(np.isfinite(np.frombuffer(payload[MATRIX_BYTES], dtype=np.float64)).all())
    matrix = payload.get("matrix")
    if matrix is None or getattr(matrix, "dtype", None) != np.float64:
        return False
    return bool(np.isfinite(matrix).all())


def build_input(
    payload: dict[str, Any],
    features: list[dict[str, Any]],
    names_known: bool,
    arrays_ok: bool,
    text_input: bool = False,
    records_input: bool = False,
    tensors: bool | None = None,
) -> Any:
    """``arrays_ok``: the model was checked at load time to answer the same on a plain array
    as on a DataFrame, so numeric rows skip building one (2.9 ms → 0.8 ms per call for a
    scaler + logistic regression on 30 columns, measured). ``tensors``: whether the model
    takes tensors or images, decided once at load (``takes_tensors``; None: asked here)."""
    import numpy as np

    if tensors is None:
        tensors = takes_tensors(features)
    if tensors or "tensors" in payload:  # tensors and images (issue 24)
        return feed(payload, features)
    if MATRIX_BYTES in payload:
        # the one copy of the matrix on its way (issue 23): the model may write into its
        # input, as it could into an unpickled array, and the payload must stay as sent for
        # the rows retried alone when a batch fails (ModelHost._isolate)
        # A job's chunk is copied column by column (the same one copy), as pandas.read_csv
        # holds a file's numbers: a linear model's last digits are then the notebook's
        sent = np.frombuffer(payload[MATRIX_BYTES], dtype=np.float64)
        shaped = sent.reshape(payload[MATRIX_SHAPE])
        payload = {"matrix": shaped.copy(order="F" if payload.get(COLUMN_MAJOR) else "C")}
    elif payload.get(COLUMN_MAJOR) and "matrix" in payload:  # not through a pipe
        payload = {"matrix": np.asfortranarray(payload["matrix"])}
    matrix = payload.get("matrix")
    if matrix is not None and not (records_input or text_input) and (not names_known or arrays_ok):
        return matrix  # the usual call: no list of names made for it (issue 29)
    names = [f["name"] for f in features]
    if records_input and "matrix" in payload:
        matrix = payload["matrix"]
        payload = {"columns": {n: matrix[:, i].tolist() for i, n in enumerate(names)}}
    if text_input:
        if "columns" in payload:
            return list(payload["columns"][names[0]])
        return [row[0] for row in payload["rows"]]
    if "matrix" in payload:
        matrix = payload["matrix"]
        if not names_known or arrays_ok:
            return matrix
        import pandas as pd

        return pd.DataFrame(matrix, columns=names, copy=False)
    if "columns" in payload and records_input:
        # a DictVectorizer first: one dict per row, as model.predict(records) takes them
        columns = payload["columns"]
        rows = zip(*map(columns.get, names), strict=True)
        return [dict(zip(names, row, strict=True)) for row in rows]
    if "columns" in payload:
        columns = payload["columns"]
        if names_known:
            import pandas as pd

            return pd.DataFrame({f["name"]: _series(columns[f["name"]], f) for f in features})
        # a model fitted on a NumPy array of numbers gets one of floats, as it was fitted on
        numbers = all(f["kind"] == "number" for f in features)
        return np.array([columns[n] for n in names], dtype=np.float64 if numbers else object).T
    return np.asarray(payload["rows"])


class Predictor:
    """What a prediction needs of the loaded model, set by ``ModelHost`` at load, and the
    prediction itself. Not thread-safe by contract: one caller at a time."""

    _model: Any
    _features: list[dict[str, Any]]
    _names_known: bool
    _arrays_ok: bool
    _text_input: bool
    _records_input: bool  # a DictVectorizer first: rows as dicts (issue 22)
    _tensors: bool  # the model takes tensors or images (issue 24)
    _score_method: str
    _per_output: bool  # predict_proba answers one array per output (issue 22)
    _quiet_in: object  # the filter list quiet_feature_names() went into
    # predict's labels from predict_proba's answer, when checked the same at load (issue 29)
    _derive: Callable[[Any], Any] | None
    # a forest's predict_proba without joblib's per-tree wrapper, checked at load (issue 29)
    _summed: Callable[[Any], Any] | None
    _summed_predict: Callable[[Any], Any] | None  # a regression forest's, the same way
    # a linear model's arithmetic without its input checks, checked at load (issue 29)
    _direct: linear.Direct | None
    _finite_context: Callable[[], contextlib.AbstractContextManager[Any]] | None

    def predict(self, payload: dict[str, Any], proba: bool, scores: bool = False) -> PredictAnswer:
        """The model's answer for the rows; when it raises on several rows, each call merged
        into them is answered alone and the rows that fail are found in this same call
        (``isolate.refused``): a call refused as a whole gets the model's error (issue 23)."""
        if self._model is None:
            return failure("NotLoaded", "no model loaded")
        began = time.perf_counter()
        try:
            answer = self._answer(payload, proba, scores)
        except Exception as exc:
            failed = error_record(exc)
        else:
            asked = payload.get(TEXTS)  # a CSV job's chunk, to be written (issue 29)
            if asked is not None:
                answer = as_text(answer, asked)
            answer["seconds"] = time.perf_counter() - began
            return answer
        from winserve.host import isolate  # it reads this module's names: imported when used

        asked = scores and bool(self._score_method)
        return isolate.refused(payload, self._answer, proba, asked, failed)

    def _answer(self, payload: dict[str, Any], proba: bool, scores: bool) -> Predicted:
        frame = build_input(
            payload,
            self._features,
            self._names_known,
            self._arrays_ok,
            self._text_input,
            self._records_input,
            self._tensors,
        )
        if self._arrays_ok and warnings.filters is not self._quiet_in:
            self._quiet_in = quiet_feature_names()  # someone's catch_warnings() ended
        try:
            # a matrix the web process marked (issue 23) needs no second look (float32.py)
            if self._finite_context is not None and (
                payload.get(WITHIN_FLOAT32) or _within_float32(payload)
            ):
                if self._direct is not None:
                    # a finite matrix, checked: a linear model's own arithmetic (linear.py)
                    # each call of a merged batch apart: a user's last digits never
                    # depend on the others' rows (linear.by_call)
                    starts = payload.get(CALL_STARTS)
                    answered = linear.by_call(self._direct, frame, proba, starts)
                    if answered is not None:
                        return self._scored(frame, scores, plain(answered[0]), answered[1])
                with self._finite_context():
                    return self._outputs(frame, proba, scores)
            return self._outputs(frame, proba, scores)
        except INPUT_ERRORS as exc:
            from winserve.host import float32

            beyond = float32.beyond([str(f["name"]) for f in self._features], payload)
            if not beyond:
                raise
            # scikit-learn names neither the row nor the column of a number too large for
            # float32 ("Input X contains infinity or a value too large …"): name the column,
            # the row is named by whoever isolates it (issue 22)
            raise ValueError(f"{str(exc).strip()} ({beyond})") from exc

    def _outputs(self, frame: Any, proba: bool, scores: bool) -> Predicted:
        if self._derive is not None and (proba or self._summed is not None):
            # one model call for both (issue 29): this model's predict is, in its source,
            # the argmax of these probabilities, and said the same on the load's rows
            # (``host.labels``); a row it cannot be sure of asks predict, as before. A
            # forest's probabilities summed here (``host.forest_proba``) cost less than its
            # predict: labels alone come that way too
            if self._summed is not None:
                raw = self._summed(frame)
            else:
                raw = self._model.predict_proba(frame)
            labels = self._derive(raw)
            predictions = plain(self._model.predict(frame) if labels is None else labels)
        else:
            predict = self._summed_predict or self._model.predict
            predictions = plain(predict(frame))
            raw = self._model.predict_proba(frame) if proba else None
        return self._scored(frame, scores, predictions, raw if proba else None)

    def _scored(self, frame: Any, scores: bool, predictions: Any, raw: Any) -> Predicted:
        """The answer record: ``predictions``, the probabilities ``raw`` (None: not asked)
        and the scores when asked."""
        probabilities = None
        if raw is not None:
            probabilities = _per_row(raw) if self._per_output else plain(raw)
        scored = None
        if scores and self._score_method:
            scored = plain(getattr(self._model, self._score_method)(frame))
        return {
            "ok": True,
            "predictions": predictions,
            "probabilities": probabilities,
            "scores": scored,
        }


def _within_float32(payload: dict[str, Any]) -> bool:
    from winserve.host import float32  # it reads this module's names: imported when used

    return float32.within(payload)


def _per_row(outputs: Any) -> list[Any]:
    """A multi-output classifier's predict_proba (one array per output, rows × classes) as
    one entry per row: that row's probabilities for each output."""
    per_output = [plain(each) for each in outputs]
    rows = len(per_output[0]) if per_output else 0
    return [[output[row] for output in per_output] for row in range(rows)]


def finite_switch() -> Callable[[], contextlib.AbstractContextManager[Any]] | None:
    """scikit-learn's own switch for skipping its NaN/infinity check of each input, for a
    number matrix already known to hold neither (checked in the host, ~4 us): the check is
    ~0.2 ms of the 0.7 ms a one-row predict of a scaler + logistic regression pipeline costs
    (scikit-learn 1.9, measured; issue 14). Any other input keeps the check, and so the
    model's own error for a NaN it refuses. None when scikit-learn is not loaded (a model
    without it, e.g. ONNX), which the switch would not concern."""
    sklearn = sys.modules.get("sklearn")
    config_context = getattr(sklearn, "config_context", None)
    if config_context is None:
        return None
    # a partial, not a function of ours: one Python call less per prediction (issue 23)
    switch: Callable[[], contextlib.AbstractContextManager[Any]] = functools.partial(
        config_context, assume_finite=True
    )
    return switch


def quiet_feature_names() -> object:
    """Ignore scikit-learn's "X does not have valid feature names" warning in this process,
    and return the filter list it went into.

    A model answering a plain array exactly as a DataFrame (checked at load) gets arrays, and
    scikit-learn warns on every call that they have no column names. The filter goes in once,
    at load, not per call: ``warnings.catch_warnings()`` around each predict copied the filter
    list, added the filter and put the list back, ~3.5 µs a call (issue 14). The caller keeps
    the list returned and installs again when ``warnings.filters`` is another list: a
    ``catch_warnings()`` that ends (pytest's around each test, when the host runs in the web
    process; the load's own probes) puts back the list it had copied.
    """
    warnings.filterwarnings("ignore", message=FEATURE_NAMES_WARNING)
    return warnings.filters


BUILTIN_ITEMS = frozenset({str, int, float, bool, type(None)})  # what plain() keeps as it is


def plain(value: Any) -> Any:
    """numpy arrays and scalars (also inside object arrays) to builtins, recursively."""
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        kind = getattr(getattr(value, "dtype", None), "kind", "O")
        if kind == "f" and not _all_finite(value):
            # NaN and infinities are not JSON: a missing answer is null, as pandas writes it
            import numpy as np

            return plain(np.where(np.isfinite(value), value, None))
        if kind in "biufU":
            # numbers and text (a classifier's labels): tolist() already gives builtins, no
            # second call per row (issue 23)
            return tolist()
        value = tolist()
        if type(value) is list and set(map(type, value)) <= BUILTIN_ITEMS:
            # an object array of builtins (a classifier's string labels): as they are, not a
            # call per row (issue 29: 40 % of a CSV chunk's time in the model host)
            return value
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    item = getattr(value, "item", None)
    if callable(item) and type(value).__module__ == "numpy":
        return item()
    if isinstance(value, str) and type(value) is not str:
        return str(value)
    return value


def _all_finite(array: Any) -> bool:
    import numpy as np

    return bool(np.isfinite(array).all())
