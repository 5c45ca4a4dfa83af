"""The one service every protocol and page shares: validate rows against the model, predict.

Protocol modules decode their wire format into a ``PredictRequest`` (named columns, positional
rows, or plain values for a model with one input); this module checks it against the
``ModelInfo`` computed once at load time, builds the plain-data payload the model host expects,
and calls the backend. Problems name the row (counted from 1), the column and what was expected.

A missing value (JSON ``null``, an empty number, NaN) is not a problem in itself: it reaches
the model as NaN, as pandas would hand it over, and the model decides. Only where the model
said at load time that it refuses one (``Feature.required``) is it refused here, with the
model's own reason.
"""

from __future__ import annotations

import dataclasses
import datetime
import itertools
import math
import operator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from winserve import tensors
from winserve.backends.base import Backend, Prediction, row_errors
from winserve.errors import (
    BadRequest,
    ModelFailed,
    ModelInputError,
    ModelUnavailable,
    PayloadTooLarge,
    SchemaMismatch,
)
from winserve.failures import public_reason
from winserve.model_info import Feature, ModelInfo
from winserve.payload import Payload

MAX_PROBLEMS_SHOWN = 5
MAX_VALUE_SHOWN = 40
MISSING = math.nan  # what a missing value is on its way to the model, whatever the column
NUMBER_TYPES = frozenset({int, float})
FIRST = operator.itemgetter(0)
BOOL_CELLS = {
    "True": 1.0,
    "TRUE": 1.0,
    "true": 1.0,
    "False": 0.0,
    "FALSE": 0.0,
    "false": 0.0,
}  # what JSON numbers decode to (bool is not one here)
TRUE_WORDS = frozenset({"true", "1", "yes"})
FALSE_WORDS = frozenset({"false", "0", "no"})


@dataclass
class PredictRequest:
    """Rows as decoded from a protocol: ``columns`` (name → values), ``rows`` (lists in the
    model's column order) or ``values`` (one value per row, for a model with one input)."""

    columns: dict[str, list[Any]] | None = None
    rows: list[list[Any]] | None = None
    proba: bool = False
    n_rows: int = 0
    values: list[Any] | None = None
    scores: bool = False
    # a numeric tensor decoded as a whole (OIP): float64, [rows, columns] in the model's order
    matrix: Any = None
    # the column names of ``rows`` when the sender named them ({"columns": [...], "data": ...})
    names: list[str] | None = None
    # the values are a CSV file's cells: a column of kind "any" is typed as pd.read_csv
    # types it (issue 22)
    cells: bool = False
    # tensors as a batch per input ({"inputs": {name: rows}}, or the rows of a model with one
    # input): checked by ``winserve.tensors`` for a model that takes tensors or images
    inputs: Any = None

    @classmethod
    def from_columns(cls, columns: dict[str, list[Any]], proba: bool = False) -> PredictRequest:
        n_rows = len(next(iter(columns.values()), []))
        return cls(columns=columns, proba=proba, n_rows=n_rows)

    @classmethod
    def from_rows(cls, rows: list[list[Any]], proba: bool = False) -> PredictRequest:
        return cls(rows=rows, proba=proba, n_rows=len(rows))

    @classmethod
    def from_values(cls, values: list[Any], proba: bool = False) -> PredictRequest:
        return cls(values=values, proba=proba, n_rows=len(values))

    @classmethod
    def from_matrix(cls, matrix: Any, proba: bool = False) -> PredictRequest:
        return cls(matrix=matrix, proba=proba, n_rows=int(matrix.shape[0]))


class RowProblem(NamedTuple):
    row: int  # 0-based index into the request's rows
    column: str
    message: str

    def __str__(self) -> str:
        where = f"row {self.row + 1}" + (f", column {self.column!r}" if self.column else "")
        return f"{where}: {self.message}"


@dataclass
class Prepared:
    payload: Payload
    n_rows: int
    good_rows: list[int]
    problems: list[RowProblem] = field(default_factory=list)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= MAX_VALUE_SHOWN else text[:MAX_VALUE_SHOWN] + "…"


def _expected(info: ModelInfo) -> str:
    names = info.feature_names
    shown = ", ".join(repr(n) for n in names[:20])
    return shown + (f" and {len(names) - 20} more" if len(names) > 20 else "")


def is_missing(value: Any) -> bool:
    return value is None or (type(value) is float and value != value)


