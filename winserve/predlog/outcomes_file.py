"""An outcomes file the model's owner uploaded, read into outcomes by key (issue 26): the
CSV or workbook half of ``POST /outcomes`` (web/outcomes.py), before the join with the log
(predlog/outcomes.py).

::

    the upload's bytes in a temporary file ─► read_outcomes(path, key, outcome, numbers, …)
        a CSV in its dialect (spreadsheet.sniff)      ┐ header first, then (line or row,
        or a workbook's sheet as the scoring reads it ┘ cells as text): Numbered rows
          (scoring/workbook.py: its bounds, the sheet naming the columns)
        the key column (named, else a 'request id' column as _header spells it) and the
        outcome column (named, else 'outcome'); each row checked: a key, an outcome (a number
        for a regressor), at most max_rows: 400 naming the line or row
        ─► {key: outcome} (a later row wins), rows skipped for an empty outcome

The key is the request id (a ``request id`` or ``request_id`` column, as scored files and
``X-Request-Id`` have it) unless the upload names an input column (``key=customer_id``); the
outcome is the ``outcome`` column unless named (``outcome=churned``).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from winserve.errors import BadRequest, shown
from winserve.predlog import accuracy as metrics
from winserve.scoring import workbook
from winserve.spreadsheet import NA_VALUES, sniff

REQUEST_ID_NAMES = frozenset({"request id", "x request id"})  # as _header() spells them
OUTCOME = "outcome"


def _header(name: str) -> str:
    """A column's name as matched: ``Request_ID``, ``request-id`` and ``request id`` alike."""
    return re.sub(r"[\s_-]+", " ", name.strip().lower())


def _column(header: list[str], asked: str, default: str, what: str) -> int:
    """The position of the column ``asked`` (else ``default``) in ``header``: by its exact
    name, else as ``_header`` spells it; 400 naming the columns there are."""
    wanted = asked or default
    if wanted in header:
        return header.index(wanted)
    spelled = [_header(h) for h in header]
    if _header(wanted) in spelled:
        return spelled.index(_header(wanted))
    listed = ", ".join(shown(h) for h in header[:20])
    hint = f"; name the {what} column with {what}=…" if not asked else ""
    raise BadRequest(f"the file has no column {shown(wanted)} (its columns: {listed}){hint}")


def _key_position(header: list[str], key: str) -> int:
    if key:
        return _column(header, key, "", "key")
    spelled = [_header(h) for h in header]
    for position, name in enumerate(spelled):
        if name in REQUEST_ID_NAMES:
            return position
    listed = ", ".join(shown(h) for h in header[:20])
    raise BadRequest(
        f"the file has no 'request id' column (its columns: {listed}); add the request ids "
        "winserve answered with (X-Request-Id, or a scored file's 'request id' column), or "
        "name a key column that is one of the model's inputs with key=…"
    )


# one row of an outcomes file: (its line, or row in a sheet; its cells as text)
Numbered = tuple[int, list[str]]


@contextmanager
def _csv_rows(
    path: Path, candidates: list[str], numbers: list[str]
) -> Iterator[tuple[Iterator[Numbered], Callable[[str], str]]]:
    """A CSV's rows (header first) by line, in its dialect (spreadsheet.sniff), and how its
    numbers are read (a decimal comma)."""
    dialect = sniff(path, candidates, numbers)
    with dialect.open(path) as file:
        yield _by_first_line(dialect.reader(file)), dialect.read_number


def _by_first_line(rows: Any) -> Iterator[Numbered]:
    """Each row with its first line (a quoted cell may span several), as a scoring job
    numbers the rows of the file it scores."""
    last = rows.line_num
    for row in rows:
        yield last + 1, row
        last = rows.line_num


def _cell(value: Any) -> str:
    """A workbook cell as the text a CSV would hold: ``1`` for the number 1.0."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


@contextmanager
def _sheet_rows(
    path: Path, candidates: list[str], sheet: str
) -> Iterator[tuple[Iterator[Numbered], Callable[[str], str]]]:
    """An .xlsx's rows (header first) by row number, as the scoring of a workbook reads it
    (scoring/workbook.py: its bounds, the sheet naming the columns); numbers are numbers."""
    workbook.check(path)
    try:
        found = workbook.table(path, candidates, sheet)
    except workbook.SheetChoice as exc:
        offered = ", ".join(shown(n) for n in exc.sheets[:20])
        raise BadRequest(
            f"the workbook has several sheets ({offered}): name the one with the outcomes "
            "(the form's sheet, or sheet=…)"
        ) from None
    rows = workbook.rows(path, found)
    try:
        header = (found.header_row, list(found.header))
        body = ((number, [_cell(v) for v in cells]) for number, cells in rows)
        yield itertools.chain([header], body), str
    finally:
        rows.close()


def read_outcomes(
    path: Path, key: str, outcome: str, numbers: bool, max_rows: int, sheet: str = ""
) -> tuple[dict[str, str], int]:
    """The outcomes of a CSV file or an Excel workbook by key (a later row wins), and the
    rows skipped for an empty outcome. ``numbers``: each outcome must be a number (a
    regressor's)."""
    candidates = [key or "request id", "request_id", outcome or OUTCOME]
    book = workbook.is_workbook(path)
    where = "row" if book else "line"
    opened = (
        _sheet_rows(path, [key or "request id", outcome or OUTCOME], sheet)
        if book
        else _csv_rows(path, candidates, [outcome or OUTCOME] if numbers else [])
    )
    found: dict[str, str] = {}
    skipped = 0
    with opened as (rows, read_number):
        header = [h.strip() for h in next(rows, (0, []))[1]]
        if not any(header):
            raise BadRequest("the file is empty; its first line must name the columns")
        at_key = _key_position(header, key)
        at_outcome = _column(header, outcome, OUTCOME, "outcome")
        for line, row in rows:
            if not any(cell.strip() for cell in row):
                continue  # a blank line
            cell = row[at_key].strip() if at_key < len(row) else ""
            if not cell:
                raise BadRequest(f"{where} {line} has no {shown(header[at_key])}")
            value = row[at_outcome].strip() if at_outcome < len(row) else ""
            if value in NA_VALUES:
                skipped += 1  # an outcome not known yet
                continue
            if numbers:
                written = read_number(value)
                if metrics.number(written) is None:
                    raise BadRequest(
                        f"{where} {line}: the outcome {shown(value)} is not a number; this "
                        "model is a regressor, its outcomes are numbers"
                    )
                value = written
            # a request id as written (ids are case- and zero-sensitive); an input's value
            # as the log's are compared (1001 and 1001.0 are one customer)
            found[metrics.label_text(cell) if key else cell] = value
            if len(found) > max_rows:
                raise BadRequest(
                    f"the file has more than {max_rows} outcomes (setting: max_csv_rows)"
                )
    if not found:
        raise BadRequest("the file has no outcomes under its first line")
    return found, skipped
