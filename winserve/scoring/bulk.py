"""A chunk's numbers read, and its answers written, a column at a time (issue 29).

::

    csv_scoring.score_chunk ── the chunk's cells of a model whose every input is a number ──►
        number_matrix: ONE np.array call, float64 [rows, inputs]; None when any cell is not a
        plain finite number (empty, NA, an infinity, a word): that chunk then goes cell by
        cell (winserve.cells), whose messages name the row and the column;
        comma_numbers: the same for a file of decimal commas (``5,1``), the chunk's cells
        checked by one regular expression and their commas made points at once
    RowScorer._call ── the model's answers for a chunk ──► answer_cells: each output's and
        each class's column written at once (``written``), then a row's cells
        [prediction(s), probabilities, error ""], as ``Dialect.write_value`` writes each value

Why: a 100,000-row file of the demo model cost the web process 1.1-1.3 CPU s, a third of it
spent converting cells one at a time (text → checked float → matrix) and writing each answer
through ``write_value`` (bench/csv_scoring.py, bench/RESULTS.md "CSV scoring"). The results
are the same: a number the cell-by-cell path would have read is the same float (NumPy parses
a text as ``float()`` does, and a chunk with anything else is not read here), and a written
value is the text ``write_value`` gives it.
"""

from __future__ import annotations

import itertools
import operator
import re
from collections.abc import Sequence
from typing import Any, cast

from winserve.scoring.workbook import Cells
from winserve.spreadsheet import FORMULA_START, Dialect

FORMULA_CHARACTERS = frozenset(FORMULA_START)
# a cell Dialect.read_number turns into a number (spreadsheet.DECIMAL_COMMA), or a whole number
COMMA_NUMBER = r"[+-]?(?:\d*,\d+|\d+)(?:[eE][+-]?\d+)?"
COMMA_CELLS = re.compile(rf"(?:{COMMA_NUMBER}\n)*{COMMA_NUMBER}")
UNIT_SEPARATORS = re.compile("[\x1c-\x1f]")


def picked(rows: Sequence[Sequence[str]], positions: list[int]) -> list[tuple[str, ...]]:
    """The cells at ``positions`` of each row, as a tuple per row (the loop runs in C)."""
    if len(positions) == 1:
        [position] = positions
        return [(row[position],) for row in rows]
    return list(map(operator.itemgetter(*positions), rows))


def number_matrix(rows: Sequence[Sequence[Any]]) -> Any:
    """The rows' cells as a float64 matrix when every one is a plain finite number (as text,
    or a float); ``None`` otherwise (a missing value, an infinity, a word, a decimal comma):
    those rows go cell by cell, which names each problem and hands NaN over as it should."""
    import numpy as np

    try:
        matrix = np.array(rows, dtype=np.float64)
    except (ValueError, TypeError, OverflowError):
        return None
    if matrix.ndim != 2 or not np.isfinite(matrix).all():
        return None
    return matrix


def line_matrix(
    lines: Sequence[str | None], separator: str, width: int, positions: list[int]
) -> Any:
    """The float64 matrix of the cells at ``positions`` of ``lines`` (each a whole row of the
    file as written, without quotes: ``Rows.block``), read by NumPy's parser in C with no
    cell made a Python string (issue 29); ``None`` when any line is not ``width`` cells, or
    any of those cells is not a plain finite number as ``number_matrix`` reads it (then the
    lines are read as rows, and go as before). NumPy's parser reads a number as ``float()``
    does; it refuses what ``number_matrix`` refuses but for the non-finite (checked here) and
    cells padded with the characters 0x1c-0x1f, which ``float()`` takes for spaces (such
    lines go as before too)."""
    import numpy as np

    if not lines or None in lines:
        return None
    whole = cast(Sequence[str], lines)
    counts = set(map(operator.methodcaller("count", separator), whole))  # (a loop in C)
    if counts != {width - 1} or UNIT_SEPARATORS.search("".join(whole)):
        return None
    try:
        matrix = np.loadtxt(
            whole,
            dtype=np.float64,
            delimiter=separator,
            usecols=positions,
            comments=None,
            quotechar=None,
            ndmin=2,
        )
    except (ValueError, TypeError, OverflowError):
        return None
    if matrix.shape != (len(lines), len(positions)) or not np.isfinite(matrix).all():
        return None
    return matrix


def comma_numbers(rows: Sequence[Sequence[str]]) -> tuple[Any, list[tuple[str, ...]]] | None:
    """A file written with decimal commas (``5,1``): the rows' cells as ``Dialect.read_number``
    reads them (``5.1``) and their float64 matrix, when every cell is a plain number with a
    decimal comma or none (checked by one regular expression over the chunk, not one call a
    cell); ``None`` otherwise (a point, a space, a missing value: cell by cell)."""
    if not rows:
        return None
    width = len(rows[0])
    text = "\n".join(itertools.chain.from_iterable(rows))
    if not COMMA_CELLS.fullmatch(text) or text.count("\n") != len(rows) * width - 1:
        return None
    cells = text.replace(",", ".").split("\n")
    matrix = number_matrix([cells])
    if matrix is None:
        return None
    return matrix.reshape(len(rows), width), list(zip(*[iter(cells)] * width, strict=True))


def written(values: list[Any], dialect: Dialect | Cells) -> list[Any]:
    """``dialect.write_value`` of each of ``values`` (one output's, or one class's, answers
    for a chunk), a column at a time where the column allows it: finite floats by ``repr``
    (``write_value``'s own text), and text, ints or labels once per distinct value."""
    write = dialect.write_value
    if not isinstance(dialect, Dialect) or not values:  # a workbook keeps typed values
        return list(map(write, values))
    kinds = set(map(type, values))
    if kinds == {float}:
        total = sum(values)
        if total - total == 0:  # every value finite (NaN or an infinity would not be)
            texts = list(map(repr, values))
            return [t.replace(".", ",") for t in texts] if dialect.decimal_comma else texts
        return list(map(write, values))
    if len(kinds) == 1 and kinds <= {str, int, bool}:  # labels: each distinct one written once
        # (one kind only: 1 and True are one key of a dict, and would be written alike)
        shown = {value: write(value) for value in set(values)}
        return list(map(shown.__getitem__, values))
    return list(map(write, values))


def answer_cells(
    predictions: list[Any],
    probabilities: list[list[float]] | None,
    dialect: Dialect | Cells,
) -> list[list[Any]] | None:
    """Each row's added cells (its prediction, probabilities, an empty error) for a chunk the
    model answered whole, or ``None`` when its rows hold one prediction per output (a
    multi-output model: row by row, as before)."""
    if list in set(map(type, predictions)):  # (map: the loop runs in C)
        return None
    columns = [written(predictions, dialect)]
    if probabilities:
        # a class's column by index, not zip(*rows): that made an iterator a row (issue 29)
        columns.extend(
            written([shares[k] for shares in probabilities], dialect)
            for k in range(len(probabilities[0]))
        )
    columns.append([""] * len(predictions))
    return list(map(list, zip(*columns, strict=True)))