def _to_number(value: Any) -> float:
    kind = type(value)
    if kind is float:
        number: float = value
    elif kind is int:
        try:
            number = float(value)
        except OverflowError:
            raise ValueError(f"expected a finite number, got {_show(value)}") from None
    elif kind is str:
        text = value.strip()
        if not text:
            return MISSING
        try:
            number = float(text)
        except ValueError:
            if text in BOOL_CELLS:  # what pd.read_csv reads as a bool column
                return BOOL_CELLS[text]
            raise ValueError(f"expected a number, got {_show(value)}") from None
    elif value is None:
        return MISSING
    elif isinstance(value, (int, float)):  # numpy numbers, and bools: 1/0, as pandas hands them
        number = float(value)
    else:
        raise ValueError(f"expected a number, got {type(value).__name__} {_show(value)}")
    if number != number:
        return MISSING
    if not math.isfinite(number):
        raise ValueError(f"expected a finite number, got {_show(value)}")
    return number


def _to_bool(value: Any) -> Any:
    if is_missing(value):
        return MISSING
    if value is True or value is False:
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if not word:
            return MISSING
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    elif isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    raise ValueError(f"expected true or false, got {_show(value)}")


def _to_text(value: Any, feature: Feature, max_text: int = 10_000) -> Any:
    if isinstance(value, str):
        text = value
    elif is_missing(value):
        return MISSING
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        if _takes_only_text(feature):
            # the model refuses it (an encoder fitted on strings: "Encoders require their
            # input argument must be uniformly strings or numbers"); str(1000) would be
            # read as an unseen value, and "01000" is not "1000" (issue 22)
            example = next((c for c in feature.categories if isinstance(c, str)), "")
            shown = f", e.g. {example!r}" if example else ""
            raise ValueError(
                f"expected text (this column takes text{shown}), got the number {_show(value)}:"
                " send it as a JSON string"
            )
        text = str(value)
    else:
        raise ValueError(f"expected text, got {type(value).__name__} {_show(value)}")
    if len(text) > max_text:
        raise ValueError(
            f"the text has {len(text)} characters, more than the {max_text} allowed "
            "(setting: max_text_length)"
        )
    if feature.strict_categories and text not in feature.categories:
        allowed = ", ".join(repr(c) for c in feature.categories[:10])
        more = " …" if len(feature.categories) > 10 else ""
        raise ValueError(f"unknown value {_show(text)}; expected one of {allowed}{more}")
    return text


def _takes_only_text(feature: Feature) -> bool:
    """A column whose encoder was fitted on text categories: it refuses a number among them
    (not a pandas ``category`` column, which the model host builds from the categories)."""
    if feature.dtype == "category" or feature.kind_note == "the model card":
        return False
    return any(isinstance(c, str) for c in feature.categories)


DATETIME_EXAMPLE = "'2024-03-01T12:30'"


def to_datetime(value: Any) -> Any:
    """A value of a ``kind = "datetime"`` column (issue 22) as ``pd.to_datetime`` reads it,
    passed on as ISO text (missing: NaN, NaT to the model). A time with a zone is converted
    to UTC and its zone dropped, so one column never mixes zones (pandas refuses that)."""
    if is_missing(value) or (isinstance(value, str) and not value.strip()):
        return MISSING
    if not isinstance(value, (str, datetime.date, datetime.time)):
        shown = "true/false" if isinstance(value, bool) else type(value).__name__
        raise ValueError(
            f"expected a date and time as text, e.g. {DATETIME_EXAMPLE}, got {shown} {_show(value)}"
        )
    import pandas as pd

    try:
        stamp = pd.to_datetime(value.strip() if isinstance(value, str) else value)
    except (ValueError, OverflowError, TypeError):  # pandas' parse errors are ValueErrors
        raise ValueError(
            f"expected a date and time, e.g. {DATETIME_EXAMPLE}, got {_show(value)}"
        ) from None
    if stamp is pd.NaT:
        return MISSING
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp.isoformat()


def refused_missing(feature: Feature) -> str:
    """Why a missing value in ``feature`` is refused (the model said so at load time)."""
    reason = f" (it said: {feature.missing_reason})" if feature.missing_reason else ""
    return f"missing value, which the model does not accept in this column{reason}"


