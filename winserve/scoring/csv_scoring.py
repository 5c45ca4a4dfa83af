"""A CSV upload scored into a CSV result, read once as a stream, chunk by chunk.

::

    input.csv ──► sniff (separator, decimal mark, encoding: spreadsheet) ──► first line:
        the header (or, for a text model, maybe the first text) ──► columns.positions
    rows ──► chunks: the rows the scorer's ChunkSize asks for (the model's cost, issue 29;
        at most ``chunk_rows``), or fewer once their cells cost ``chunk_bytes``
        ──► score_chunk: blank and ragged rows answered here, the others through the
            RowScorer (a chunk of plain numbers as one matrix: bulk.py) ──► each line copied
            as the file wrote it, its added cells and request id after it (``_copied``; csv
            writes the chunk instead when a line is blank, ragged or not one line of the
            file, or an added cell needs quotes)
    scored.csv: the input's lines with prediction, probability, error and request id columns,
        written in the file's own dialect (UTF-8), so it opens where the file came from

Memory stays bounded by the chunk size whatever the file's length or width (issue 13 item 6:
a file of 30,000 mostly empty columns made 1,000-row chunks of 30 million cells), and
``spreadsheet`` bounds the length of a line. Progress is the share of the file's bytes read
(issue 14); the row count is known once the file is read to its end. Before each chunk is
written, ``room()`` checks the scoring folder's size (setting max_jobs_mb).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from winserve.errors import BadRequest
from winserve.scoring import bulk, columns, reasons
from winserve.scoring.job import ScoringJob
from winserve.scoring.rows import Bounds, RowScorer
from winserve.spreadsheet import Dialect, Rows, safe_text, sniff

Chunk = list[tuple[int, list[str]]]  # rows with their line numbers
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
) -> Iterator[tuple[Chunk, list[str | None]]]:
    """``chunks``, each with its rows' lines as written (``None`` for a row that is not one
    line of the file: a quoted cell holding a line break, or ``first``)."""
    rows_now = max_rows if callable(max_rows) else lambda: max_rows
    chunk: Chunk = [first] if first is not None else []
    written: list[str | None] = [None] if first is not None else []
    size = 0
    limit = rows_now()
    while True:
        # many rows at once where their lines allow (Rows.block: no Python per row), each
        # costing at most PER_CHARACTER bytes a character, so the block stays in the budget
        block = reader.block(limit - len(chunk), max(1, (max_bytes - size) // PER_CHARACTER))
        if block is not None:
            number, rows, lines = block
            if not rows:
                break
            chunk.extend(zip(range(number, number + len(rows)), rows, strict=True))
            written.extend(lines)
            cells, characters = sum(map(len, rows)), sum(map(len, lines))
            # _cost of the block's rows together (never less than the sum of theirs)
            size += 8 * cells + 2 * characters + 56 * min(cells, characters - cells + len(rows))
        else:
            last, read = reader.line_num, reader.characters
            row = next(reader, None)
            if row is None:
                break
            number = reader.line_num
            chunk.append((number, row))
            written.append(reader.line if number == last + 1 else None)
            # a line of a block handed back was counted when the block was read: its length
            size += _cost(len(row), max(reader.characters - read, len(reader.line)))
        if len(chunk) >= limit or size >= max_bytes:
            yield chunk, written
            chunk, written, size = [], [], 0
            limit = rows_now()
    if chunk:
        yield chunk, written


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
        ids = job.row_ids()
        for chunk, written in _chunks(reader, scorer.chunks.rows, bounds.chunk_bytes, first):
            if scorer.closing.is_set():
                break
            if texts:
                chunk = [(line, [separator.join(row)]) for line, row in chunk]
                empty = [False] * len(chunk)
            else:
                empty = [blank(row) for _, row in chunk]
            rows = len(chunk) - sum(empty)
            if job.done_rows + rows > bounds.max_rows:
                # the rest is only counted, for the message: still one read of the file
                rows += sum(texts or not blank(row) for row in reader)
                raise BadRequest(
                    f"the file has {job.done_rows + rows} rows, more than the "
                    f"{bounds.max_rows} allowed (setting: max_csv_rows)"
                )
            target.flush()
            room()
            scored = score_chunk(scorer, chunk, header, positions, texts, empty)
            copied = (
                None if texts else _copied(chunk, scored, empty, written, width, ids, separator)
            )
            if copied is not None:
                target.write(copied)
            else:
                # a row of the wrong length is padded or cut so that columns line up; a blank
                # row was not a prediction and gets no request id. One call writes the chunk.
                writer.writerows(
                    [
                        [
                            *(
                                row
                                if len(row) == width
                                else [*row[:width], *[""] * (width - len(row))]
                            ),
                            *cells,
                            "" if is_empty else ids(line),
                        ]
                        for (line, _), (row, cells), is_empty in zip(
                            chunk, scored, empty, strict=True
                        )
                    ]
                )
            # counted once written: rows scored in a chunk that was not are not
            job.scored_rows += sum(
                not (is_empty or cells[-1])
                for (_, cells), is_empty in zip(scored, empty, strict=True)
            )
            job.done_rows += rows
            job.read_bytes = source.buffer.tell()  # the decoder reads ahead: ≤ 8 KB more
    if job.done_rows == 0 and not scorer.closing.is_set():
        raise BadRequest("the file has no rows under its first line")
    job.total_rows = job.done_rows


def _copied(
    chunk: Chunk,
    scored: list[tuple[list[str], list[str]]],
    empty: list[bool],
    written: list[str | None],
    width: int,
    ids: Callable[[int], str],
    separator: str,
) -> str | None:
    """The chunk's scored lines as text: each line as the file wrote it, then the cells
    winserve adds (issue 29: the user's cells were parsed and written again by csv, a third
    of the writing's cost). ``None`` when a line is not that simple (a blank or ragged one,
    one spread over several lines) or an added cell would need quotes (a separator, a
    quote or a line break in it): the chunk is then written by csv, as before."""
    if any(empty) or None in written:
        return None
    if len(set(map(len, (row for row, _ in scored)))) != 1 or len(scored[0][0]) != width:
        return None
    added = [
        separator.join([*cells, ids(line)])
        for (line, _), (_, cells) in zip(chunk, scored, strict=True)
    ]
    text = "\n".join(added)  # one scan of the chunk's added cells for what needs quotes
    per_line = len(scored[0][1])  # the separators between a line's added cells and its id
    if '"' in text or "\r" in text or text.count("\n") != len(added) - 1:
        return None
    if text.count(separator) != per_line * len(added):
        return None
    lines = [line.rstrip("\r\n") for line in written if line is not None]
    return "".join(
        [f"{line}{separator}{cells}\r\n" for line, cells in zip(lines, added, strict=True)]
    )


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
) -> list[tuple[list[str], list[str]]]:
    """Each line of ``chunk`` with its added cells: a blank line gets empty ones, a line of
    the wrong length its reason, the others what the model answered. ``empty``: which lines
    are blank, when the caller knows already."""
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
                reason = f"has {len(row)} values; the first line names {width} columns"
                out[index] = scorer.error_cells(reason)
                job.problem(line, reason)
            else:
                usable.append(index)
    if usable:
        lines = [chunk[i][0] for i in usable]
        answered = _numbers(scorer, [chunk[i][1] for i in usable], positions, lines)
        if answered is None:
            number = [f.kind in ("number", "any") for f in info.features] or [False] * len(
                positions
            )
            # empty and NA cells become missing, as in read_csv
            if texts:
                rows = [[chunk[i][1][0]] for i in usable]
            else:
                rows = job.dialect.read_inputs((chunk[i][1] for i in usable), positions, number)
            answered = scorer.score(rows, lines)
        for position, cells in answered:
            out[usable[position]] = cells
    return [(row, out[i]) for i, (_, row) in enumerate(chunk)]


def _numbers(
    scorer: RowScorer, rows: list[list[str]], positions: list[int], lines: list[int]
) -> list[tuple[int, list[str]]] | None:
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
    return scorer.score(cells, lines, matrix)
