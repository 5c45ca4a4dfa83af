"""A ``kind = "datetime"`` column's cells read with ONE format for the whole column.

::

    cells.convert_column (kind "datetime") ── the request's (or the CSV chunk's) column ──►
        datetime_column(feature, values, problems)
            text cells ─► column_format: ISO 8601 if every text cell is one, else the format
                          (guessed from the cells, month first then day first) that reads the
                          most of them ─► each cell read with it (pd.to_datetime, vectorised)
            a date or time object (a workbook's cell) ─► cells.to_datetime, as before
            a number, true/false ─► refused (cells.to_datetime's message)
        ──► ISO text per row (a zone converted to UTC and dropped), a RowProblem per refused
            cell naming the format the column's other dates use

Why one format: read cell by cell, pandas guesses each cell's format alone, so in one request
"09.03.2023" became 3 September and "29.09.2022" 29 September (a new user's trial). A column is
written one way; "29.09.2022" shows it is day first, so "09.03.2023" is 9 March. A column that
never shows (every day 12 or less) gets a single reading, month first, as ``pd.to_datetime``
reads a column. A cell the chosen format does not read is refused, never read another way.
A CSV job or workbook is read chunk by chunk: its first chunk's format for a column is pinned
for the rest of the file (``pinned``, scoring/rows.py), so a later chunk that would show day
first never reads the file's dates two ways; its cells in another format are refused.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from winserve.cells import (
    DATETIME_EXAMPLE,
    RowProblem,
    is_missing,
    refused_missing,
    show,
    to_datetime,
)
from winserve.model_info import Feature

ISO = "ISO8601"
# a file's formats by column, while one of its chunks is checked (``pinned``); None: a request
_PINNED: ContextVar[dict[str, str] | None] = ContextVar("winserve_date_formats", default=None)
MAX_GUESSED = 20  # distinct cells a format is guessed from (each guess costs ~20 µs)
# strftime's codes as a person reads them, for the message of a refused cell
SAID = {
    "%Y": "YYYY",
    "%y": "YY",
    "%m": "MM",
    "%d": "DD",
    "%H": "hh",
    "%I": "hh",
    "%M": "mm",
    "%S": "ss",
    "%f": "ffffff",
    "%z": "±hh:mm",
    "%Z": "zone",
    "%p": "AM/PM",
    "%B": "month name",
    "%b": "month abbr.",
    "%A": "weekday",
    "%a": "weekday abbr.",
    "%%": "%",
}


def _guess(text: str, dayfirst: bool) -> str | None:
    try:
        from pandas.tseries.api import guess_datetime_format  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - pandas 2.0, 2.1 (2.2+ has the public name)
        from pandas._libs.tslibs.parsing import (  # type: ignore[import-untyped]
            guess_datetime_format,
        )
    with warnings.catch_warnings():  # "Parsing dates in %d.%m.%Y format when dayfirst=False"
        warnings.simplefilter("ignore")
        found: str | None = guess_datetime_format(text, dayfirst=dayfirst)
    return found


def _read(texts: Any, fmt: str) -> Any:
    """``texts`` (a Series) read with ``fmt``: UTC-naive Timestamps, NaT where it does not
    read (a zone converted to UTC and dropped, so one column never mixes zones)."""
    import pandas as pd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            read = pd.to_datetime(texts, format=fmt, errors="coerce", utc=True)
        except (ValueError, OverflowError, TypeError):  # a format pandas cannot use
            return pd.Series(pd.NaT, index=texts.index)
    return read.dt.tz_localize(None)


def column_format(texts: list[str]) -> tuple[str | None, Any]:
    """The one format of a column's text cells (stripped, none empty) and the cells read with
    it (NaT where it does not read them); None when no format reads any."""
    import pandas as pd

    series = pd.Series(texts, dtype=object)
    read = _read(series, ISO)
    best, best_read, best_count = ISO, read, int(read.notna().sum())
    if best_count == len(texts):  # the common case: ISO, unambiguous
        return best, best_read
    tried = {ISO}
    misread = list(dict.fromkeys(t for t, ok in zip(texts, read.notna(), strict=True) if not ok))
    for text in misread[:MAX_GUESSED]:
        for dayfirst in (False, True):  # month first wins a tie, as pd.to_datetime reads
            fmt = _guess(text, dayfirst)
            if fmt is None or fmt in tried:
                continue
            tried.add(fmt)
            read = _read(series, fmt)
            count = int(read.notna().sum())
            if count > best_count:
                best, best_read, best_count = fmt, read, count
                if count == len(texts):
                    return best, best_read
    return (best if best_count else None), best_read


@contextmanager
def pinned(formats: dict[str, str]) -> Iterator[None]:
    """While a file's chunk is checked: each date column read with the format in ``formats``
    (by column name), and a column's first format kept there for the next chunks."""
    token = _PINNED.set(formats)
    try:
        yield
    finally:
        _PINNED.reset(token)


def _column_read(name: str, texts: list[str]) -> tuple[str | None, Any]:
    """``column_format``, or the format the file's earlier chunks pinned for ``name``."""
    formats = _PINNED.get()
    if formats is None:
        return column_format(texts)
    if name in formats:
        import pandas as pd

        return formats[name], _read(pd.Series(texts, dtype=object), formats[name])
    fmt, read = column_format(texts)
    if fmt is not None:
        formats[name] = fmt
    return fmt, read


def said(fmt: str) -> str:
    """A format as a person reads it: "DD.MM.YYYY", "ISO 8601 (YYYY-MM-DD, hh:mm after a T)"."""
    if fmt == ISO:
        return "ISO 8601, YYYY-MM-DD with an optional time"
    out, i = [], 0
    while i < len(fmt):
        code = fmt[i : i + 2]
        if code in SAID:
            out.append(SAID[code])
            i += 2
        else:
            out.append(fmt[i])
            i += 1
    return "".join(out)


def datetime_column(feature: Feature, values: list[Any], problems: list[RowProblem]) -> list[Any]:
    """A ``kind = "datetime"`` column's values as ISO text (see the module docstring)."""
    out: list[Any] = [None] * len(values)
    texts: dict[int, str] = {}
    for index, value in enumerate(values):
        if isinstance(value, str) and value.strip():
            texts[index] = value.strip()
            continue
        try:
            out[index] = to_datetime(value)  # missing, a date object, or refused
        except ValueError as exc:
            problems.append(RowProblem(index, feature.name, str(exc)))
    if texts:
        fmt, read = _column_read(feature.name, list(texts.values()))
        example = next((t for t, ok in zip(texts.values(), read.notna(), strict=True) if ok), "")
        for (index, text), stamp in zip(texts.items(), read, strict=True):
            if stamp is not None and stamp == stamp:  # NaT != NaT
                out[index] = stamp.isoformat()
            elif fmt is None:
                problems.append(
                    RowProblem(
                        index,
                        feature.name,
                        f"expected a date and time, e.g. {DATETIME_EXAMPLE}, got {show(text)}",
                    )
                )
            else:
                problems.append(
                    RowProblem(
                        index,
                        feature.name,
                        f"expected a date and time written as the column's other dates are "
                        f"({said(fmt)}, e.g. {example!r}), got {show(text)}",
                    )
                )
    if feature.required:
        for index, value in enumerate(out):
            if value is not None and is_missing(value):
                problems.append(RowProblem(index, feature.name, refused_missing(feature)))
    return out