def _as_sent(
    feature: Feature, values: list[Any], problems: list[RowProblem], cells: bool
) -> list[Any]:
    """A column whose kind the model does not declare (issue 22): JSON values keep their
    JSON type, as in ``pd.DataFrame(records)``; CSV cells (``cells``) are typed as
    ``pd.read_csv`` types the column. Only a nested value (a list, an object) is refused."""
    if cells:
        values = typed_like_read_csv(values)
    for index, value in enumerate(values):
        if isinstance(value, (list, dict)):
            problems.append(
                RowProblem(index, feature.name, f"expected one value, got {type(value).__name__}")
            )
        elif feature.required and is_missing(value):
            problems.append(RowProblem(index, feature.name, refused_missing(feature)))
    return values


def typed_like_read_csv(cells: list[Any]) -> list[Any]:
    """A CSV column's cells (text, or NaN where missing) as ``pd.read_csv`` types the column:
    all whole numbers → int, all numbers → float, all True/False → bool, else the text."""
    present = [c for c in cells if isinstance(c, str)]
    if not present:
        return [MISSING] * len(cells)
    for convert in (_csv_int, _csv_float, _csv_bool):
        try:
            converted = [convert(c) if isinstance(c, str) else MISSING for c in cells]
        except ValueError:
            continue
        if convert is _csv_int and len(present) < len(cells):
            return [float(c) for c in converted]  # a missing value makes the column float
        return converted
    return [c if isinstance(c, str) else MISSING for c in cells]


def _csv_int(cell: str) -> int:
    text = cell.strip()
    if not text.lstrip("+-").isdigit():
        raise ValueError(cell)
    return int(text)


def _csv_float(cell: str) -> float:
    if "_" in cell:  # Python reads 1_000, pandas does not
        raise ValueError(cell)
    return float(cell.strip())


def _csv_bool(cell: str) -> bool:
    if cell in BOOL_CELLS:
        return BOOL_CELLS[cell] == 1.0
    raise ValueError(cell)


def _convert_column(
    feature: Feature,
    values: list[Any],
    problems: list[RowProblem],
    max_text: int,
    cells: bool = False,
) -> list[Any]:
    if feature.kind == "any":
        return _as_sent(feature, values, problems, cells)
    out: list[Any] = []
    kind = feature.kind
    required = feature.required
    for index, value in enumerate(values):
        try:
            if kind == "number":
                converted = _to_number(value)
            elif kind == "bool":
                converted = _to_bool(value)
            elif kind == "datetime":
                converted = to_datetime(value)
            else:
                converted = _to_text(value, feature, max_text)
            if required and is_missing(converted):
                raise ValueError(refused_missing(feature))
            out.append(converted)
        except ValueError as exc:
            problems.append(RowProblem(index, feature.name, str(exc)))
            out.append(None)
    return out


def _columns_by_position(
    request: PredictRequest, info: ModelInfo, problems: list[RowProblem]
) -> dict[str, list[Any]]:
    rows = request.rows or []
    width = info.n_features
    bad = set()
    for index, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != width:
            got = f"{len(row)} values" if isinstance(row, list) else type(row).__name__
            problems.append(
                RowProblem(index, "", f"has {got}; the model expects {width} ({_expected(info)})")
            )
            bad.add(index)
    return {
        f.name: [None if i in bad else row[pos] for i, row in enumerate(rows)]
        for pos, f in enumerate(info.features)
    }


def _texts_only(columns: dict[str, list[Any]], problems: list[RowProblem]) -> None:
    """A model fitted on a list of documents takes text and nothing else: a number or a
    true/false is refused as the model refuses it (a vectorizer calls ``.lower()`` on each
    document), not turned into text for it (issue 22)."""
    for name, values in columns.items():
        for index, value in enumerate(values):
            if isinstance(value, (int, float)) and not is_missing(value):
                shown = "true/false" if isinstance(value, bool) else "a number"
                problems.append(RowProblem(index, name, f"expected text, got {shown} ({value!r})"))


def _check_names(given: list[str], info: ModelInfo) -> None:
    given_set = set(given)  # sets, not list lookups: a body may name 100,000 columns
    expected = set(info.feature_names)
    missing = [n for n in info.feature_names if n not in given_set]
    unknown = [n for n in given if n not in expected]
    parts = []
    if missing:
        parts.append(
            "missing column"
            + ("s " if len(missing) > 1 else " ")
            + ", ".join(repr(n) for n in missing)
        )
    if unknown:
        parts.append(
            "unknown column"
            + ("s " if len(unknown) > 1 else " ")
            + ", ".join(repr(n) for n in unknown[:20])
        )
    if parts:
        raise SchemaMismatch("; ".join(parts) + f". The model expects: {_expected(info)}")


