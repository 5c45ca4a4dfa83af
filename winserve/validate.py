"""A decoded request checked against the model: the payload the model host takes, or why not.

::

    PredictRequest.data (winserve.rows), ModelInfo (computed once at load)
        │ prepare()
        ├─ tensors / images ─────────────────────────► winserve.tensors ─► {"tensors": ...}
        ├─ Values → Columns (one input) or Rows; named Rows → Rows in the model's order
        ├─ Matrix (OIP) of numbers, no refused NaN ────────────────────► {"matrix": ...}
        ├─ all-numeric Columns or full Rows of plain finite numbers:
        │     ONE np.array call, ONE finiteness + float32-range check ─► {"matrix": m,
        │                                                  WITHIN_FLOAT32: True if so}
        └─ anything else: value by value (winserve.cells), problems with row and column
              ─► {"matrix": ...} (all numeric) or {"columns": {name: [values]}}
    Prepared(payload, n_rows, good_rows, problems) ──► winserve.service ──► backend

The fast path is the common body (a few rows of numbers): its matrix is built by NumPy in one
call and checked once, here; the model host trusts that check (``WITHIN_FLOAT32``) instead of
making its own (issue 23: the matrix was checked here and again in the host). Problems name the
row (counted from 1), the column and what was expected; with ``partial`` (the page, CSV
scoring) the good rows go on and the bad ones are reported.
"""

from __future__ import annotations

import itertools
import math
import operator
from dataclasses import dataclass, field
from typing import Any

from winserve import tensors
from winserve.cells import RowProblem, convert_column, is_missing
from winserve.errors import BadRequest, PayloadTooLarge, SchemaMismatch, value_count
from winserve.model_info import ModelInfo
from winserve.rows import (
    FLOAT32_MAX,
    WITHIN_FLOAT32,
    Columns,
    Matrix,
    Payload,
    PredictRequest,
    RowData,
    Rows,
    Tensors,
    Values,
)

MAX_PROBLEMS_SHOWN = 5
NUMBER_TYPES = frozenset({int, float})
FIRST = operator.itemgetter(0)
SMALL_MATRIX = 4096  # values: up to here Python's sum checks finiteness faster than NumPy


@dataclass
class Prepared:
    """A request checked: the payload of its good rows, which rows those are (indexes into
    the request's rows), and a problem per refused value (with ``partial`` only)."""

    payload: Payload
    n_rows: int
    good_rows: list[int]
    problems: list[RowProblem] = field(default_factory=list)


def expected_names(info: ModelInfo) -> str:
    names = info.feature_names
    shown = ", ".join(repr(n) for n in names[:20])
    return shown + (f" and {len(names) - 20} more" if len(names) > 20 else "")


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
    data, n_rows = request.data, request.n_rows
    if isinstance(data, Tensors):  # {"inputs": ...} to a table model: a column so named
        if "inputs" not in info.feature_names:
            raise BadRequest(
                '{"inputs": ...} is for a model that takes tensors or images; this one takes '
                f"columns ({expected_names(info)}): send rows as objects, or as lists of values"
            )
        data, n_rows = Columns({"inputs": [data.inputs]}), 1
    if n_rows == 0:
        raise BadRequest("no rows to predict: send at least one row")
    if n_rows > max_rows:
        raise PayloadTooLarge(
            f"{n_rows} rows is more than the {max_rows} allowed per request (setting: max_rows)"
        )
    every_row = list(range(n_rows))
    if isinstance(data, Values):
        data = _one_column(data, info)
    if isinstance(data, Rows) and data.names is not None:
        data = _named_rows(data, info)
    if isinstance(data, Matrix):
        matrix = _whole_matrix(data.matrix, info)
        if matrix is not None:
            return Prepared({"matrix": matrix}, n_rows, every_row)
        data = Rows(data.matrix.tolist())
    if not info.features:
        if not isinstance(data, Rows):
            raise BadRequest("this model declares no column names: send rows as lists of values")
        return Prepared({"rows": data.rows}, n_rows, every_row)
    problems: list[RowProblem] = []
    if isinstance(data, Columns):
        raw = _by_name_or_position(data.columns, info)
        if info.all_numeric:
            # map: the loop over the columns runs in C (issue 14)
            fast = _number_payload(list(map(raw.__getitem__, info.feature_names)), True)
            if fast is not None:
                return Prepared(fast, n_rows, every_row)
    else:
        assert isinstance(data, Rows)  # Values and Matrix became Columns or Rows above
        if info.all_numeric and _full_rows(data.rows, info.n_features):
            fast = _number_payload(data.rows, False)
            if fast is not None:
                return Prepared(fast, n_rows, every_row)
        raw = _columns_by_position(data.rows, info, problems)
    if info.text_input:
        _texts_only(raw, problems)
    cells = request.cells
    columns = {
        f.name: convert_column(f, raw[f.name], problems, max_text, cells) for f in info.features
    }
    whole = {p.row for p in problems if not p.column}
    if whole:  # a row of the wrong length: that is its problem, not its columns' (all empty)
        problems = [p for p in problems if not (p.column and p.row in whole)]
    bad = {p.row for p in problems}
    if bad and not partial:
        shown = "; ".join(str(p) for p in sorted(problems)[:MAX_PROBLEMS_SHOWN])
        more = len(problems) - MAX_PROBLEMS_SHOWN
        raise BadRequest(shown + (f" (and {more} more problems)" if more > 0 else ""))
    good = [i for i in range(n_rows) if i not in bad]
    if bad:
        columns = {name: [values[i] for i in good] for name, values in columns.items()}
    return Prepared(_payload(columns, info, len(good)), len(good), good, sorted(problems))


