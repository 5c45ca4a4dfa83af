"""Excel workbooks (.xlsx) in and out of the page's scoring (issue 27), with openpyxl.

::

    upload ──► check: a zip that is a workbook, not encrypted, not expanding past
               EXPANDED_LIMIT (zip bombs, shared-strings bombs) ──► refused with a sentence
          ──► table: the sheet whose first filled row names the model's inputs (else the
               first sheet), read as a stream (read-only), cells with their Excel types
          ──► workbook_scoring scores the rows in chunks, as a CSV's ──► {row number: cells}
          ──► write: the workbook loaded whole (formatting, formulas, other sheets kept),
               "prediction", "probability <class>", "error" added to that sheet, an
               "About" sheet, saved as the result

A cell reaches the model as ``pd.read_excel`` would hand it over: numbers as numbers, true and
false as booleans, an empty cell or one of pandas' NA strings as missing, a formula by the
value Excel last computed (a formula never computed is missing), a date as the text the form
takes (``2024-01-31``, with its time when it has one). What winserve writes never starts a
formula: text is written as text, numbers as numbers.

Writing keeps the user's workbook as it was, so it is loaded whole: 18 MB of sheet XML
(100,000 rows × 5 columns) took ~250 MB and ~13 s to load here (issue 27), which is why a
workbook may expand to ``EXPANDED_LIMIT`` at most, well under what a CSV may weigh. Progress
counts rows against the sheet's size as the file states it (Excel always does; a streaming
writer may not, and such a sheet shows its rows done without a percentage).
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import zipfile
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from winserve.errors import BadRequest
from winserve.spreadsheet import MISSING, NA_VALUES

ZIP_START = b"PK\x03\x04"
OLE_START = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # Excel 97-2003, or an encrypted .xlsx
ENCRYPTED_MARK = "EncryptedPackage".encode("utf-16-le")  # the stream an encrypted file holds
EXPANDED_LIMIT = 50 << 20  # bytes of XML once unzipped: ~2.5 million cells
MAX_PARTS = 10_000  # files inside the zip; Excel writes a few dozen
MAX_COLUMNS = 16_384  # Excel's own limit (XFD)
SAVE_AS_CSV = "in Excel, choose File > Save As > 'CSV UTF-8 (Comma delimited)' and upload that"


class SheetChoice(BadRequest):
    """Several sheets could be the table and none, or more than one, names the model's
    inputs: the user picks one from ``sheets`` (issue 27)."""

    code = "choose_sheet"

    def __init__(self, message: str, sheets: tuple[str, ...]) -> None:
        super().__init__(message)
        self.sheets = sheets


def is_workbook(path: Path) -> bool:
    """Whether the upload is an Excel file (.xlsx, or the OLE2 of .xls / an encrypted one)."""
    with path.open("rb") as file:
        return file.read(8).startswith((ZIP_START, OLE_START))


def _refuse_ole(path: Path) -> None:
    with path.open("rb") as file:
        data = file.read()  # within max_csv_mb, checked at the upload
    if ENCRYPTED_MARK in data:
        raise BadRequest(
            "this workbook is protected with a password (encrypted), so it cannot be read: in "
            "Excel, choose File > Info > Protect Workbook > Encrypt with Password, clear the "
            "password, save, and upload it again"
        )
    raise BadRequest(
        "this is an Excel 97-2003 workbook (.xls); in Excel, choose File > Save As > "
        "'Excel Workbook (*.xlsx)' and upload that"
    )


def check(path: Path) -> None:
    """Refuse, with a sentence, what is not a workbook winserve can read within its bounds."""
    with path.open("rb") as file:
        start = file.read(8)
    if start.startswith(OLE_START):
        _refuse_ole(path)
    try:
        with zipfile.ZipFile(path) as archive:
            parts = archive.infolist()
            if len(parts) > MAX_PARTS:
                raise BadRequest(f"the workbook holds more than {MAX_PARTS} parts; {SAVE_AS_CSV}")
            if "xl/workbook.xml" not in {p.filename for p in parts}:
                raise BadRequest(f"this is a zip file, not an Excel workbook; {SAVE_AS_CSV}")
            # the sizes the zip declares; zipfile stops reading a part at its declared size
            # (a part that lies fails its CRC check), so these bound what openpyxl unzips
            expanded = sum(p.file_size for p in parts)
    except zipfile.BadZipFile:
        raise BadRequest(f"the workbook is damaged (not a readable .xlsx); {SAVE_AS_CSV}") from None
    if expanded > EXPANDED_LIMIT:
        raise BadRequest(
            f"the workbook unpacks to {expanded >> 20} MB, more than the {EXPANDED_LIMIT >> 20} "
            f"MB a workbook may hold here; {SAVE_AS_CSV}"
        )


def cell_input(value: Any) -> Any:
    """A cell's value as the model receives it (as pd.read_excel hands it over)."""
    if value is None:
        return MISSING
    if isinstance(value, str):
        return MISSING if value in NA_VALUES else value
    if isinstance(value, dt.datetime):
        if value.time() == dt.time():
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return str(value)
    return value  # a number or a boolean


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


