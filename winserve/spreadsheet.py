"""How a CSV from a spreadsheet program is read, and how its scored copy is written back.

Excel's "Save as CSV" writes what the PC's regional settings say: a comma or a semicolon
between values, a decimal point or a decimal comma (``5,1``), UTF-8 (with a byte-order mark) or
the Windows code page; "Unicode Text" is UTF-16 with tabs; rows copied from a sheet and pasted
into the page arrive separated by tabs. ``sniff`` works out which of these a file is, and the
scored copy is written with the same separator and decimal mark, as UTF-8 with a byte-order
mark (which every Excel opens correctly), so it opens in the same Excel the file came from.

Decimal commas are only read as such when the file is not comma-separated, some number in it
has a decimal comma that is not a thousands group (``1,5``; ``1,234`` could be either), and no
number in it has a decimal point: a guess that errs towards a clear error on a row, never a
number silently read a thousand times too small or too large.

A cell is read as ``pd.read_csv`` reads it (issue 12): empty, or one of pandas' default NA
strings (``NA_VALUES``, exactly as written: ``" NA"`` is not one, as read_csv does not strip
cells), it is a missing value, ``float("nan")`` in every kind of column, and the model decides
what to do with it.

What winserve itself writes into the scored copy (predictions, probabilities, errors, the
names of the columns it adds) never starts a formula when the file is opened in a spreadsheet
(issue 13 item 8, OWASP "CSV injection"): a cell that begins with ``=``, ``+``, ``-``, ``@``, a
tab or a carriage return gets a leading ``'``, unless it is a plain number (``-1.5`` stays a
number). The user's own cells are carried through as they were written.

Lines are read with a bound (issue 13 item 6): the first line may be as long as csv's field
limit (128 KB), any other as long as ``LINE_LIMIT``, so a file that is one endless line, or not a
CSV at all, is refused with a sentence instead of being held in memory whole.
"""

from __future__ import annotations

import codecs
import collections
import contextlib
import csv
import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from winserve.errors import BadRequest

SEPARATORS = {",": "comma", ";": "semicolon", "\t": "tab"}
DECIMAL_COMMA = re.compile(r"[+-]?\d*,\d+(?:[eE][+-]?\d+)?")
THOUSANDS_GROUP = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+")
DECIMAL_POINT = re.compile(r"[+-]?\d*\.\d+(?:[eE][+-]?\d+)?")
ENCODING_NAMES = {"utf-8-sig": "UTF-8", "utf-16": "UTF-16", "cp1252": "Windows-1252"}
# pandas' default NA strings (pandas._libs.parsers.STR_NA_VALUES, pandas 2 and 3), copied so
# that the web process needs no pandas; tests/test_spreadsheet.py keeps it equal to pandas' own
NA_VALUES = frozenset(
    {
        "",
        "#N/A",
        "#N/A N/A",
        "#NA",
        "-1.#IND",
        "-1.#QNAN",
        "-NaN",
        "-nan",
        "1.#IND",
        "1.#QNAN",
        "<NA>",
        "N/A",
        "NA",
        "NULL",
        "NaN",
        "None",
        "n/a",
        "nan",
        "null",
    }
)
MISSING = float("nan")  # a missing cell on its way to the model, as read_csv hands it over
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
SAMPLE_ROWS = 1000
BLOCK = 1 << 20
FIRST_LINE_LIMIT = csv.field_size_limit()  # 128 KB: longer, csv itself would refuse the header
LINE_LIMIT = 2 << 20  # characters; a row of a file to be scored is never this long


def _kb(characters: int) -> str:
    return f"{characters // 1024} KB" if characters < 1 << 20 else f"{characters >> 20} MB"


def first_line_too_long() -> str:
    return (
        f"the first line is longer than {_kb(FIRST_LINE_LIMIT)}; is this a CSV file? Its first "
        "line must name the columns"
    )


def _unreadable(exc: csv.Error, line: int) -> BadRequest:
    if "field limit" in str(exc):
        return BadRequest(
            f"line {line} has a value longer than {_kb(FIRST_LINE_LIMIT)}, "
            "the most a CSV cell may hold here"
        )
    return BadRequest(f"line {line} could not be read: {exc}")