def _one_column(data: Values, info: ModelInfo) -> RowData:
    """Plain values, one per row: the one input of a model that has one."""
    if info.n_features == 1:
        return Columns({info.feature_names[0]: data.values})
    if not info.features:
        return Rows([[v] for v in data.values])
    raise BadRequest(
        f"a list of plain values fits a model with one input; this one has {info.n_features} "
        f"({expected_names(info)}): send rows as objects, or as lists of {info.n_features} values"
    )


def _named_rows(data: Rows, info: ModelInfo) -> Rows:
    """Rows under the sender's column names, as rows in the model's column order (names are
    checked first, so that only the model's columns are ever picked out of the rows)."""
    names = data.names or []
    plain = Rows(data.rows)
    if not info.features:
        raise BadRequest("this model declares no column names: send rows as lists of values")
    positional = (
        not info.feature_names_known and not info.text_input and len(names) == info.n_features
    )
    if positional and set(names) != set(info.feature_names):
        return plain  # a model fitted without names takes them in the order given
    if names == info.feature_names:  # the usual: the model's columns, in its order
        return plain
    check_names(names, info)
    index = {name: position for position, name in enumerate(names)}
    picks = [index[name] for name in info.feature_names]
    if picks == list(range(len(names))):
        return plain
    return Rows([[row[p] for p in picks] for row in data.rows])


def check_names(given: list[str], info: ModelInfo) -> None:
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
        raise SchemaMismatch("; ".join(parts) + f". The model expects: {expected_names(info)}")


def _by_name_or_position(columns: dict[str, list[Any]], info: ModelInfo) -> dict[str, list[Any]]:
    """The request's columns under the model's names. A model fitted without column names
    (a NumPy array, a list of texts) takes them in the order given, as it would in a
    notebook; a model with names gets them by name."""
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
    check_names(list(columns), info)
    return columns


def _columns_by_position(
    rows: list[list[Any]], info: ModelInfo, problems: list[RowProblem]
) -> dict[str, list[Any]]:
    width = info.n_features
    bad = set()
    for index, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != width:
            got = value_count(len(row)) if isinstance(row, list) else type(row).__name__
            problems.append(
                RowProblem(
                    index, "", f"has {got}; the model expects {width} ({expected_names(info)})"
                )
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


def _full_rows(rows: list[Any], width: int) -> bool:
    # map: the loops run in C (issue 29: a generator expression per request)
    return set(map(type, rows)) == {list} and set(map(len, rows)) == {width}


def _numbers_only(values: list[list[Any]], *, transpose: bool) -> Any:
    """The float64 matrix of ``values`` when they are plain finite numbers, else ``None``."""
    payload = _number_payload(values, transpose)
    return None if payload is None else payload["matrix"]


def _number_payload(values: list[list[Any]], transpose: bool) -> Payload | None:
    """The payload of rows (or, with ``transpose``, columns) that hold plain, finite JSON
    numbers only: their float64 matrix, made by NumPy in one call, and ``WITHIN_FLOAT32`` when
    every number is within float32's range (the host then skips its own check); ``None`` when
    anything else is there (text, a bool, a missing value, an infinity): those take the
    value-by-value path, whose messages name the row and the column. Single rows and
    10,000-row bodies alike skip that path."""
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
    finite, within = _bounds(values, matrix)
    if not finite:
        return None
    if transpose:
        matrix = np.ascontiguousarray(matrix.T)
    return {"matrix": matrix, WITHIN_FLOAT32: True} if within else {"matrix": matrix}


def _bounds(values: list[list[Any]], matrix: Any) -> tuple[bool, bool]:
    """Whether ``matrix`` (made from ``values``) holds no NaN or infinity, and whether its
    numbers are all within float32's range, in ONE pass (issue 23: the host made the second).

    For a few rows, the sum of the absolute values in Python (~0.4 us for one row of 30,
    against ~4 us for a NumPy call, mostly its per-call cost; issue 14): a NaN or an infinity
    anywhere makes it NaN or infinite, and a sum within float32's range bounds every number.
    A finite sum beyond it looks at the largest number; a sum that overflows (or ints too
    large to add to a float) goes to NumPy's check."""
    if matrix.size <= SMALL_MATRIX:
        try:
            total = sum(map(abs, itertools.chain.from_iterable(values)))
            if total <= FLOAT32_MAX:
                return True, True
            if math.isfinite(total):
                return True, max(map(abs, itertools.chain.from_iterable(values))) <= FLOAT32_MAX
        except OverflowError:
            pass
    import numpy as np

    peak = np.abs(matrix).max()  # NaN compares False: the finiteness check below decides
    if peak <= FLOAT32_MAX:
        return True, True
    return bool(np.isfinite(matrix).all()), False


def _whole_matrix(matrix: Any, info: ModelInfo) -> Any:
    """A tensor decoded as a whole, as the model's matrix: when every input is a number and no
    value is missing where the model refuses one; else ``None`` (row by row, for the messages)."""
    import numpy as np

    if not info.all_numeric or matrix.ndim != 2 or matrix.shape[1] != info.n_features:
        return None
    missing = np.isnan(matrix)
    if missing.any() and any(f.required for f in info.features):
        return None
    return np.ascontiguousarray(matrix, dtype=np.float64)


def _payload(columns: dict[str, list[Any]], info: ModelInfo, n_rows: int) -> Payload:
    if info.all_numeric:
        import numpy as np

        matrix = np.empty((n_rows, info.n_features), dtype=np.float64)
        for position, feature in enumerate(info.features):
            matrix[:, position] = columns[feature.name]
        return {"matrix": matrix}
    return {"columns": columns}
