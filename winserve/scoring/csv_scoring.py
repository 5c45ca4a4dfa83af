"""A CSV upload scored into a CSV result, read once as a stream, chunk by chunk.

::

    input.csv ──► sniff (separator, decimal mark, encoding: spreadsheet) ──► first line:
        the header (or, for a text model, maybe the first text) ──► columns.positions
    rows ──► chunks: the rows the scorer's ChunkSize asks for (the model's cost, fewer while
        users call; issue 29; at most ``chunk_rows``), or fewer once they cost ``chunk_bytes``
        ├─► a model of numbers only, lines of plain numbers (most files): the lines' numbers
        │   read by NumPy in C (``bulk.line_matrix``), no cell made a string
        └─► otherwise score_chunk: blank and ragged rows answered here, the others through
            the RowScorer (a chunk of plain numbers as one matrix: bulk.py)
        ──► RowScorer.start: the chunk's model call begun on the job's caller thread
            (ahead.py) while this thread writes the chunk before it
        ──► ScoredCopy.write (scored_copy.py): each line copied as the file wrote it, its
            added cells and request id after it
    scored.csv: the input's lines with prediction, probability, error and request id columns,
        written in the file's own dialect (UTF-8), so it opens where the file came from

Memory stays bounded by the chunk size whatever the file's length or width (issue 13 item 6:
a file of 30,000 mostly empty columns made 1,000-row chunks of 30 million cells), and
``spreadsheet`` bounds the length of a line. Progress is the share of the file's bytes read
(issue 14); the row count is known once the file is read to its end. Before each chunk is
written, ``room()`` checks the scoring folder's size (setting max_jobs_mb).
"""

from __future__ import annotations

import csv
import itertools
import operator
from collections.abc import Callable, Iterator
from typing import Any

from winserve.errors import BadRequest, value_count
from winserve.scoring import bulk, columns, reasons
from winserve.scoring.job import ScoringJob
from winserve.scoring.lazy import Lazy
from winserve.scoring.rows import Bounds, RowScorer
from winserve.scoring.scored_copy import UNREAD, Chunk, Pending, ScoredCopy
from winserve.spreadsheet import Dialect, Rows, safe_text, sniff

# the most a character of a line costs in _cost's terms (a cell per character: 8 + 2 + 56)
PER_CHARACTER = 66


def blank(row: list[str]) -> bool:
    return not "".join(row).strip()  # one C call, also for a row of 30,000 cells


def _cost(cells: int, characters: int) -> int:
    """About what a row read by csv holds in memory, from its number of cells and of
    characters (counting every cell would cost as much as reading the file): a pointer per
    cell, the characters twice (the cells, and the line as written, kept to be copied into
    the result: ``_copied``), and a string object for each cell that is not empty, of which
    there are at most as many as characters that are not separators (empty cells are all the
    one shared "")."""
    return 8 * cells + 2 * characters + 56 * min(cells, max(0, characters - cells + 1))


def chunks(
    reader: Rows,
    max_rows: int | Callable[[], int],
    max_bytes: int,
    first: tuple[int, list[str]] | None = None,
) -> Iterator[Chunk]:
    """Rows with their line numbers, ``max_rows`` at a time (or as many as ``max_rows()``
    says when each chunk starts: the job's ChunkSize, issue 29), or fewer once they cost
    ``max_bytes``; ``first``: a row read already (a text file's first line, which is data)."""
    for chunk, _ in _chunks(reader, max_rows, max_bytes, first):
        yield chunk