class Rows:
    """``csv.reader`` over bounded lines; a line csv cannot read is named in the error.
    ``characters``: how many have been read so far (what a chunk of rows costs is counted
    from it without looking at every cell).

    Rows come one at a time (``__next__``) or, where lines hold no quote, many at once
    (``block``: the lines read and parsed in C, no Python per row; issue 29)."""

    def __init__(self, file: Any, delimiter: str) -> None:
        self.characters = 0
        self.line = ""  # the last line read, as written (a scored row may be copied from it)
        self._file = file
        self._delimiter = delimiter
        self._read = 0  # lines read from the file, either way
        self._blocked = 0  # lines read as blocks, which csv's own count does not include
        self._pending: collections.deque[str] = collections.deque()  # a block handed back
        self._ended = False  # csv asked for a line past the file's last
        self._reader = csv.reader(self._lines(), delimiter=delimiter)

    def _next_line(self) -> str:
        """The file's next line, read with a limit (a line's ending is not counted); ""
        at the end."""
        first = self._read == 0
        line: str = self._file.readline((FIRST_LINE_LIMIT if first else LINE_LIMIT) + 3)
        if not line:
            return line
        self._read += 1
        limit = FIRST_LINE_LIMIT if first else LINE_LIMIT
        if len(line) > limit and len(line.rstrip("\r\n")) > limit:
            if first:
                raise BadRequest(first_line_too_long())
            raise BadRequest(
                f"line {self._read} is longer than {_kb(limit)}; a CSV file's rows are shorter "
                "(is this a CSV file?)"
            )
        self.characters += len(line)
        self.line = line
        return line

    def _lines(self) -> Iterator[str]:
        """The lines csv reads: a block's handed back first, then the file's."""
        while True:
            if self._pending:
                line = self.line = self._pending.popleft()
            else:
                line = self._next_line()
                if not line:
                    self._ended = True
                    return
            yield line

    def block(
        self, count: int, characters: int, parse: bool = True
    ) -> tuple[int, list[list[str]] | None, list[str]] | None:
        """Up to ``count`` rows of at most about ``characters`` characters in all (one line at
        least), each one line of the file, read at once: (the first one's line number, the
        rows, their lines as written); no rows at the end of the file. ``None`` when a line
        holds a quote (a cell may then span lines) or one csv refuses: those lines are then
        read row by row (``__next__``), which names a problem by its line. ``parse=False``:
        the lines only (rows ``None``), for a reader of numbers that needs no cells (issue
        29); ``parsed`` makes them rows if it cannot use them. Call it between rows only, as
        ``_chunks`` does."""
        if self._pending:
            return None
        first = self.line_num + 1
        lines: list[str] = []
        size = 0
        while len(lines) < count and (size < characters or not lines):
            line = self._next_line()
            if not line:
                break
            lines.append(line)
            size += len(line)
        if not lines:
            return first, [], []
        rows: list[list[str]] | None = None
        if '"' not in "".join(lines):  # one C scan of the block
            if not parse:
                self._blocked += len(lines)
                return first, None, lines
            with contextlib.suppress(csv.Error):
                rows = list(csv.reader(lines, delimiter=self._delimiter))
        # a quote, a line csv refuses, or (never without quotes) a row that is not one line
        if rows is None or len(rows) != len(lines):
            self._pending.extend(lines)
            return None
        self._blocked += len(lines)
        return first, rows, lines

    def parsed(self, numbers: list[int], lines: list[str]) -> list[list[str]]:
        """The rows of lines ``block(parse=False)`` gave (their line numbers: ``numbers``), as
        ``block`` would have read them (lines without a quote: a row each); a line csv refuses
        is named as ``__next__`` names it."""
        try:
            return list(csv.reader(lines, delimiter=self._delimiter))
        except csv.Error:
            for number, line in zip(numbers, lines, strict=True):
                try:
                    list(csv.reader([line], delimiter=self._delimiter))
                except csv.Error as exc:
                    raise _unreadable(exc, number) from None
            raise

    def __iter__(self) -> Rows:
        return self

    def __next__(self) -> list[str]:
        start = self.line_num + 1
        try:
            row = next(self._reader)
        except csv.Error as exc:
            raise _unreadable(exc, self.line_num) from None
        if self._ended:
            # csv asks for a line past the last one only inside a row: a quote opened and
            # never closed, which csv (not strict) closes at the end of the file, the rest of
            # the file read as one value; pd.read_csv refuses such a file
            self._ended = False
            swallowed = (
                f": lines {start} to {self.line_num}, the rest of the file, would be one value"
                if self.line_num > start
                else " (the file ends inside it)"
            )
            raise BadRequest(
                f"line {start} opens a quote that is never closed{swallowed}. Close the quote, "
                'or write a quote inside a value as two ("")'
            )
        return row

    @property
    def delimiter(self) -> str:
        return self._delimiter

    @property
    def line_num(self) -> int:
        return self._reader.line_num + self._blocked


