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


# cells as a user's file may hold them: numbers of every form, and what is not one
TOKENS = [
    "1", "-1", "+1", "1.5", ".5", "5.", "1e5", "1E-5", "+.5e+3", "00012", "-0", "4.9e-324",
    "1e-400", " 5", "5 ", "\t5", "\xa05", "\u30005", "\x0b5", "1_000", "0x10", "inf", "nan",
    "-inf", "1e400", "NaN", "infinity", "", "NA", "1.5.", "--1", "1e", "e5", "1d5", "١٢",
    "５", "\x1c5", "\x1f5", "\u200b5", "abc",
]  # fmt: skip


@pytest.mark.parametrize("separator", [",", ";", "\t"])
def test_lines_of_numbers_give_the_matrix_their_cells_give(separator: str) -> None:
    """``line_matrix`` reads a line's numbers as ``number_matrix`` reads its cells, or leaves
    the lines to it: never another float, never a number where the cells path refuses one."""
    for token in TOKENS:
        line = separator.join(["name", token, "2.5", "x"]) + "\r\n"
        from_lines = bulk.line_matrix([line, line], separator, 4, [2, 1])
        from_cells = bulk.number_matrix([("2.5", token)] * 2)
        if from_lines is not None:
            assert from_cells is not None, repr(token)
            assert from_lines.tobytes() == from_cells.tobytes(), repr(token)


def test_lines_that_are_not_whole_rows_of_numbers_are_left_to_the_rows() -> None:
    good = ["a,1,2\n", "b,3,4\r\n", "c,5,6"]  # every line ending, and none
    assert bulk.line_matrix(good, ",", 3, [2, 1]).tolist() == [[2, 1], [4, 3], [6, 5]]
    assert bulk.line_matrix(["1\n", "2\n"], ",", 1, [0]).tolist() == [[1], [2]]
    three: list[list[str | None]] = [
        ["a,1,2\n", "b,3\n", "c,4,5,6\n"],  # ragged, though the separators add up
        ["a,1,2\n", "\n"],  # a blank line
        ["a,1,\n"],  # an empty cell: missing
        ["a,1,nan\n"],  # not finite
        ["a,1,2\n", None],  # a row that is not one line
        [],
    ]
    for lines in three:
        assert bulk.line_matrix(lines, ",", 3, [1, 2]) is None, lines
    # a blank line of a one-column file (NumPy would skip it, and the rows would shift)
    for lines in (["1\n", "\n", "3\n"], ["1\n", "  \n", "3\n"]):
        assert bulk.line_matrix(lines, ",", 1, [0]) is None, lines
