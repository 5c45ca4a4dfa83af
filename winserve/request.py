"""A request's rows as a protocol decoded them: one tagged kind per shape of body (issue 23).

::

    native / mlflow / oip / the page / a CSV job
        │ decode the body
    PredictRequest(data, proba, scores, cells)
        data: Columns   {name: [value per row]}            records, MLflow "inputs" object
              Rows      [[value, ...] per row] (+ names)   lists of values; a split body
              Values    [value per row]                    a model with one input
              Matrix    float64 ndarray [rows, columns]    an OIP tensor read as a whole
              Tensors   {name: batch} or a batch           tensors and images (issue 24)
        │ winserve.validate.prepare: checked against the model's ModelInfo
    Payload (winserve.payload) ──► backend ──► model host

The kinds are frozen: a step that reshapes the rows makes a new one (``validate`` turns
``Values`` into ``Columns`` for a model with one input, named ``Rows`` into the model's
order). What the caller asks of the answer (``proba``, ``scores``) and how the cells were
read (``cells``: a CSV file's text) sit beside the rows and may be set by the view.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Columns:
    """One list per column, under the sender's names (a row's values at the same index)."""

    columns: dict[str, list[Any]]


@dataclass(frozen=True)
class Rows:
    """Lists of values: in the model's column order, or under ``names`` (a split body's
    ``"columns"``: the service picks the model's columns out of them once it has checked
    the names, so a body naming a million columns costs no million lists)."""

    rows: list[list[Any]]
    names: list[str] | None = None


@dataclass(frozen=True)
class Values:
    """One plain value per row: the one input of a model that has one (a text model)."""

    values: list[Any]


@dataclass(frozen=True)
class Matrix:
    """A numeric tensor decoded as a whole (OIP): float64, [rows, columns] in the model's
    column order."""

    matrix: Any


@dataclass(frozen=True)
class Tensors:
    """Tensors as a batch per input (``{"inputs": {name: rows}}``, or the rows of a model
    with one input, or image files by input name): checked by ``winserve.tensors``."""

    inputs: Any


RowData = Columns | Rows | Values | Matrix | Tensors


def row_count(data: RowData) -> int:
    """How many rows ``data`` holds as decoded (tensors: 0, known once they are read)."""
    if isinstance(data, Columns):
        return len(next(iter(data.columns.values()), []))
    if isinstance(data, Rows):
        return len(data.rows)
    if isinstance(data, Values):
        return len(data.values)
    if isinstance(data, Matrix):
        return int(data.matrix.shape[0])
    return 0


@dataclass(init=False)
class PredictRequest:
    """The rows of one request (``data``, one of the kinds above) and what is asked of them.

    ``n_rows`` is the rows' count as decoded (given, or counted from ``data``); for tensors it
    is set once they are read. The ``from_*`` constructors build the usual requests."""

    data: RowData
    proba: bool = False
    scores: bool = False
    # the values are a CSV file's cells: a column of kind "any" is typed as pd.read_csv
    # types it (issue 22)
    cells: bool = False
    n_rows: int = 0

    def __init__(
        self,
        data: RowData,
        *,
        proba: bool = False,
        scores: bool = False,
        cells: bool = False,
        n_rows: int | None = None,
    ) -> None:
        self.data = data
        self.proba, self.scores, self.cells = proba, scores, cells
        self.n_rows = row_count(data) if n_rows is None else n_rows

    @classmethod
    def from_columns(cls, columns: dict[str, list[Any]], proba: bool = False) -> PredictRequest:
        return cls(Columns(columns), proba=proba)

    @classmethod
    def from_rows(
        cls, rows: list[list[Any]], proba: bool = False, names: list[str] | None = None
    ) -> PredictRequest:
        return cls(Rows(rows, names), proba=proba)

    @classmethod
    def from_values(cls, values: list[Any], proba: bool = False) -> PredictRequest:
        return cls(Values(values), proba=proba)

    @classmethod
    def from_matrix(cls, matrix: Any, proba: bool = False) -> PredictRequest:
        return cls(Matrix(matrix), proba=proba)

    @classmethod
    def from_inputs(cls, inputs: Any, proba: bool = False) -> PredictRequest:
        return cls(Tensors(inputs), proba=proba)