def _chunks(
    reader: Rows,
    max_rows: int | Callable[[], int],
    max_bytes: int,
    first: tuple[int, list[str]] | None = None,
    parse: bool = True,
) -> Iterator[tuple[Chunk, list[str | None]]]:
    """``chunks``, each with its rows' lines as written (``None`` for a row that is not one
    line of the file: a quoted cell holding a line break, or ``first``). ``parse=False``:
    lines read as a block are not made rows (their row is ``UNREAD``: ``filled`` makes them
    rows), for a chunk of numbers read from its lines (issue 29)."""
    rows_now = max_rows if callable(max_rows) else lambda: max_rows
    chunk: Chunk = [first] if first is not None else []
    written: list[str | None] = [None] if first is not None else []
    size = 0
    limit = rows_now()
    separator = reader.delimiter
    while True:
        # many rows at once where their lines allow (Rows.block: no Python per row), each
        # costing at most PER_CHARACTER bytes a character, so the block stays in the budget
        block = reader.block(limit - len(chunk), max(1, (max_bytes - size) // PER_CHARACTER), parse)
        if block is not None:
            number, rows, lines = block
            if not lines:
                break
            numbers = range(number, number + len(lines))
            if rows is None:
                chunk.extend(zip(numbers, itertools.repeat(UNREAD)))
                characters = sum(map(len, lines))
                cells = "".join(lines).count(separator) + len(lines)
            else:
                chunk.extend(zip(numbers, rows, strict=True))
                cells, characters = sum(map(len, rows)), sum(map(len, lines))
            written.extend(lines)
            # _cost of the block's rows together (never less than the sum of theirs)
            size += 8 * cells + 2 * characters + 56 * min(cells, characters - cells + len(lines))
        else:
            last, read = reader.line_num, reader.characters
            row = next(reader, None)
            if row is None:
                break
            # a row is numbered by its first line (a quoted cell may span several, and the
            # unterminated quote's message names where it opens too)
            number = last + 1
            chunk.append((number, row))
            written.append(reader.line if reader.line_num == number else None)
            # a line of a block handed back was counted when the block was read: its length
            size += _cost(len(row), max(reader.characters - read, len(reader.line)))
        if len(chunk) >= limit or size >= max_bytes:
            yield chunk, written
            chunk, written, size = [], [], 0
            limit = rows_now()
    if chunk:
        yield chunk, written


def filled(reader: Rows, chunk: Chunk, written: list[str | None]) -> Chunk:
    """``chunk`` with its ``UNREAD`` rows read from their lines."""
    unread = [i for i, (_, row) in enumerate(chunk) if row is UNREAD]
    if not unread:
        return chunk
    lines = [written[i] or "" for i in unread]
    rows = reader.parsed([chunk[i][0] for i in unread], lines)
    chunk = list(chunk)
    for i, row in zip(unread, rows, strict=True):
        chunk[i] = (chunk[i][0], row)
    return chunk


def score_csv(job: ScoringJob, scorer: RowScorer, bounds: Bounds, room: Callable[[], None]) -> None:
    """Score ``job.source`` into ``job.result``, counting progress and problems on ``job``;
    a file past ``bounds.max_rows`` is refused with its row count (still one read)."""
    info = scorer.info
    # a column of kind "any" is typed as read_csv types it, with the file's decimal mark
    numbers = [f.name for f in info.features if f.kind in ("number", "any")]
    job.dialect = dialect = sniff(job.source, info.feature_names, numbers)
    job.size = job.source.stat().st_size
    with (
        dialect.open(job.source) as source,
        job.result.open("w", newline="", encoding="utf-8-sig") as target,
    ):
        reader = dialect.reader(source)
        header = next(reader, None)
        if header is None:
            raise BadRequest("the file has no rows under its first line")
        first: tuple[int, list[str]] | None = None
        if info.text_input and not columns.names_text_column(header, info):
            # a file of texts without a first line naming the column: its first line is
            # the first text, and the scored copy gets the line naming the columns
            first, header = (reader.line_num, header), list(info.feature_names)
        columns.unique_header(header)
        positions = columns.positions(header, info)
        # one text per line (a text model's one-column file): each line is a text as it
        # was written, as model.predict(lines) gets them from the file read line by line;
        # a separator in it is part of the text, a blank line is the text "" (never a
        # missing value, nor skipped)
        texts = info.text_input and len(header) == 1
        separator = dialect.delimiter
        writer = dialect.writer(target)
        added = columns.added_columns(info, scorer.reason_columns)
        writer.writerow([*header, *map(safe_text, added)])
        if scorer.reasons is not None:  # refused before any model call (issue 25)
            _within_explained(job, dialect, texts, first is not None)
        width = len(header)
        copy = ScoredCopy(job, reader, writer, target, room, width, texts)
        read_rows = 0  # rows read so far (done_rows counts them once written)
        # the chunk whose model call is under way while the next one is read (issue 29)
        pending: Pending | None = None
        # a model of numbers only, a file of points: blocks of lines read by NumPy (issue 29)
        from_lines = info.all_numeric and not texts and not dialect.decimal_comma and first is None
        for chunk, written in _chunks(
            reader, scorer.chunks.rows, bounds.chunk_bytes, first, parse=not from_lines
        ):
            if scorer.closing.is_set():
                break
            matrix = bulk.line_matrix(written, separator, width, positions) if from_lines else None
            if matrix is not None:  # every line a row of plain numbers: none blank
                empty = [False] * len(chunk)
            else:
                chunk = filled(reader, chunk, written)
                if texts:
                    chunk = [(line, [separator.join(row)]) for line, row in chunk]
                    empty = [False] * len(chunk)
                else:
                    empty = [blank(row) for _, row in chunk]
            rows = len(chunk) - sum(empty)
            read_rows += rows
            if read_rows > bounds.max_rows:  # before the chunk's model call
                _too_many(read_rows, reader, texts, bounds)
            scored = (
                score_chunk(scorer, chunk, header, positions, texts, empty)
                if matrix is None
                else _lines_scored(scorer, chunk, written, matrix, separator, positions)
            )
            if pending is not None:
                copy.write(pending)
            whole = matrix is not None
            pending = Pending(chunk, written, empty, rows, scored, source.buffer.tell(), whole)
        if pending is not None and not scorer.closing.is_set():
            copy.write(pending)
    if job.done_rows == 0 and not scorer.closing.is_set():
        raise BadRequest("the file has no rows under its first line")
    job.total_rows = job.done_rows


def _too_many(read_rows: int, reader: Rows, texts: bool, bounds: Bounds) -> None:
    """Refuse a file past ``bounds.max_rows``: the rest is only counted, for the message
    (still one read of the file)."""
    read_rows += sum(texts or not blank(row) for row in reader)
    raise BadRequest(
        f"the file has {read_rows} rows, more than the {bounds.max_rows} allowed "
        "(setting: max_csv_rows)"
    )


def _lines_scored(
    scorer: RowScorer,
    chunk: Chunk,
    written: list[str | None],
    matrix: Any,
    separator: str,
    positions: list[int],
) -> Callable[[], list[tuple[list[str], list[str]]]]:
    """A chunk of lines of plain numbers, read into ``matrix`` by ``bulk.line_matrix``, its
    model call begun: the function gives each line's added cells (its row ``UNREAD``, as
    ``_copied`` needs none)."""
    cells = LineCells(written, separator, positions)
    answered = scorer.start(cells, [line for line, _ in chunk], matrix, as_text=True)
    return lambda: [(UNREAD, each) for each in answered()]


class LineCells(Lazy[tuple[str, ...]]):
    """The cells at ``positions`` of each of a chunk's lines, read from a line only when asked
    for (the prediction log's sample, the reasons of a refused row)."""

    def __init__(self, lines: list[str | None], separator: str, positions: list[int]) -> None:
        self._lines = lines
        self._separator = separator
        self._pick = operator.itemgetter(*positions)
        self._one = len(positions) == 1

    def __len__(self) -> int:
        return len(self._lines)

    def _item(self, index: int) -> tuple[str, ...]:
        [row] = csv.reader([self._lines[index] or ""], delimiter=self._separator)
        picked = self._pick(row)
        return (picked,) if self._one else tuple(picked)


def _within_explained(job: ScoringJob, dialect: Dialect, texts: bool, first_is_data: bool) -> None:
    """Refuse a file of more rows than are scored with their reasons, counted as the scoring
    counts them (blank lines are not rows, unless each line is a text), reading no further
    than the first row past the limit."""
    found = int(first_is_data)
    with dialect.open(job.source) as source:
        rows = dialect.reader(source)
        next(rows, None)  # the first line, counted above when it is data
        for row in rows:
            found += 1 if texts else not blank(row)
            if found > reasons.MAX_EXPLAINED_ROWS:
                raise reasons.too_many()


def score_chunk(
    scorer: RowScorer,
    chunk: Chunk,
    header: list[str],
    positions: list[int],
    texts: bool = False,
    empty: list[bool] | None = None,
) -> Callable[[], list[tuple[list[str], list[str]]]]:
    """Each line of ``chunk`` with its added cells, from the function returned once the
    model has answered (its call begun now: ``RowScorer.start``): a blank line gets empty
    ones, a line of the wrong length its reason, the others what the model answered.
    ``empty``: which lines are blank, when the caller knows already."""
    info, job = scorer.info, scorer.job
    width = len(header)
    out: dict[int, list[str]] = {}
    usable: list[int] = []
    if empty is None:
        empty = [not texts and blank(row) for _, row in chunk]
    if texts:  # one text per line, each as written ("" and "NA" are texts too)
        usable = list(range(len(chunk)))
    else:
        for index, (line, row) in enumerate(chunk):
            if empty[index]:  # an empty line, or Excel's ";;;" for formatted empty cells
                out[index] = scorer.error_cells("")
            elif len(row) != width:
                reason = f"has {value_count(len(row))}; the first line names {width} columns"
                out[index] = scorer.error_cells(reason)
                job.problem(line, reason)
            else:
                usable.append(index)
    answered: Callable[[], list[list[str]]] = list
    if usable:
        lines = [chunk[i][0] for i in usable]
        started = _numbers(scorer, [chunk[i][1] for i in usable], positions, lines)
        if started is None:
            number = [f.kind in ("number", "any") for f in info.features] or [False] * len(
                positions
            )
            # empty and NA cells become missing, as in read_csv
            if texts:
                rows = [[chunk[i][1][0]] for i in usable]
            else:
                rows = job.dialect.read_inputs((chunk[i][1] for i in usable), positions, number)
            started = scorer.start(rows, lines, as_text=True)
        answered = started

    def cells() -> list[tuple[list[str], list[str]]]:
        if len(usable) == len(chunk):  # every line answered by the model: in order
            return [(row, each) for (_, row), each in zip(chunk, answered(), strict=True)]
        for position, each in zip(usable, answered(), strict=True):
            out[position] = each
        return [(row, out[i]) for i, (_, row) in enumerate(chunk)]

    return cells


def _numbers(
    scorer: RowScorer, rows: list[list[str]], positions: list[int], lines: list[int]
) -> Callable[[], list[list[str]]] | None:
    """The rows scored through one float64 matrix, when every input of the model is a number
    and every cell a plain finite one (with a decimal comma in a file so written; issue 29:
    most files); ``None`` otherwise, and they go cell by cell."""
    dialect = scorer.job.dialect
    if not scorer.info.all_numeric or not isinstance(dialect, Dialect):
        return None
    cells = bulk.picked(rows, positions)
    if dialect.decimal_comma:
        read = bulk.comma_numbers(cells)
        if read is None:
            return None
        matrix, cells = read
    else:
        matrix = bulk.number_matrix(cells)
    if matrix is None:
        return None
    return scorer.start(cells, lines, matrix, as_text=True)