@dataclass(frozen=True)
class Cells:
    """How a workbook's cells are read and written (the job's ``dialect``)."""

    sheet: str
    sheets: tuple[str, ...]

    def read_as(self) -> str:
        """For the job page: which sheet was scored, and which others the result keeps."""
        others = [s for s in self.sheets if s != self.sheet]
        shown = f", sheet {self.sheet!r}"
        if others:
            shown += " (others kept: " + ", ".join(repr(s) for s in others[:10]) + ")"
        return "Excel workbook" + shown

    def read_inputs(
        self, rows: Iterator[list[Any]], positions: list[int], numbers: list[bool]
    ) -> list[list[Any]]:
        return [[cell_input(cells[p]) for p in positions] for cells in rows]

    def write_value(self, value: Any) -> Any:
        """A value winserve adds: kept as it is (the writer types it)."""
        return value


@dataclass
class Table:
    """The sheet to score: its name (``cells``), where its header is and says, its size."""

    cells: Cells
    header_row: int  # the sheet's row number of the header (1-based)
    header: list[str]
    last_row: int  # the sheet's last row (for progress)


@contextlib.contextmanager
def _opened(path: Path, **options: Any) -> Iterator[Any]:
    """The workbook at ``path``, closed (with its file) on leaving."""
    import openpyxl  # only the scoring of a workbook needs it

    # a file object, not a path: openpyxl refuses a name not ending in .xlsx (uploads are
    # kept as input.csv whatever they are)
    with path.open("rb") as file:
        book = openpyxl.load_workbook(file, **options)
        try:
            yield book
        finally:
            book.close()


def _first_filled(rows: Iterator[tuple[Any, ...]]) -> tuple[int, list[str]] | None:
    for number, row in enumerate(rows, start=1):
        if any(_text(v) for v in row):
            return number, [_text(v) for v in row]
        if number > 100:  # a table starts near the top; a sheet of blanks is not read to its end
            return None
    return None