def _by_name_or_position(request: PredictRequest, info: ModelInfo) -> dict[str, list[Any]]:
    """The request's columns under the model's names. A model fitted without column names
    (a NumPy array, a list of texts) takes them in the order given, as it would in a
    notebook; a model with names gets them by name."""
    columns = request.columns or {}
    if list(columns) == info.feature_names or (  # the usual body: the model's columns
        len(columns) == info.n_features and columns.keys() == set(info.feature_names)
    ):
        return columns
    if (
        not info.feature_names_known
        and not info.text_input  # "text" is the name of its one input (issue 22)
        and len(columns) == info.n_features
        and set(columns) != set(info.feature_names)
    ):
        return dict(zip(info.feature_names, columns.values(), strict=True))
    _check_names(list(columns), info)
    return columns


def _named_rows(request: PredictRequest, info: ModelInfo) -> PredictRequest:
    """Rows under the sender's column names, as rows in the model's column order (names are
    checked first, so that only the model's columns are ever picked out of the rows)."""
    names = request.names or []
    plain = dataclasses.replace(request, names=None)
    if not info.features:
        raise BadRequest("this model declares no column names: send rows as lists of values")
    positional = (
        not info.feature_names_known and not info.text_input and len(names) == info.n_features
    )
    if positional and set(names) != set(info.feature_names):
        return plain  # a model fitted without names takes them in the order given
    _check_names(names, info)
    index = {name: position for position, name in enumerate(names)}
    picks = [index[name] for name in info.feature_names]
    if picks == list(range(len(names))):
        return plain
    return dataclasses.replace(plain, rows=[[row[p] for p in picks] for row in request.rows or []])


def prepare(
    request: PredictRequest,
    info: ModelInfo,
    *,
    max_rows: int,
    partial: bool = False,
    max_text: int = 10_000,
) -> Prepared:
    """Check ``request`` against the model; raise on the first kind of problem, or, with
    ``partial``, keep the good rows and report the bad ones (CSV scoring)."""
    if info.tensor_inputs:  # tensors and images: their own checks (issue 24)
        payload, n_rows = tensors.prepare(request, info, max_rows=max_rows)
        request.n_rows = n_rows  # known once the tensors are read (the request's metrics)
        return Prepared(payload, n_rows, list(range(n_rows)))
    if request.inputs is not None:  # {"inputs": ...} to a table model: a column so named
        if "inputs" not in info.feature_names:
            raise BadRequest(
                '{"inputs": ...} is for a model that takes tensors or images; this one takes '
                f"columns ({_expected(info)}): send rows as objects, or as lists of values"
            )
        request = dataclasses.replace(
            request, inputs=None, columns={"inputs": [request.inputs]}, n_rows=1
        )
    if request.n_rows == 0:
        raise BadRequest("no rows to predict: send at least one row")
    if request.n_rows > max_rows:
        raise PayloadTooLarge(
            f"{request.n_rows} rows is more than the {max_rows} allowed per "
            "request (setting: max_rows)"
        )
    if request.values is not None:
        request = _one_column(request, info)
    if request.names is not None:
        request = _named_rows(request, info)
    if request.matrix is not None:
        matrix = _whole_matrix(request, info)
        if matrix is not None:
            return Prepared({"matrix": matrix}, request.n_rows, list(range(request.n_rows)))
        request = dataclasses.replace(request, rows=request.matrix.tolist(), matrix=None)
    if not info.features:
        if request.rows is None:
            raise BadRequest("this model declares no column names: send rows as lists of values")
        return Prepared({"rows": request.rows}, request.n_rows, list(range(request.n_rows)))
    problems: list[RowProblem] = []
    if request.columns is not None:
        raw = _by_name_or_position(request, info)
        if info.all_numeric:
            # map: the loop over the columns runs in C (issue 14)
            matrix = _numbers_only(list(map(raw.__getitem__, info.feature_names)), transpose=True)
            if matrix is not None:
                return Prepared({"matrix": matrix}, request.n_rows, list(range(request.n_rows)))
    else:
        if info.all_numeric and _full_rows(request.rows or [], info.n_features):
            matrix = _numbers_only(request.rows or [], transpose=False)
            if matrix is not None:
                return Prepared({"matrix": matrix}, request.n_rows, list(range(request.n_rows)))
        raw = _columns_by_position(request, info, problems)
    if info.text_input:
        _texts_only(raw, problems)
    cells = request.cells
    columns = {
        f.name: _convert_column(f, raw[f.name], problems, max_text, cells) for f in info.features
    }
    bad = {p.row for p in problems}
    if bad and not partial:
        shown = "; ".join(str(p) for p in sorted(problems)[:MAX_PROBLEMS_SHOWN])
        more = len(problems) - MAX_PROBLEMS_SHOWN
        raise BadRequest(shown + (f" (and {more} more problems)" if more > 0 else ""))
    good = [i for i in range(request.n_rows) if i not in bad]
    if bad:
        columns = {name: [values[i] for i in good] for name, values in columns.items()}
    return Prepared(_payload(columns, info, len(good)), len(good), good, sorted(problems))


