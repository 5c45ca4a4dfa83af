"""The chunk's lazily read rows (scoring.lazy): what csv_scoring and the log's sample ask."""

from __future__ import annotations

import pytest

from winserve.scoring.csv_scoring import LineCells
from winserve.scoring.rows import TextShares
from winserve.spreadsheet import Dialect


def test_line_cells_reads_only_the_rows_asked_for() -> None:
    lines: list[str | None] = ['1,"a,b",3', "4,5,6", None]
    cells = LineCells(lines, ",", [2, 1])
    assert len(cells) == 3
    assert cells[0] == ("3", "a,b")
    assert cells[-2] == ("6", "5")
    assert cells[0:2] == [("3", "a,b"), ("6", "5")]
    assert list(cells)[:2] == cells[:2]
    with pytest.raises(IndexError):
        cells[3]
    with pytest.raises(IndexError):
        cells[-4]
    assert LineCells(["7;8"], ";", [1])[0] == ("8",)


def test_text_shares_read_the_floats_back_exactly() -> None:
    shares = [0.1 + 0.2, 1 / 3]
    cells = [["yes", *map(repr, shares), ""], ["no", "0.5", "0.5", ""]]
    read = TextShares(cells, Dialect(delimiter=","))
    assert read[0] == shares and read[-1] == [0.5, 0.5]
    assert [row for row in read] == [shares, [0.5, 0.5]]
    comma = TextShares([["yes", "0,25", "0,75", ""]], Dialect(delimiter=";", decimal_comma=True))
    assert comma[0] == [0.25, 0.75]
