"""A scored file's columns: which of the file's columns feeds each model input, and which
columns the result adds after the file's own.

::

    header (a CSV's first line, a sheet's first filled row)
        ──► unique_header: named, no name twice ──► positions: file column of each input
    ModelInfo ──► added_columns: prediction(s), probability <class>…, reason 1… (when
                  asked, issue 25), error, request id
              ──► error_cells: the added cells of a row that got no prediction

Both formats use these (csv_scoring, workbook_scoring), so a CSV file and a workbook are
refused, and scored into, the same columns.
"""

from __future__ import annotations

from winserve.errors import BadRequest
from winserve.model_info import ModelInfo
from winserve.scoring import reasons as reason_columns
from winserve.spreadsheet import safe_text

# the columns added after the predictions; "request id" last, so that the columns before it
# keep the places they had (issue 27)
TAIL = ("error", "request id")


def prediction_names(info: ModelInfo) -> list[str]:
    """The columns a prediction fills: one, or one per output of a multi-output model."""
    if info.n_outputs > 1:
        return [f"prediction {k + 1}" for k in range(info.n_outputs)]
    return ["prediction"]


def added_columns(info: ModelInfo, reasons: int = 0) -> list[str]:
    """The names of the columns the result adds, in order, with ``reasons`` reason columns
    (issue 25); the error is always the last cell before the request id."""
    classes = [str(c) for c in info.classes] if info.has_proba else []
    probabilities = [f"probability {c}" for c in classes]
    return [*prediction_names(info), *probabilities, *reason_columns.names(reasons), *TAIL]


def error_cells(info: ModelInfo, reason: str, reasons: int = 0) -> list[str]:
    """A row's added cells when it got no prediction: empty (its reasons too), then
    ``reason`` (no request id: the caller adds it)."""
    answers = max(1, info.n_outputs) + (len(info.classes) if info.has_proba else 0)
    return [*[""] * (answers + reasons), safe_text(reason)]


def names_text_column(first: list[str], info: ModelInfo) -> bool:
    """Whether a text model's file begins with a line naming its columns: one of the first
    line's cells is the model's text input (``text``), as the numeric path's first line names
    the model's inputs. Otherwise that line is the first text (issue: a file of texts has no
    header as often as not, and dropping its first text silently was wrong)."""
    return any(cell.strip() == info.feature_names[0] for cell in first)


def unique_header(header: list[str]) -> None:
    """Refuse a header that names nothing, or names a column twice."""
    if not header or not any(h.strip() for h in header):
        raise BadRequest("the first line must name the columns")
    seen: set[str] = set()
    for name in header:
        if not name.strip():
            continue  # unnamed columns (Excel writes them for formatted empty cells) are kept as is
        if name in seen:
            raise BadRequest(f"the column {name!r} appears twice in the first line")
        seen.add(name)


def positions(header: list[str], info: ModelInfo) -> list[int]:
    """Which file column feeds each model input; extra columns are carried through unscored."""
    if not info.features:
        return list(range(len(header)))
    index = {name.strip(): i for i, name in enumerate(header)}
    missing = [f.name for f in info.features if f.name not in index]
    if not missing:
        return [index[f.name] for f in info.features]
    if not info.feature_names_known and len(header) == info.n_features:
        return list(range(len(header)))
    shown = ", ".join(repr(n) for n in missing[:10]) + (" …" if len(missing) > 10 else "")
    found = ", ".join(repr(n.strip()) for n in header[:10]) + (" …" if len(header) > 10 else "")
    raise BadRequest(
        f"the CSV has no column{'s' if len(missing) > 1 else ''} {shown}; its first line must "
        "name the model's inputs: "
        + ", ".join(repr(n) for n in info.feature_names[:20])
        + f"; it names {found}"
    )