def _full_rows(rows: list[Any], width: int) -> bool:
    return all(type(row) is list and len(row) == width for row in rows)


def _numbers_only(values: list[list[Any]], *, transpose: bool) -> Any:
    """The float64 matrix of rows (or, with ``transpose``, columns) that hold plain, finite
    JSON numbers only, made by NumPy in one call; ``None`` when anything else is there (text,
    a bool, a missing value, an infinity): those take the value-by-value path, whose messages
    name the row and the column. Single rows and 10,000-row bodies alike skip that path."""
    import numpy as np

    if transpose and set(map(len, values)) == {1}:  # one row's columns: that row as it is
        values, transpose = [list(map(FIRST, values))], False
    # map/chain: the loops run in C (a Python loop over a row's values costs more than all
    # the rest here; issue 14)
    if not set(map(type, itertools.chain.from_iterable(values))) <= NUMBER_TYPES:
        return None
    try:
        matrix = np.array(values, dtype=np.float64)
    except (OverflowError, ValueError):
        return None
    if not _all_finite(values, matrix):
        return None
    return np.ascontiguousarray(matrix.T) if transpose else matrix


SMALL_MATRIX = 4096  # values: up to here Python's sum checks finiteness faster than NumPy


def _all_finite(values: list[list[Any]], matrix: Any) -> bool:
    """Whether ``matrix`` (made from ``values``) holds no NaN or infinity. For a few rows,
    the sum in Python (~0.4 us for one row of 30, against ~4 us for NumPy's
    ``isfinite().all()``, mostly its per-call cost; issue 14): NaN or an infinity anywhere
    makes the sum NaN or infinite, and a sum of finite numbers that overflows (or ints too
    large to add to a float) goes to NumPy's check instead."""
    import numpy as np

    if matrix.size <= SMALL_MATRIX:
        try:
            if math.isfinite(sum(map(sum, values))):
                return True
        except OverflowError:
            pass
    return bool(np.isfinite(matrix).all())


def _whole_matrix(request: PredictRequest, info: ModelInfo) -> Any:
    """A tensor decoded as a whole, as the model's matrix: when every input is a number and no
    value is missing where the model refuses one; else ``None`` (row by row, for the messages)."""
    import numpy as np

    matrix = request.matrix
    if not info.all_numeric or matrix.ndim != 2 or matrix.shape[1] != info.n_features:
        return None
    missing = np.isnan(matrix)
    if missing.any() and any(f.required for f in info.features):
        return None
    return np.ascontiguousarray(matrix, dtype=np.float64)


def _one_column(request: PredictRequest, info: ModelInfo) -> PredictRequest:
    """Plain values, one per row: the one input of a model that has one."""
    values = request.values or []
    if info.n_features == 1:
        return dataclasses.replace(request, values=None, columns={info.feature_names[0]: values})
    if not info.features:
        return dataclasses.replace(request, values=None, rows=[[v] for v in values])
    raise BadRequest(
        f"a list of plain values fits a model with one input; this one has {info.n_features} "
        f"({_expected(info)}): send rows as objects, or as lists of {info.n_features} values"
    )


def _payload(columns: dict[str, list[Any]], info: ModelInfo, n_rows: int) -> Payload:
    if info.all_numeric:
        import numpy as np

        matrix = np.empty((n_rows, info.n_features), dtype=np.float64)
        for position, feature in enumerate(info.features):
            matrix[:, position] = columns[feature.name]
        return {"matrix": matrix}
    return {"columns": columns}


