"""The model's input and output at the host's edge: a validated payload (plain data from the
web process) turned into what the model expects (``build_input``), and what the model answers
turned back into plain data (``plain``: builtins, NaN as None), to pickle to the web process.

The two conversions of one prediction, in one module with ``ModelHost`` the only other on the
host's path (issue 23); ``describe``, ``columns`` and the compile probes use ``plain`` at load.

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

import math
from typing import Any

from winserve.host.tensors import feed, takes_tensors
from winserve.rows import WITHIN_FLOAT32

__all__ = [
    "MATRIX_BYTES",
    "MATRIX_SHAPE",
    "WITHIN_FLOAT32",
    "all_finite_matrix",
    "build_input",
    "plain",
]

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
        flat = np.frombuffer(payload[MATRIX_BYTES], dtype=np.float64).copy()
        payload = {"matrix": flat.reshape(payload[MATRIX_SHAPE])}
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


def plain(value: Any) -> Any:
    """numpy arrays and scalars (also inside object arrays) to builtins, recursively."""
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        kind = getattr(getattr(value, "dtype", None), "kind", "O")
        if kind == "f" and not _all_finite(value):
            # NaN and infinities are not JSON: a missing answer is null, as pandas writes it
            import numpy as np

            return plain(np.where(np.isfinite(value), value, None))
        if kind in "biuf":
            return tolist()  # numeric arrays: tolist() already gives builtins
        value = tolist()
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
