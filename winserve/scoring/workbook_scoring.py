"""An Excel workbook scored into a copy of itself (issue 27): its table's rows through the same
checks and calls as a CSV file's.

::

    input (.xlsx) ──► workbook.check (bounds) ──► workbook.table: the sheet and its header
        ──► columns.positions (said of the sheet's first row) ──► workbook.rows, by number
        ──► chunks of non-blank rows (as many as the model's cost allows: ChunkSize, issue 29)
            ──► RowScorer ──► {row number: cells}
        ──► workbook.write: the workbook with the added columns and an About sheet

The results are kept by row number until the sheet is read to its end (the workbook is then
loaded whole to be written: ``workbook.EXPANDED_LIMIT`` bounds both). Progress counts the
sheet's rows against the size the file states.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from typing import Any

from winserve.errors import BadRequest
from winserve.scoring import columns, reasons, workbook
from winserve.scoring.job import ScoringJob
from winserve.scoring.rows import Bounds, RowScorer


def _within_explained(job: ScoringJob, found: workbook.Table) -> None:
    """Refuse a sheet of more rows than are scored with their reasons (blank rows are not
    rows), reading no further than the first row past the limit."""
    rows = 0
    with contextlib.closing(workbook.rows(job.source, found)) as sheet:
        for _, values in sheet:
            rows += not workbook.blank(values)
            if rows > reasons.MAX_EXPLAINED_ROWS:
                raise reasons.too_many()


def score_workbook(job: ScoringJob, scorer: RowScorer, bounds: Bounds) -> None:
    """Score the sheet of ``job.source`` (the one asked for, ``job.sheet``, or the one that
    names the model's inputs) into ``job.result``, counting progress and problems on ``job``."""
    from winserve import __version__

    info = scorer.info
    workbook.check(job.source)
    found = workbook.table(job.source, info.feature_names, job.sheet)
    # progress by the sheet's rows (0 until done for a sheet saved without its size)
    job.kind, job.dialect, job.size = "xlsx", found.cells, found.last_row
    header = found.header
    columns.unique_header(header)
    try:
        positions = columns.positions(header, info)
    except BadRequest as exc:  # said of a sheet's first row, not of a CSV's first line
        where = f"the sheet {found.cells.sheet!r}"
        said = exc.message.replace("the CSV", where, 1).replace("first line", "first row", 1)
        raise BadRequest(said) from None
    if scorer.reasons is not None:  # refused before any model call (issue 25)
        _within_explained(job, found)
    results: dict[int, list[Any]] = {}
    empty = scorer.error_cells("")
    chunk: list[tuple[int, list[Any]]] = []
    rows = workbook.rows(job.source, found)
    for number, values in itertools.chain(rows, [(0, [])]):
        if number:  # (0, []) ends the sheet: the last chunk is scored
            if workbook.blank(values):
                results[number] = empty
            else:
                chunk.append((number, values))
            if len(chunk) < scorer.chunks.rows():  # the model's cost decides (issue 29)
                continue
        elif not chunk:  # the sheet ended with a full chunk, scored already
            break
        if scorer.closing.is_set():
            return
        if job.done_rows + len(chunk) > bounds.max_rows:
            raise BadRequest(
                f"the sheet has more than {bounds.max_rows} rows, the most allowed "
                "(setting: max_csv_rows)"
            )
        inputs = job.dialect.read_inputs((v for _, v in chunk), positions, [])
        lines = [n for n, _ in chunk]
        for position, cells in scorer.score(inputs, lines):
            results[lines[position]] = cells
        job.scored_rows += sum(not results[n][-1] for n in lines)
        job.done_rows += len(chunk)
        job.read_bytes = max(lines, default=job.read_bytes)
        chunk = []
    if job.done_rows == 0:
        raise BadRequest(f"the sheet {found.cells.sheet!r} has no rows under its first row")
    for number, cells in results.items():
        if cells is not empty:  # a blank row was not a prediction: no request id
            results[number] = [*cells, job.row_id(number)]
    about = [
        ("Scored by", f"winserve {__version__}"),
        ("Model", info.name),
        ("Model file SHA-256", info.sha256 or "(none)"),
        ("Model loaded at", info.loaded_at),
        ("Scored at (UTC)", time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())),
        ("Sheet scored", found.cells.sheet),
        ("Rows", job.done_rows),
        ("Rows scored", job.scored_rows),
        ("Rows with an error", job.done_rows - job.scored_rows),
    ]
    added = columns.added_columns(info, scorer.reason_columns)
    workbook.write(job.source, job.result, found, added, results, about)
    job.total_rows = job.done_rows