def failed_error(reason: str, retry_after: int = 2) -> ModelFailed:
    """The error every route answers for a model that failed to load, with why in one line."""
    why = public_reason(reason) or "see the console of the server"
    return ModelFailed(f"the model failed and is not served: {why}", retry_after=retry_after)


def _rows_named(error: ModelInputError) -> ModelInputError:
    """``error`` naming the rows the model refused, each with its own reason, when the host
    isolated them in a batch (``row_errors``): "row 2: …", as a row the service itself
    refuses is named, whatever the batch's shape (records, lists, split; issue 22)."""
    found = row_errors(error)
    if found is None or not found.errors:
        return error
    failed = sorted(found.errors.items())
    shown = "; ".join(f"row {row + 1}: {e.message}" for row, e in failed[:MAX_PROBLEMS_SHOWN])
    if len(failed) > MAX_PROBLEMS_SHOWN:
        shown += f"; and {len(failed) - MAX_PROBLEMS_SHOWN} more rows"
    return ModelInputError(shown)


class Service:
    """What the views call: the model's description, and predictions for decoded rows."""

    def __init__(self, backend: Backend, *, max_rows: int, max_text: int = 10_000) -> None:
        self.backend = backend
        self.max_rows = max_rows
        self.max_text = max_text

    def info(self) -> ModelInfo:
        """The model's description; ``ModelFailed`` when its load failed (issue 22: a model
        whose sample prediction failed said "still loading", and never would be)."""
        try:
            return self.backend.describe()
        except ModelUnavailable as exc:
            health = self.backend.health()
            if health.status != "failed" or isinstance(exc, ModelFailed):
                raise
            raise failed_error(health.reason, exc.retry_after) from None

    def predict(self, request: PredictRequest, info: ModelInfo | None = None) -> Prediction:
        """Predictions for ``request``, checked against ``info``: the snapshot of the model's
        description the caller took for this request (one per request), else the current one."""
        info = info or self.info()
        prepared = prepare(request, info, max_rows=self.max_rows, max_text=self.max_text)
        try:
            return self.backend.predict(
                prepared.payload,
                # a multi-output classifier's per output: only the native API asks (issue 22)
                request.proba and (info.has_proba or bool(info.extra.get("output_classes"))),
                scores=request.scores and bool(info.score_method),
            )
        except ModelInputError as exc:
            raise _rows_named(exc) from None

    def check(self, request: PredictRequest, *, max_rows: int | None = None) -> Prepared:
        """Validate without predicting; bad rows are reported, not raised (page, CSV)."""
        limit = self.max_rows if max_rows is None else max_rows
        info = self.info()
        return prepare(request, info, max_rows=limit, partial=True, max_text=self.max_text)

    def explain(self, request: PredictRequest, info: ModelInfo | None = None) -> list[Any]:
        """Each row's explanation (issue 25, ``winserve.explaining``): its Shapley values
        against the reference sample, checked as ``predict`` checks rows."""
        from winserve import explaining

        info = info or self.info()
        explaining.require_reference(info)
        prepared = prepare(request, info, max_rows=self.max_rows, max_text=self.max_text)
        record = self.backend.ask("explain", prepared.payload, {})
        return list(explaining.answer(record)["explanations"])

    def whatif(
        self, request: PredictRequest, columns: list[str], info: ModelInfo | None = None
    ) -> dict[str, Any]:
        """One row's prediction as each of ``columns`` (all when empty) sweeps its reference
        range (issue 25): ``{"curves": [...], "classes": [...]}``."""
        from winserve import explaining

        info = info or self.info()
        explaining.require_reference(info)
        if request.n_rows != 1:
            raise BadRequest(f"what-if takes one row; {request.n_rows} were sent")
        prepared = prepare(request, info, max_rows=1, max_text=self.max_text)
        record = explaining.answer(
            self.backend.ask("whatif", prepared.payload, {"columns": columns})
        )
        return {"curves": record["curves"], "classes": record.get("classes", [])}

    def predict_prepared(self, prepared: Prepared, proba: bool, scores: bool = False) -> Prediction:
        info = self.info()
        return self.backend.predict(
            prepared.payload, proba and info.has_proba, scores=scores and bool(info.score_method)
        )
