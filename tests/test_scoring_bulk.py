"""A chunk read and written a column at a time (scoring/bulk.py, issue 29) gives exactly what
the cell-by-cell path gives: the same floats from the same texts, the same written cells; and
whatever the column path cannot take goes back to the cell-by-cell one."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from winserve.scoring import bulk
from winserve.scoring.workbook import Cells
from winserve.spreadsheet import Dialect

pytestmark = pytest.mark.timeout(30)

POINT = Dialect()
COMMA = Dialect("cp1252", ";", decimal_comma=True)

COLUMNS: list[list[Any]] = [
    [0.1, -2.5, 1e-300, 3.4e38, 1 / 3, 0.0, -0.0, 100.0],  # finite floats
    [0.5, math.nan, 1.0],  # a missing answer: an empty cell
    [math.inf, 1.0],  # an infinity
    [1e308, 1e308, 1.0],  # finite, but their sum is not
    [1, 2, -3, 10**20],  # ints
    [True, False, True],  # bools
    [1, True, 0, False],  # ints and bools: 1 and True must not be written alike
    ["setosa", "versicolor", "setosa"],  # labels
    ["=cmd()", "+1", "-1.5", "@x", "ok", "-x"],  # formulas, and a plain number
    ["a", 1, None, 2.5],  # mixed kinds
    [np.float64(0.25), np.int64(3)],  # NumPy's numbers
]


@pytest.mark.parametrize("dialect", [POINT, COMMA], ids=["point", "comma"])
@pytest.mark.parametrize("values", COLUMNS)
def test_a_column_is_written_as_write_value_writes_each_value(
    values: list[Any], dialect: Dialect
) -> None:
    assert bulk.written(values, dialect) == [dialect.write_value(v) for v in values]


def test_a_workbook_keeps_its_values_typed() -> None:
    cells = Cells("Sheet1", ("Sheet1",))
    assert bulk.written([0.5, "x", 2], cells) == [0.5, "x", 2]


def test_a_chunks_answers_are_each_rows_cells() -> None:
    predictions = ["setosa", "virginica"]
    shares = [[0.9, 0.1, 0.0], [0.2, 0.3, 0.5]]
    for dialect in (POINT, COMMA):
        write = dialect.write_value
        expected = [
            [write(p), *map(write, s), ""] for p, s in zip(predictions, shares, strict=True)
        ]
        assert bulk.answer_cells(predictions, shares, dialect) == expected
    assert bulk.answer_cells([1.5, 2.5], None, POINT) == [["1.5", ""], ["2.5", ""]]
    # a multi-output model's rows hold one prediction per output: row by row instead
    assert bulk.answer_cells([[1, 2], [3, 4]], None, POINT) is None


def test_plain_numbers_become_the_floats_the_cell_path_reads() -> None:
    texts = [("5.1", " 3.5 ", "1e3", "-0.25"), ("1_000", "+2", ".5", "7")]
    matrix = bulk.number_matrix(texts)
    assert matrix is not None and matrix.dtype == np.float64 and matrix.shape == (2, 4)
    assert matrix.tolist() == [[float(c) for c in row] for row in texts]


@pytest.mark.parametrize(
    "cell",
    ["", "NA", "nan", "inf", "-Infinity", "1e400", "abc", "True", "5,1", "0x10"],
)
def test_anything_but_a_plain_finite_number_goes_cell_by_cell(cell: str) -> None:
    """Missing values, infinities, words, bools and decimal commas each have their own rule
    (and message) in the cell-by-cell path: the chunk is not read here."""
    assert bulk.number_matrix([("1.5", "2.5"), ("3.5", cell)]) is None


def test_cells_are_picked_by_position() -> None:
    rows = [["id1", "5.1", "x", "3.5"], ["id2", "4.9", "y", "3.0"]]
    assert bulk.picked(rows, [1, 3]) == [("5.1", "3.5"), ("4.9", "3.0")]
    assert bulk.picked(rows, [3]) == [("3.5",), ("3.0",)]


def test_decimal_commas_become_the_floats_read_number_gives() -> None:
    texts = [("5,1", "3", ",5", "-1,25e3"), ("+2,0", "10", "0,001", "7")]
    read = bulk.comma_numbers(texts)
    assert read is not None
    matrix, cells = read
    assert cells == [tuple(COMMA.read_number(c) for c in row) for row in texts]
    assert matrix.tolist() == [[float(COMMA.read_number(c)) for c in row] for row in texts]


@pytest.mark.parametrize("cell", ["", "NA", "5.1", "5,", " 5,1", "1,2,3", "1,5e400", "5\n6", "x"])
def test_a_decimal_comma_chunk_with_anything_else_goes_cell_by_cell(cell: str) -> None:
    assert bulk.comma_numbers([("1,5", "2"), ("3,5", cell)]) is None
