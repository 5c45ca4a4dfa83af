"""A request's rows, as records: as a protocol decoded them, and as they go to the model host.

::

    native / mlflow / oip / the page / a CSV job
        │ decode the body
    PredictRequest(data, n_rows, proba=, scores=, cells=)   a typed record, no code of its own
        data: Columns   {name: [value per row]}            records, MLflow "inputs" object
              Rows      [[value, ...] per row] (+ names)   lists of values; a split body;
                                                           one record (its row, its names)
              Values    [value per row]                    a model with one input
              Matrix    float64 ndarray [rows, columns]    an OIP tensor read as a whole
              Tensors   {name: batch} or a batch           tensors and images (issue 24)
        │ winserve.validate.prepare: checked against the model's ModelInfo
    Payload {"matrix" | "columns" | "rows" | "tensors": …}  plain data, pickled to the host
        │ the pool merges payloads into one model call (``winserve.backends.batch``)
    backend ──► model host (winserve.host.inputs builds the model's input from the payload)

One module for both records of the rows (issue 23: ``POST /predict`` through fewer modules;
they were ``winserve.request`` and ``winserve.payload``).

**Decoded.** The kinds are frozen: a step that reshapes the rows makes a new one (``validate``
turns ``Values`` into ``Columns`` for a model with one input, named ``Rows`` into the model's
order). What the caller asks of the answer (``proba``, ``scores``) and how the cells were
read (``cells``: a CSV file's text) sit beside the rows, given when the request is made.

**Sent.** Several requests' payloads merge into one model call (opportunistic batching), and
the result is split back by row counts: the pool's concern (``winserve.backends.batch``, where
issue 23 moved the helpers that did it here). Tensors (``{"tensors": {name: array | [image
bytes, ...]}}``, issue 24) merge only with tensors of the same per-row shapes and dtypes.

A number matrix may carry ``WITHIN_FLOAT32: True``: the web process found every number finite
and within float32's range while it built the matrix (``winserve.validate``), so the model host
skips its own check of the same (issue 23: the finiteness of a row was checked twice). Merged
payloads keep it only when every one of them had it.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass
from typing import Any

# ---- the rows as decoded ----


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


def count_rows(data: RowData) -> int:
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


@dataclass(slots=True)
class PredictRequest:
    """The rows of one request (``data``, one of the kinds above: the tag) and what is asked
    of them.

    ``n_rows`` is the rows' count as decoded (tensors: 0 until ``validate`` has read them).
    The protocols give it, having counted the rows as they decoded them; the ``from_*``
    constructors count them. No ``__init__`` of its own: one is made per request, and
    making it runs no winserve code (issue 23: ``PredictRequest.__init__`` was a step of every
    ``POST /predict``; making one costs half what it did: bench/RESULTS.md, issue 29)."""

    data: RowData
    n_rows: int
    _: KW_ONLY
    proba: bool = False
    scores: bool = False
    # the values are a CSV file's cells: a column of kind "any" is typed as pd.read_csv
    # types it (issue 22)
    cells: bool = False

    @classmethod
    def from_columns(cls, columns: dict[str, list[Any]], proba: bool = False) -> PredictRequest:
        data = Columns(columns)
        return cls(data, count_rows(data), proba=proba)

    @classmethod
    def from_rows(
        cls, rows: list[list[Any]], proba: bool = False, names: list[str] | None = None
    ) -> PredictRequest:
        return cls(Rows(rows, names), len(rows), proba=proba)

    @classmethod
    def from_values(cls, values: list[Any], proba: bool = False) -> PredictRequest:
        return cls(Values(values), len(values), proba=proba)

    @classmethod
    def from_matrix(cls, matrix: Any, proba: bool = False) -> PredictRequest:
        return cls(Matrix(matrix), int(matrix.shape[0]), proba=proba)

    @classmethod
    def from_inputs(cls, inputs: Any, proba: bool = False) -> PredictRequest:
        return cls(Tensors(inputs), 0, proba=proba)


# ---- the rows as sent to the model host ----

Payload = dict[str, Any]

WITHIN_FLOAT32 = "matrix_within_float32"  # key of a matrix payload: checked finite, float32-sized
# key of a payload the pool merged from several calls: each call's first row, in order (a lone
# call has none). The host answers each call alone when the batch fails (host.isolate, issue 23)
CALL_STARTS = "call_starts"
# key of a CSV job's chunk: answer with the rows' cells as text in this dialect, {"separator":
# ",", "decimal_comma": False} (host.answer_text, issue 29)
TEXTS = "texts"
# key of a job's chunk of numbers: the host lays its matrix out column by column, as
# pandas.read_csv holds a file's numbers, so a linear model's last float digits are the
# notebook's (scoring.chunk_size: "In step with the notebook")
COLUMN_MAJOR = "column_major"
FLOAT32_MAX = 3.4028234663852886e38  # float(np.finfo(np.float32).max)
