"""The one service every protocol and page shares: validate rows against the model, predict.

Protocol modules decode their wire format into a ``PredictRequest`` (named columns or positional
rows); this module checks it against the ``ModelInfo`` computed once at load time, builds the
plain-data payload the model host expects, and calls the backend. Problems name the row
(counted from 1), the column and what was expected.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from winserve.backends.base import Backend, Prediction
from winserve.errors import BadRequest, PayloadTooLarge
from winserve.model_info import Feature, ModelInfo
from winserve.payload import Payload

MAX_PROBLEMS_SHOWN = 5
MAX_VALUE_SHOWN = 40


@dataclass
class PredictRequest:
    """Rows as decoded from a protocol: either ``columns`` (name → values) or ``rows``."""

    columns: dict[str, list[Any]] | None = None
    rows: list[list[Any]] | None = None
    proba: bool = False
    n_rows: int = 0

    @classmethod
    def from_columns(cls, columns: dict[str, list[Any]], proba: bool = False) -> PredictRequest:
        n_rows = len(next(iter(columns.values()), []))
        return cls(columns=columns, proba=proba, n_rows=n_rows)

    @classmethod
    def from_rows(cls, rows: list[list[Any]], proba: bool = False) -> PredictRequest:
        return cls(rows=rows, proba=proba, n_rows=len(rows))


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


def _to_number(value: Any) -> float:
    kind = type(value)
    if kind is float or kind is int:
        number = float(value)
    elif kind is str:
        if not value.strip():
            raise ValueError("missing value; a number is expected")
        try:
            number = float(value.strip())
        except ValueError:
            raise ValueError(f"expected a number, got {_show(value)}") from None
    elif value is None:
        raise ValueError("missing value; a number is expected")
    elif isinstance(value, bool):
        raise ValueError(f"expected a number, got {_show(value)}")
    elif isinstance(value, (int, float)):
        number = float(value)
    else:
        raise ValueError(f"expected a number, got {type(value).__name__} {_show(value)}")
    if not math.isfinite(number):
        raise ValueError(f"expected a finite number, got {_show(value)}")
    return number


def _to_text(value: Any, feature: Feature, max_text: int = 10_000) -> str:
    if isinstance(value, str):
        text = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        text = str(value)
    elif value is None:
        raise ValueError("missing value; text is expected")
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


def _convert_column(
    feature: Feature, values: list[Any], problems: list[RowProblem], max_text: int
) -> list[Any]:
    if feature.kind == "any":
        return values
    convert = _to_number if feature.kind == "number" else None
    out: list[Any] = []
    for index, value in enumerate(values):
        try:
            out.append(convert(value) if convert else _to_text(value, feature, max_text))
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


def _check_names(request: PredictRequest, info: ModelInfo) -> None:
    given = list(request.columns or {})
    expected = set(info.feature_names)
    missing = [n for n in info.feature_names if n not in set(given)]
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
        raise BadRequest("; ".join(parts) + f". The model expects: {_expected(info)}")


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
    if request.n_rows == 0:
        raise BadRequest("no rows to predict: send at least one row")
    if request.n_rows > max_rows:
        raise PayloadTooLarge(
            f"{request.n_rows} rows is more than the {max_rows} allowed per "
            "request (setting: max_rows)"
        )
    if not info.features:
        if request.rows is None:
            raise BadRequest("this model declares no column names: send rows as lists of values")
        return Prepared({"rows": request.rows}, request.n_rows, list(range(request.n_rows)))
    problems: list[RowProblem] = []
    if request.columns is not None:
        _check_names(request, info)
        raw = request.columns
    else:
        raw = _columns_by_position(request, info, problems)
    columns = {f.name: _convert_column(f, raw[f.name], problems, max_text) for f in info.features}
    bad = {p.row for p in problems}
    if bad and not partial:
        shown = "; ".join(str(p) for p in sorted(problems)[:MAX_PROBLEMS_SHOWN])
        more = len(problems) - MAX_PROBLEMS_SHOWN
        raise BadRequest(shown + (f" (and {more} more problems)" if more > 0 else ""))
    good = [i for i in range(request.n_rows) if i not in bad]
    if bad:
        columns = {name: [values[i] for i in good] for name, values in columns.items()}
    return Prepared(_payload(columns, info, len(good)), len(good), good, sorted(problems))


def _payload(columns: dict[str, list[Any]], info: ModelInfo, n_rows: int) -> Payload:
    if info.all_numeric:
        import numpy as np

        matrix = np.empty((n_rows, info.n_features), dtype=np.float64)
        for position, feature in enumerate(info.features):
            matrix[:, position] = columns[feature.name]
        return {"matrix": matrix}
    return {"columns": columns}


class Service:
    """What the views call: the model's description, and predictions for decoded rows."""

    def __init__(self, backend: Backend, *, max_rows: int, max_text: int = 10_000) -> None:
        self.backend = backend
        self.max_rows = max_rows
        self.max_text = max_text

    def info(self) -> ModelInfo:
        return self.backend.describe()

    def predict(self, request: PredictRequest) -> Prediction:
        info = self.backend.describe()
        prepared = prepare(request, info, max_rows=self.max_rows, max_text=self.max_text)
        return self.backend.predict(prepared.payload, request.proba and info.has_proba)

    def check(self, request: PredictRequest, *, max_rows: int | None = None) -> Prepared:
        """Validate without predicting; bad rows are reported, not raised (page, CSV)."""
        limit = self.max_rows if max_rows is None else max_rows
        info = self.backend.describe()
        return prepare(request, info, max_rows=limit, partial=True, max_text=self.max_text)

    def predict_prepared(self, prepared: Prepared, proba: bool) -> Prediction:
        return self.backend.predict(prepared.payload, proba and self.backend.describe().has_proba)
