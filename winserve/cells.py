"""One column's values as the model takes them: cells converted by the column's kind.

::

    validate.prepare ── a column's values (JSON values, or a CSV file's text cells) ──►
        convert_column(feature, values, problems)
            kind "number"   → float (a missing value: NaN; an infinity refused)
            kind "bool"     → True / False (true/false/1/0/yes/no as text too)
            kind "datetime" → ISO text, the column's dates read with ONE format (dates.py)
            kind "string"/"category" → text (a number refused where the encoder takes text)
            kind "any"      → as sent; CSV cells typed as pd.read_csv types the column
        ──► the converted column, and a RowProblem (row, column, why) per refused value

A missing value (JSON ``null``, an empty number, NaN) is not a problem in itself: it reaches
the model as NaN, as pandas would hand it over, and the model decides. Only where the model
said at load time that it refuses one (``Feature.required``) is it refused here, with the
model's own reason.
"""

from __future__ import annotations

import datetime
import math
from typing import Any, NamedTuple

from winserve.model_info import Feature

MAX_VALUE_SHOWN = 40
MISSING = math.nan  # what a missing value is on its way to the model, whatever the column
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
DATETIME_EXAMPLE = "'2024-03-01T12:30'"


class RowProblem(NamedTuple):
    row: int  # 0-based index into the request's rows
    column: str
    message: str

    def __str__(self) -> str:
        where = f"row {self.row + 1}" + (f", column {self.column!r}" if self.column else "")
        return f"{where}: {self.message}"


def show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= MAX_VALUE_SHOWN else text[:MAX_VALUE_SHOWN] + "…"


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
            raise ValueError(f"expected a finite number, got {show(value)}") from None
    elif kind is str:
        text = value.strip()
        if not text:
            return MISSING
        try:
            number = float(text)
        except ValueError:
            if text in BOOL_CELLS:  # what pd.read_csv reads as a bool column
                return BOOL_CELLS[text]
            raise ValueError(f"expected a number, got {show(value)}") from None
    elif value is None:
        return MISSING
    elif isinstance(value, (int, float)):  # numpy numbers, and bools: 1/0, as pandas hands them
        number = float(value)
    else:
        raise ValueError(f"expected a number, got {type(value).__name__} {show(value)}")
    if number != number:
        return MISSING
    if not math.isfinite(number):
        raise ValueError(f"expected a finite number, got {show(value)}")
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
    raise ValueError(f"expected true or false, got {show(value)}")


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
                f"expected text (this column takes text{shown}), got the number {show(value)}:"
                " send it as a JSON string"
            )
        text = str(value)
    else:
        raise ValueError(f"expected text, got {type(value).__name__} {show(value)}")
    if len(text) > max_text:
        raise ValueError(
            f"the text has {len(text)} characters, more than the {max_text} allowed "
            "(setting: max_text_length)"
        )
    if feature.strict_categories and text not in feature.categories:
        allowed = ", ".join(repr(c) for c in feature.categories[:10])
        more = " …" if len(feature.categories) > 10 else ""
        raise ValueError(f"unknown value {show(text)}; expected one of {allowed}{more}")
    return text


def _takes_only_text(feature: Feature) -> bool:
    """A column whose encoder was fitted on text categories: it refuses a number among them
    (not a pandas ``category`` column, which the model host builds from the categories)."""
    if feature.dtype == "category" or feature.kind_note == "the model card":
        return False
    return any(isinstance(c, str) for c in feature.categories)


def to_datetime(value: Any) -> Any:
    """One value of a ``kind = "datetime"`` column (issue 22) as ``pd.to_datetime`` reads it
    alone (a request's column is read with one format: dates.py), passed on as ISO text
    (missing: NaN, NaT to the model). A time with a zone is converted to UTC and its zone
    dropped, so one column never mixes zones (pandas refuses that)."""
    if is_missing(value) or (isinstance(value, str) and not value.strip()):
        return MISSING
    if not isinstance(value, (str, datetime.date, datetime.time)):
        shown = "true/false" if isinstance(value, bool) else type(value).__name__
        raise ValueError(
            f"expected a date and time as text, e.g. {DATETIME_EXAMPLE}, got {shown} {show(value)}"
        )
    import pandas as pd

    try:
        stamp = pd.to_datetime(value.strip() if isinstance(value, str) else value)
    except (ValueError, OverflowError, TypeError):  # pandas' parse errors are ValueErrors
        raise ValueError(
            f"expected a date and time, e.g. {DATETIME_EXAMPLE}, got {show(value)}"
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
    all whole numbers → int, all numbers → float, all True/False → bool, else the text. A
    workbook's cells come typed already (numbers and booleans, as ``pd.read_excel`` hands
    them over: scoring/workbook.py ``cell_input``): they stay as they are, only text is typed
    (they were all taken for missing values, and a model whose columns' kind is unknown got
    none of a workbook's numbers)."""
    present = [c for c in cells if isinstance(c, str)]
    if not present:
        return [MISSING if is_missing(c) else c for c in cells]

    def kept(c: Any) -> Any:  # what is not text: missing, or a workbook's typed value
        return MISSING if is_missing(c) else c

    for convert in (_csv_int, _csv_float, _csv_bool):
        try:
            converted = [convert(c) if isinstance(c, str) else kept(c) for c in cells]
        except ValueError:
            continue
        if convert is _csv_int and any(is_missing(c) for c in converted):
            return [float(c) for c in converted]  # a missing value makes the column float
        return converted
    return [c if isinstance(c, str) else kept(c) for c in cells]


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


def convert_column(
    feature: Feature,
    values: list[Any],
    problems: list[RowProblem],
    max_text: int,
    cells: bool = False,
) -> list[Any]:
    if feature.kind == "any":
        return _as_sent(feature, values, problems, cells)
    if feature.kind == "datetime":  # one format for the whole column (a new user's trial)
        from winserve.dates import datetime_column

        return datetime_column(feature, values, problems)
    out: list[Any] = []
    kind = feature.kind
    required = feature.required
    for index, value in enumerate(values):
        try:
            if kind == "number":
                converted = _to_number(value)
            elif kind == "bool":
                converted = _to_bool(value)
            else:
                converted = _to_text(value, feature, max_text)
            if required and is_missing(converted):
                raise ValueError(refused_missing(feature))
            out.append(converted)
        except ValueError as exc:
            problems.append(RowProblem(index, feature.name, str(exc)))
            out.append(None)
    return out