def table(path: Path, inputs: list[str], asked: str = "") -> Table:
    """The sheet to score: ``asked`` (by name) when given, else the one sheet whose first
    filled row names every model input, else the only sheet with rows; its header (the first
    filled row, as a CSV's first line). When several sheets have rows and none or more than
    one names the inputs, ``SheetChoice`` offers them to choose from (issue 27)."""
    with _opened(path, read_only=True, data_only=True) as book:
        names = tuple(book.sheetnames)
        if asked and asked not in names:
            shown = ", ".join(repr(n) for n in names[:20])
            raise BadRequest(f"the workbook has no sheet {asked[:100]!r}; its sheets: {shown}")
        found: list[tuple[str, int, list[str], int]] = []
        for name in [asked] if asked else names:
            sheet = book[name]
            if sheet.max_column and sheet.max_column > MAX_COLUMNS:
                raise BadRequest(f"the sheet {name!r} has more columns than Excel allows")
            first = _first_filled(sheet.iter_rows(values_only=True))
            if first is None:
                continue
            found.append((name, first[0], first[1], sheet.max_row or 0))
            if asked:
                return Table(Cells(name, names), first[0], first[1], sheet.max_row or 0)
        if not found:
            where = f"the sheet {asked!r} has" if asked else "the workbook has no sheet with"
            raise BadRequest(f"{where} no rows: its first row must name the columns")
        naming = [f for f in found if set(inputs) <= set(f[2])]
        # several naming the inputs: one of them; none: any sheet with rows
        candidates = naming or found
        if len(candidates) > 1:
            offered = tuple(f[0] for f in candidates)
            shown = ", ".join(repr(n) for n in offered[:20])
            why = (
                f"{len(naming)} sheets name the model's inputs"
                if naming
                else "no sheet's first row names all of the model's inputs ("
                + ", ".join(repr(n) for n in inputs[:10])
                + (" …" if len(inputs) > 10 else "")
                + ")"
            )
            raise SheetChoice(f"choose the sheet to score: {why}; the sheets: {shown}", offered)
        name, row, header, last = candidates[0]
        return Table(Cells(name, names), row, header, last)


def rows(path: Path, found: Table) -> Generator[tuple[int, list[Any]], None, None]:
    """The sheet's rows under its header, by row number, as openpyxl reads them."""
    with _opened(path, read_only=True, data_only=True) as book:
        sheet = book[found.cells.sheet]
        width = len(found.header)
        start = found.header_row + 1
        for number, row in enumerate(sheet.iter_rows(min_row=start, values_only=True), start):
            yield number, list(row[:width]) + [None] * (width - len(row))


def blank(row: list[Any]) -> bool:
    return not any(_text(v) for v in row)


def _put(cell: Any, value: Any) -> None:
    """``value`` in ``cell``: a number as a number, anything else as text (never a formula)."""
    if value is None or value == "" or (isinstance(value, float) and value != value):
        return  # nothing answered (NaN): an empty cell
    if isinstance(value, (bool, int, float)):
        cell.value = value
        return
    cell.value = str(value)
    cell.data_type = "s"  # openpyxl would read "=…" as a formula


def write(
    source: Path,
    target: Path,
    found: Table,
    added: list[str],
    results: dict[int, list[Any]],
    about: list[tuple[str, Any]],
) -> None:
    """The workbook at ``source`` with ``added`` columns filled from ``results`` (by row
    number) on the scored sheet, and an About sheet, saved at ``target``."""
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    with _opened(source) as book:  # whole, with its formatting and formulas
        sheet = book[found.cells.sheet]
        first = len(found.header) + 1
        beside = sheet.cell(found.header_row, max(1, first - 1))  # the user's last header
        for offset, name in enumerate(added):
            cell = sheet.cell(found.header_row, first + offset)
            _put(cell, name)
            cell._style = copy.copy(beside._style)  # styled as the user's header
            font = beside.font
            cell.font = Font(name=font.name, size=font.size, color=font.color, bold=True)
            width = max(12, min(60, len(name) + 2))
            sheet.column_dimensions[get_column_letter(first + offset)].width = width
        for number, values in results.items():
            for offset, value in enumerate(values):
                _put(sheet.cell(number, first + offset), value)
        title = "About" if "About" not in book.sheetnames else "About winserve"
        notes = book.create_sheet(title)
        for label, value in about:
            notes.append([label])
            notes.cell(notes.max_row, 1).font = Font(bold=True)
            _put(notes.cell(notes.max_row, 2), value)
        notes.column_dimensions["A"].width = 24
        notes.column_dimensions["B"].width = 60
        book.save(target)
