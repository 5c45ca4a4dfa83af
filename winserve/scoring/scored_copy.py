"""The scored copy of a CSV: each chunk's lines as the file wrote them, with the added cells.

::

    csv_scoring ── a chunk read, its model call begun (``Pending``) ──► ScoredCopy.write, once
        the call has answered (the next chunk's is under way meanwhile: ahead.py)
            each line copied as written, its added cells and request id after it (``_copied``:
            one f-string a line; issue 29: the user's cells parsed and written again by csv
            were a third of the writing's cost)
            or, when a line is blank, ragged or not one line of the file, or an added cell
            needs quotes: csv writes the chunk's rows (a row of the wrong length padded or cut
            so that columns line up; a blank row gets no request id)
        ──► the job's counts: rows written and scored, bytes read (progress)
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from winserve.scoring.job import ScoringJob
from winserve.spreadsheet import Rows, plain_cells

Chunk = list[tuple[int, list[str]]]  # rows with their line numbers
UNREAD: list[str] = []  # a row whose line was not read into cells (csv_scoring._chunks)


@dataclass
class Pending:
    """A chunk read, its model call begun: ``scored`` gives each line's row and added cells
    once it has answered. ``whole``: every line is one row of ``width`` cells (known when the
    chunk's numbers were read from its lines); ``read_bytes``: how far the file was read."""

    chunk: Chunk
    written: list[str | None]
    empty: list[bool]
    rows: int
    scored: Callable[[], list[tuple[list[str], list[str]]]]
    read_bytes: int
    whole: bool = False


@dataclass
class ScoredCopy:
    """Writes the chunks of one job's scored copy, in the file's order."""

    job: ScoringJob
    reader: Rows
    writer: Any  # the dialect's csv writer on ``target``
    target: TextIO
    room: Callable[[], None]  # before each chunk: the scoring folder is not over its cap
    width: int
    texts: bool  # one text per line: written by csv

    def __post_init__(self) -> None:
        self.ids = self.job.row_ids()
        self.separator = self.reader.delimiter
        # a request id as sent (its prefix is every row's): copied only where it needs no quotes
        self._plain_ids = plain_cells(self.ids(0), self.separator, 1, 0)
        self._buffer = io.StringIO()  # a row's cells quoted by csv, where they need it
        self._csv = csv.writer(self._buffer, delimiter=self.separator)

    def write(self, pending: Pending) -> None:
        """``pending``'s lines with their added cells, once its model call has answered."""
        job, chunk, empty = self.job, pending.chunk, pending.empty
        scored = pending.scored()
        self.target.flush()
        self.room()
        copied = None if self.texts else self._copied(pending, scored)
        if copied is None and not self.texts:
            if any(row is UNREAD for row, _ in scored):  # read the lines into rows
                rows = self.reader.parsed([n for n, _ in chunk], [w or "" for w in pending.written])
                scored = [(row, cells) for row, (_, cells) in zip(rows, scored, strict=True)]
            copied = self._row_by_row(pending, scored)
        if copied is not None:
            self.target.write(copied)
        else:  # one text per line: each written by csv as the one cell of its row
            ids = self.ids
            self.writer.writerows(
                [
                    [*row, *cells, ids(line)]
                    for (line, _), (row, cells) in zip(chunk, scored, strict=True)
                ]
            )
        # counted once written: rows scored in a chunk that was not are not
        job.scored_rows += sum(
            not (is_empty or cells[-1]) for (_, cells), is_empty in zip(scored, empty, strict=True)
        )
        job.done_rows += pending.rows
        job.read_bytes = pending.read_bytes  # the decoder reads ahead: ≤ 8 KB more

    def _row_by_row(self, pending: Pending, scored: list[tuple[list[str], list[str]]]) -> str:
        """A chunk ``_copied`` cannot copy whole, a line at a time: each line the file wrote
        on one line is copied as written (a short one padded with empty cells, so that the
        added columns line up; an empty one stays empty), with the added cells after it,
        quoted where they need it; a row of more cells than the first line names keeps its
        first cells as written, and its others go after the added ones (they were cut:
        issue 29's review);
        csv writes only a row spread over several lines (its cells quoted as csv quotes
        them)."""
        separator, width, ids, ending = self.separator, self.width, self.ids, "\r\n"
        texts = []
        for (number, _), line, (row, cells), is_empty in zip(
            pending.chunk, pending.written, scored, pending.empty, strict=True
        ):
            added = self._cells([*cells, "" if is_empty else ids(number)])
            if (
                line is not None
                and len(row) > width
                and (cut := field_end(line, separator, width)) >= 0
            ):
                # a long line: its first cells as written, the rest after the added ones
                rest = line[cut + 1 :].rstrip(ending)
                texts.append(f"{line[:cut]}{separator}{added}{separator}{rest}{ending}")
                continue
            if line is None or len(row) > width:
                user = self._cells([*row[:width], *[""] * (width - len(row))])
                extra = separator + self._cells(row[width:]) if len(row) > width else ""
                texts.append(f"{user}{separator}{added}{extra}{ending}")
                continue
            if not row:
                # an empty line stays empty: read_csv skips it in the file and in the copy
                # alike, so their rows still pair up by position (padded, it read as a row
                # of missing values, one more than the file's)
                texts.append(ending)
                continue
            padding = separator * (width - len(row))
            texts.append(f"{line.rstrip(ending)}{padding}{separator}{added}{ending}")
        return "".join(texts)

    def _cells(self, cells: list[str]) -> str:
        """Cells as csv writes them in the file's dialect, without the line's end."""
        text = self.separator.join(cells)
        if not plain_cells(text, self.separator, 1, max(0, len(cells) - 1)):
            self._buffer.seek(0)
            self._buffer.truncate()
            self._csv.writerow(cells)
            text = self._buffer.getvalue().rstrip("\r\n")
        return text

    def _copied(self, pending: Pending, scored: list[tuple[list[str], list[str]]]) -> str | None:
        """The chunk's scored lines as text: each line as the file wrote it, then the cells
        winserve adds. ``None`` when a line is not that simple (a blank or ragged one, one
        spread over several lines) or an added cell would need quotes (a separator, a quote
        or a line break in it)."""
        written, separator = pending.written, self.separator
        if any(pending.empty) or None in written:
            return None
        if not pending.whole and (
            len(set(map(len, (row for row, _ in scored)))) != 1 or len(scored[0][0]) != self.width
        ):
            return None
        added = [separator.join(cells) for _, cells in scored]  # each ends in "" (no error)
        text = "\n".join(added)  # one scan of the chunk's added cells for what needs quotes
        per_line = len(scored[0][1]) - 1  # the separators between a line's added cells
        if not self._plain_ids or not plain_cells(text, separator, len(added), per_line):
            return None
        ids, ending = self.ids, "\r\n"
        return "".join(
            [
                f"{line.rstrip(ending)}{separator}{cells}{separator}{ids(number)}{ending}"
                for (number, _), line, cells in zip(pending.chunk, written, added, strict=True)
                if line is not None
            ]
        )


def field_end(line: str, separator: str, cells: int) -> int:
    """Where the ``cells``-th cell of ``line`` ends (the index of the separator after it), as
    csv reads the line: a quote opens a quoted cell only as a cell's first character, and
    ``""`` inside one is a quote; -1 when the line has no such separator."""
    count, quoted, start, index = 0, False, True, 0
    while index < len(line):
        char = line[index]
        if quoted:
            if char == '"':
                if line.startswith('"', index + 1):  # "" inside a quoted cell
                    index += 2
                    continue
                quoted = False
        elif char == separator:
            count += 1
            if count == cells:
                return index
            start = True
            index += 1
            continue
        elif char == '"' and start:
            quoted = True
        start = False
        index += 1
    return -1