@dataclass(frozen=True)
class Dialect:
    encoding: str = "utf-8-sig"
    delimiter: str = ","
    decimal_comma: bool = False

    def read_as(self) -> str:
        """For the job page: how the file was read."""
        parts = [f"{SEPARATORS[self.delimiter]}-separated"]
        if self.decimal_comma:
            parts.append("decimal comma")
        parts.append(ENCODING_NAMES.get(self.encoding, self.encoding))
        return ", ".join(parts)

    def open(self, path: Path) -> Any:
        return path.open(newline="", encoding=self.encoding)

    def reader(self, file: Any) -> Rows:
        return Rows(file, self.delimiter)

    def writer(self, file: Any) -> Any:
        return csv.writer(file, delimiter=self.delimiter)

    def read_inputs(
        self, rows: Iterable[list[str]], positions: list[int], numbers: list[bool]
    ) -> list[list[Any]]:
        """The model's inputs from CSV rows: the cells at ``positions``, as the service takes
        them. A cell that is empty or one of pandas' NA strings is missing (NaN), as read_csv
        reads it; a number column's decimal comma becomes a point. (One comprehension, no
        call per cell: this runs for every cell of the file.)"""
        na, comma, read = NA_VALUES, self.decimal_comma, self.read_number
        pairs = list(zip(positions, numbers, strict=True))
        return [
            [
                MISSING
                if (text := cells[p]) in na
                else (read(text) if comma and is_number else text)
                for p, is_number in pairs
            ]
            for cells in rows
        ]

    def read_number(self, cell: str) -> str:
        """A cell of a number column as the model's validation expects it (``5,1`` → ``5.1``)."""
        if self.decimal_comma and DECIMAL_COMMA.fullmatch(cell.strip()):
            return cell.replace(",", ".")
        return cell

    def write_value(self, value: Any) -> str:
        """A value winserve writes (a prediction, a probability): numbers with this file's
        decimal mark, and never a live formula."""
        kind = type(value)
        if kind is float and value - value == 0:  # finite: str() gives a plain number
            text = repr(value)
            return text.replace(".", ",") if self.decimal_comma else text
        if kind is int:
            return str(value)
        if value is None:  # the model answered nothing for this row (NaN): an empty cell
            return ""
        text = str(value)
        if self.decimal_comma and isinstance(value, float):
            return safe_text(text.replace(".", ","), decimal_comma=True)
        return safe_text(text, self.decimal_comma)


def plain_cells(text: str, separator: str, lines: int, separators: int) -> bool:
    """Whether ``text``, ``lines`` lines joined by "\\n" of ``separators`` separators each,
    is plain cells csv would write without quotes: no quote, no line break inside a cell,
    no separator inside one."""
    if '"' in text or "\r" in text or text.count("\n") != lines - 1:
        return False
    return text.count(separator) == separators * lines


def safe_text(text: str, decimal_comma: bool = False) -> str:
    """``text`` as a cell a spreadsheet shows as it is: a leading ``'`` when it would start a
    formula (``=``, ``+``, ``-``, ``@``, tab, CR), except a plain number such as ``-1.5``."""
    if not text.startswith(FORMULA_START):
        return text
    number = text.replace(",", ".", 1) if decimal_comma else text
    return text if PLAIN_NUMBER.fullmatch(number) else "'" + text


def typed_number(text: str) -> str:
    """A number typed in the page's form with a decimal comma (``5,1``), as the validation
    expects it; left as it is when the comma could be a thousands separator (``1,234``)."""
    cell = text.strip()
    if DECIMAL_COMMA.fullmatch(cell) and not THOUSANDS_GROUP.fullmatch(cell):
        return cell.replace(",", ".")
    return text


def sniff(path: Path, columns: list[str], number_columns: list[str]) -> Dialect:
    """The dialect of the CSV at ``path`` whose first line should name ``columns``."""
    encoding = _encoding(path)
    with path.open(newline="", encoding=encoding) as file:
        first = file.readline(FIRST_LINE_LIMIT + 3)
    if len(first.rstrip("\r\n")) > FIRST_LINE_LIMIT:
        raise BadRequest(first_line_too_long())
    delimiter = _delimiter(first, columns)
    dialect = Dialect(encoding, delimiter)
    if delimiter == "," or not number_columns:
        return dialect
    with dialect.open(path) as file:
        rows = dialect.reader(file)
        header = [name.strip() for name in next(rows, [])]
        positions = [header.index(name) for name in number_columns if name in header]
        cells = [
            row[i].strip()
            for row in itertools.islice(rows, SAMPLE_ROWS)
            for i in positions
            if i < len(row)
        ]
    decimal_comma = any(
        DECIMAL_COMMA.fullmatch(c) and not THOUSANDS_GROUP.fullmatch(c) for c in cells
    ) and not any(DECIMAL_POINT.fullmatch(c) for c in cells)
    return Dialect(encoding, delimiter, decimal_comma)


def _encoding(path: Path) -> str:
    with path.open("rb") as file:
        start = file.read(8)
    if start.startswith((b"PK\x03\x04", b"\xd0\xcf\x11\xe0")):  # .xlsx (zip), .xls (OLE2)
        raise BadRequest(
            "this is an Excel workbook, not a CSV file; in Excel, choose File > Save As > "
            "'CSV UTF-8 (Comma delimited)' and upload that file"
        )
    if start.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    for encoding in ("utf-8-sig", "cp1252"):
        decoder = codecs.getincrementaldecoder(encoding)()
        try:
            with path.open("rb") as file:
                while block := file.read(BLOCK):
                    decoder.decode(block)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            continue
        return encoding
    raise BadRequest(
        "the file is not text in UTF-8 or Windows-1252; in Excel, save it as 'CSV UTF-8'"
    )


def _delimiter(first_line: str, columns: list[str]) -> str:
    """The separator under which the first line names most of the model's columns, then the
    one that splits it into most fields; a comma when nothing tells them apart."""

    def score(delimiter: str) -> tuple[int, int]:
        fields = [f.strip() for f in next(csv.reader([first_line], delimiter=delimiter), [])]
        return sum(name in fields for name in columns), len(fields)

    return max(SEPARATORS, key=score)  # max keeps the first (the comma) on a tie
