"""A file's rows read many at once where their lines allow (issue 29, ``Rows.block``): the same
rows, line numbers and lines as written as csv reading them one at a time, whatever the mix of
plain lines, quoted cells spanning lines, blank lines and line endings; a problem still named
by its line."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from winserve.errors import BadRequest
from winserve.scoring.csv_scoring import _chunks
from winserve.spreadsheet import Rows

PLAIN = [f"{i},{i * 0.5},name {i}\r\n" for i in range(40)]
MIXED = [
    "a,b,c\r\n",
    *PLAIN[:7],
    '1,"two\nlines",x\r\n',  # a cell over two lines of the file
    *PLAIN[7:15],
    "\r\n",  # a blank line
    '2,"quoted, with a comma",y\n',  # a quote, on one line
    *PLAIN[15:30],
    "3,4,5\n",  # a line ending of another kind
    '4,"three\r\nlines\nhere",z\r\n',
    *PLAIN[30:],
]


def _one_at_a_time(text: str) -> list[tuple[int, list[str], str | None]]:
    """What csv alone gives: each row with the number of its first line, and its line when it
    is one."""
    lines = io.StringIO(text, newline="").readlines()
    reader = csv.reader(iter(lines))
    out = []
    last = 0
    for row in reader:
        number = last + 1
        out.append((number, row, lines[number - 1] if reader.line_num == number else None))
        last = reader.line_num
    return out


@pytest.mark.parametrize("rows", [1, 3, 8, 1000])
@pytest.mark.parametrize("max_bytes", [1, 500, 1 << 22])
def test_rows_lines_and_numbers_are_csvs_own(rows: int, max_bytes: int) -> None:
    text = "".join(MIXED)
    reader = Rows(io.StringIO(text, newline=""), ",")
    header = next(reader)
    got: list[tuple[int, list[str], str | None]] = []
    for chunk, written in _chunks(reader, rows, max_bytes):
        assert 0 < len(chunk) <= rows
        got.extend((n, row, line) for (n, row), line in zip(chunk, written, strict=True))
    expected = _one_at_a_time(text)
    assert [header] == [row for _, row, _ in expected[:1]]
    assert got == expected[1:]
    assert reader.characters == len(text)


def test_a_block_of_plain_lines_is_read_at_once() -> None:
    reader = Rows(io.StringIO("".join(["a,b,c\n", *PLAIN]), newline=""), ",")
    next(reader)
    block = reader.block(10, 1 << 20)
    assert block is not None
    first, rows, lines = block
    assert first == 2 and lines == PLAIN[:10]
    assert rows == [line.rstrip("\r\n").split(",") for line in PLAIN[:10]]
    assert reader.line_num == 11
    assert reader.block(10, 1) is not None and reader.line_num == 12  # one line at least


def test_a_line_with_a_quote_is_read_row_by_row() -> None:
    reader = Rows(io.StringIO('a,b\n1,2\n"3\n4",5\n6,7\n', newline=""), ",")
    next(reader)
    assert reader.block(10, 1 << 20) is None  # the block held a quote: handed back
    assert reader.block(10, 1 << 20) is None  # until csv has read those lines
    assert [next(reader), next(reader), reader.line_num] == [["1", "2"], ["3\n4", "5"], 4]
    assert next(reader) == ["6", "7"]
    assert reader.block(10, 1 << 20) == (6, [], [])  # the end


def _problem(text: str) -> str:
    reader = Rows(io.StringIO(text, newline=""), ",")
    next(reader)
    with pytest.raises(BadRequest) as raised:
        for _ in _chunks(reader, 1000, 1 << 22):
            pass
    return raised.value.message


def test_a_problem_is_named_by_its_line() -> None:
    body: list[Any] = [f"{i},1\n" for i in range(30)]
    wide = "1," + "9" * (200 << 10) + "\n"  # a cell over csv's field limit (128 KB)
    assert "line 12 has a value longer than" in _problem("a,b\n" + "".join(body[:10]) + wide)
    long = "1," + "9" * (3 << 20) + "\n"
    assert "line 32 is longer than" in _problem("a,b\n" + "".join(body) + long)
