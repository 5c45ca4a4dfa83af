"""A chunk of a file's rows through the model: the cells the result adds to each row.

::

    rows of cells (picked and ordered by model input), their line numbers, and for a chunk of
    plain numbers its float64 matrix read already (bulk.py, issue 29)
        ──► Service.check: rows that break the model's inputs get their reason (row, column)
        ──► Service.predict_prepared on the others, the same backend as every API request, as
            a background call: other users' requests go before the chunk (issue 29)
              model restarting (503) ──► wait, up to UNAVAILABLE_WAIT
              timeout (504) ──► every row of the chunk gets the reason
              rows the model refused ──► the host isolated them (row_errors); blame names
                                         the cell to fix (issue 22)
        ──► the top reasons of each answered row, when the upload asked (reasons.py)
        ──► {position: prediction(s), probabilities, reasons, error}; the job's problems
            (a chunk answered whole: written a column at a time, bulk.answer_cells)
    the seconds of each chunk's model call ──► ``chunks`` (chunk_size.ChunkSize): the rows of
        the next chunk, so that a chunk's call takes a few ms (issue 29)

CSV files and workbooks go through the same ``RowScorer`` (csv_scoring, workbook_scoring).
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from winserve import blame, dates
from winserve.backends.base import Prediction, row_errors
from winserve.errors import BadRequest, ModelError, ModelTimeout, ModelUnavailable, WinserveError
from winserve.model_info import ModelInfo
from winserve.rows import COLUMN_MAJOR, TEXTS
from winserve.scoring import bulk
from winserve.scoring.ahead import Ahead
from winserve.scoring.chunk_size import MOST_ROWS, ChunkSize
from winserve.scoring.columns import error_cells
from winserve.scoring.job import ScoringJob
from winserve.scoring.lazy import Lazy
from winserve.scoring.reasons import Reasons, count
from winserve.service import PredictRequest, Prepared, Service
from winserve.spreadsheet import Dialect

UNAVAILABLE_WAIT = 120.0  # how long a job waits for a restarting model before giving up
# the most the job thread waits for a chunk's answer from the caller thread: a restarting
# model's wait, the longest call the settings allow (timeout ≤ 3600 s), and the calls that
# name the cells of rows the model refused; the call's own deadlines end it well before
CALL_WAIT = UNAVAILABLE_WAIT + 3 * 3600.0


@dataclass(frozen=True)
class ChunkAnswer:
    """A chunk's model call as the caller thread got it: the prediction and the rows the model
    refused (position: error), or no prediction and why the whole chunk got none."""

    prediction: Prediction | None
    failed: dict[int, WinserveError] = field(default_factory=dict)
    whole: str = ""


@dataclass(frozen=True)
class Bounds:
    """How a file is read: at most ``chunk_rows`` rows at a time (the job's ``ChunkSize``
    chooses how many, issue 29), or fewer once their cells cost ``chunk_bytes`` (issue 13
    item 6), and ``max_rows`` rows at most (setting max_csv_rows)."""

    chunk_rows: int
    chunk_bytes: int
    max_rows: int


def _request(rows: Sequence[Sequence[Any]], info: ModelInfo) -> PredictRequest:
    """Cells (already picked and ordered by model input) as a request for the service."""
    if info.features:
        request = PredictRequest.from_columns(
            {f.name: [r[i] for r in rows] for i, f in enumerate(info.features)}
        )
        request.cells = True  # columns of kind "any" typed as pd.read_csv types them (#22)
        return request
    return PredictRequest.from_rows([list(r) for r in rows])


class RowScorer:
    """Scores one job's rows, chunk by chunk, through the model version's service: each
    row gets its added cells (see ``columns.added_columns``), and each row that got no
    prediction is counted in the job's problems with its line and reason. ``closing`` stops
    the waiting for a restarting model when winserve stops; ``chunks`` says how many rows the
    next chunk should have (at most ``most_rows``)."""

    def __init__(
        self,
        service: Service,
        job: ScoringJob,
        closing: threading.Event,
        most_rows: int = MOST_ROWS,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.service = service
        self.clock = clock
        # each date column's format, pinned by the first chunk that has its dates (dates.py)
        self.date_formats: dict[str, str] = {}
        # smaller while users' calls come: users go first (issue 29)
        self.chunks = ChunkSize(most_rows, users=lambda: service.interactive_calls)
        self.job = job
        self.closing = closing
        self.info = service.info()
        # each answered row's top reasons, when the upload asked for them (issue 25) and the
        # model has named inputs to give as reasons
        explained = job.explain and count(self.info) > 0
        self.reasons = Reasons(service, self.info, closing) if explained else None
        self.reason_columns = self.reasons.columns if self.reasons is not None else 0
        self._ahead = Ahead()  # the chunks' calls, while this thread reads and writes

    def error_cells(self, reason: str) -> list[str]:
        return error_cells(self.info, reason, self.reason_columns)

    def score(
        self, rows: Sequence[Sequence[Any]], lines: list[int], matrix: Any = None
    ) -> list[tuple[int, list[str]]]:
        """Cells (prediction, probabilities, error) for each row, by position in ``rows``;
        ``matrix``: the rows' numbers read already (``bulk.number_matrix``, issue 29), checked
        as the service checks a matrix instead of cell by cell."""
        return list(enumerate(self.start(rows, lines, matrix, ahead=False)()))

    def start(
        self,
        rows: Sequence[Sequence[Any]],
        lines: list[int],
        matrix: Any = None,
        *,
        ahead: bool = True,
        as_text: bool = False,
    ) -> Callable[[], list[list[str]]]:
        """``score``, in two steps: the rows are checked and their model call begun now (by
        the job's caller thread, ``ahead``), and the function returned gives each row's cells,
        in the rows' order, once the call has answered. Meanwhile the job thread reads the
        next chunk and writes the last one (issue 29: the model and the web process each
        worked while the other waited). ``as_text``: the model host writes the answers as the
        file's cells (``host.answer_text``), where the answer allows."""
        info, job = self.info, self.job
        request = _request(rows, info) if matrix is None else PredictRequest.from_matrix(matrix)
        with dates.pinned(self.date_formats):  # one date format per column for the whole file
            prepared = self.service.check(request, max_rows=len(rows))
        refused: dict[int, list[str]] = {}
        for problem in prepared.problems:
            shown = f"column {problem.column!r}: " if problem.column else ""
            refused.setdefault(problem.row, []).append(shown + problem.message)
        results: list[list[str]] = [[] for _ in rows] if refused else []
        for row, messages in refused.items():
            reason = "; ".join(messages)
            job.problem(lines[row], reason)
            results[row] = self.error_cells(reason)
        good = prepared.good_rows
        if not good:
            return lambda: results
        if not refused:  # the usual chunk: no copy of its rows
            subset, subset_lines = rows, lines
        else:
            subset, subset_lines = [rows[i] for i in good], [lines[i] for i in good]
        if "matrix" in prepared.payload:  # laid out as the notebook's (chunk_size.py)
            prepared.payload[COLUMN_MAJOR] = True
        dialect = job.dialect
        if as_text and self.reasons is None and isinstance(dialect, Dialect):
            # the model host writes the answers as the file's cells (host.answer_text)
            prepared.payload[TEXTS] = {
                "separator": dialect.delimiter,
                "decimal_comma": dialect.decimal_comma,
            }
        if ahead:
            called = self._ahead.submit(self._predict, subset, subset_lines, prepared)
        else:
            called = concurrent.futures.Future()
            called.set_result(self._predict(subset, subset_lines, prepared))

        def finish() -> list[list[str]]:
            cells = self._cells(subset, subset_lines, called.result(CALL_WAIT))
            if not refused:
                return cells
            for position, each in zip(good, cells, strict=True):
                results[position] = each
            return results

        return finish

    def close(self) -> None:
        """End the caller thread (after its call, which has deadlines of its own)."""
        self._ahead.close()

    def _answers_row(self) -> Callable[[list[Any]], bool]:
        def answers(row: list[Any]) -> bool:
            try:
                with dates.pinned(self.date_formats):
                    prepared = self.service.check(_request([row], self.info), max_rows=1)
                if prepared.problems:
                    return False
                self.service.predict_prepared(prepared, False, background=True)
            except WinserveError:
                return False
            return True

        return answers

    def _failed_whole(self, lines: list[int], message: str) -> list[list[str]]:
        for line in lines:
            self.job.problem(line, message)
        return [self.error_cells(message) for _ in lines]

    def _predict(
        self, rows: Sequence[Sequence[Any]], lines: list[int], prepared: Prepared
    ) -> ChunkAnswer:
        """The model's answer for the valid rows (``prepared``, validated already); when the
        model rejects some, the model host finds which in the same call and answers the
        others (``row_errors``), so each rejected line gets its own reason. Runs on the
        caller thread: the job's own state is left to ``_cells``."""
        info = self.info
        waited_until = time.monotonic() + UNAVAILABLE_WAIT
        while True:
            try:
                began = self.clock()
                prediction = self.service.predict_prepared(
                    prepared, bool(info.has_proba), background=True
                )
                # the model host's own time for the call where it says (the time seen here
                # also holds the waits for this process's GIL, behind the job's own writing:
                # it made the chunks half the size wanted, and the job's calls twice as many),
                # else the call's as seen here
                seconds = prediction.seconds
                self.chunks.observe(len(rows), seconds or self.clock() - began)
                return ChunkAnswer(prediction)
            except ModelUnavailable:
                if time.monotonic() > waited_until or self.closing.is_set():
                    raise
                time.sleep(0.5)
            except ModelTimeout as exc:
                return ChunkAnswer(None, whole=exc.message)
            except (BadRequest, ModelError) as exc:
                isolated = row_errors(exc)
                if isolated is None:  # one row, or the call failed as a whole: every row's
                    return ChunkAnswer(None, whole=exc.message)
                failed = isolated.errors
                if info.features and not info.text_input:  # name the cell to fix (issue 22)
                    failed = blame.name_columns(
                        [list(row) for row in rows], failed, info.feature_names, self._answers_row()
                    )
                return ChunkAnswer(isolated.prediction, failed)

    def _cells(
        self, rows: Sequence[Sequence[Any]], lines: list[int], answer: ChunkAnswer
    ) -> list[list[str]]:
        """Each row's added cells from the model's answer, in order (on the job thread)."""
        info, job = self.info, self.job
        prediction, failed = answer.prediction, answer.failed
        if prediction is None:
            return self._failed_whole(lines, answer.whole)
        if prediction.texts is not None and isinstance(job.dialect, Dialect):
            # written by the model host: each row's cells, then the error's (none)
            ending = job.dialect.delimiter
            cells = [f"{text}{ending}".split(ending) for text in prediction.texts.split("\n")]
            if job.log_sample is not None:
                read_back = TextShares(cells, job.dialect) if info.has_proba else None
                job.log_sample.add(rows, lines, prediction.predictions, read_back, failed)
            return cells
        if job.log_sample is not None:  # the prediction log's sample of the job (issue 26)
            job.log_sample.add(
                rows, lines, prediction.predictions, prediction.probabilities, failed
            )
        shares = prediction.probabilities if info.has_proba else None
        if not failed and self.reasons is None:  # the chunk's answers a column at a time
            answered = bulk.answer_cells(prediction.predictions, shares, job.dialect)
            if answered is not None:
                return answered
        cells = []
        for index, value in enumerate(prediction.predictions):
            if index in failed:
                job.problem(lines[index], failed[index].message)
                cells.append(self.error_cells(failed[index].message))
                continue
            probabilities = (
                [job.dialect.write_value(p) for p in prediction.probabilities[index]]
                if info.has_proba and prediction.probabilities
                else []
            )
            values = value if isinstance(value, list) else [value]  # one per output
            written = [job.dialect.write_value(v) for v in values]
            why = (
                self.reasons.cells(list(rows[index]), job.dialect)
                if self.reasons is not None
                else []
            )
            cells.append([*written, *probabilities, *why, ""])
        return cells


class TextShares(Lazy[list[float]]):
    """The class probabilities of rows answered as text (``host.answer_text``), read back from
    their cells only for the rows asked for (the prediction log's sample keeps a few): the
    floats the host wrote, as ``repr`` writes a float exactly."""

    def __init__(self, cells: list[list[str]], dialect: Dialect) -> None:
        self._cells = cells
        self._comma = dialect.decimal_comma

    def __len__(self) -> int:
        return len(self._cells)

    def _item(self, index: int) -> list[float]:
        shares = self._cells[index][1:-1]  # after the prediction, before the error
        return [float(c.replace(",", ".") if self._comma else c) for c in shares]
