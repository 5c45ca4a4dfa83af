"""Scoring a CSV file in the background, chunk by chunk, for the web page.

The upload is on disk; a job thread reads it as a stream, sends each chunk of rows through the
same service and backend as every API request (so other users' requests interleave with the
chunks instead of waiting behind the file), and writes the input with prediction, probability
and error columns appended to a result file on disk. Memory stays bounded by the chunk size
whatever the file's length or width: a chunk ends after ``chunk_rows`` rows or ``chunk_bytes``
of cells, whichever comes first (issue 13 item 6: a file of 30,000 mostly empty columns made
1,000-row chunks of 30 million cells), and ``spreadsheet`` bounds the length of a line. Rows
that fail validation, or that the model rejects, get their line number and reason; the other
rows are scored. An upload is deleted as soon as its job ends (done or failed), a result
``keep_seconds`` after, and all of them when winserve stops; the folder's total size is capped
at ``max_bytes`` (setting ``max_jobs_mb``, issue 13 item 7: 30 quick failures used to leave
750 MB of uploads): a new upload is refused with 503 when the folder is full, and a job whose
result would overfill it fails. The file may be any CSV a spreadsheet program writes;
``spreadsheet`` works out which, and the result is written the same way.

The disk itself may fill up (issue 28 item 4: two uploads that failed on a full disk stayed
"queued" for ever, refusing every later upload and keeping a drained version's model process):
an upload is refused with 503 before it is written when the folder's disk has too little free
space for it and its result (``FREE_FLOOR`` kept free besides); an upload or a job that fails
anyway (``ENOSPC``) is deleted and frees its place, so scoring comes back by itself once there
is space again. The folder (setting ``jobs_path``, default ``jobs`` in the per-user cache) holds
one ``scratch`` folder per model version, marked as this process's: a winserve that was killed
leaves its own, which the next one deletes at start (``sweep``), never a running one's.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import itertools
import logging
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from winserve import blame, scratch
from winserve.backends.base import row_errors
from winserve.errors import (
    BadRequest,
    ModelError,
    ModelTimeout,
    ModelUnavailable,
    NotFound,
    PayloadTooLarge,
    WinserveError,
)
from winserve.model_info import ModelInfo
from winserve.platform import cache_dir
from winserve.scoring.workbook import Cells, SheetChoice, is_workbook
from winserve.service import PredictRequest, Prepared, Service
from winserve.spreadsheet import Dialect, Rows, safe_text, sniff

log = logging.getLogger("winserve")
JOB_ID = re.compile(r"[0-9a-f]{32}")
MAX_PROBLEMS_KEPT = 1000
FREE_FLOOR = 64 << 20  # kept free on the folder's disk (or 5% of a smaller disk), issue 28
CHUNK_BYTES = 4 << 20  # what a chunk's cells may cost in memory, counted as ``_cost`` does
UNAVAILABLE_WAIT = 120.0  # how long a job waits for a restarting model before giving up
# "choose": a workbook whose sheet to score the user picks from ``Job.sheets`` (issue 27)
State = Literal["queued", "running", "done", "failed", "choose"]
# the columns added after the predictions; "request id" last, so that the columns before it
# keep the places they had (issue 27)
TAIL = ("error", "request id")


class TooBusy(WinserveError):
    status = 503
    code = "busy"


def _megabytes(size: int) -> str:
    return f"{size / 2**20:.0f} MB" if size >= 2**20 else f"{size / 2**20:.2g} MB"


def _size(folder: Path) -> int:
    """Bytes in the files under ``folder`` (two levels: jobs, and their files)."""
    total = 0
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            with contextlib.suppress(OSError):
                if entry.is_dir(follow_symlinks=False):
                    total += _size(Path(entry.path))
                else:
                    total += entry.stat(follow_symlinks=False).st_size
    return total


@dataclass
class Job:
    id: str
    filename: str
    directory: Path
    state: State = "queued"
    total_rows: int = 0  # known once the file is read to its end (0 until then)
    done_rows: int = 0
    size: int = 0  # bytes of the upload
    read_bytes: int = 0  # how far into it the scoring has read
    scored_rows: int = 0
    problems: list[tuple[int, str]] = field(default_factory=list)
    problem_count: int = 0
    error: str = ""
    started: float = field(default_factory=time.monotonic)
    seconds: float = 0.0  # the final figure, once the job has ended (see ``elapsed``)
    ended_at: float | None = None
    dialect: Dialect | Cells = field(default_factory=Dialect)
    kind: Literal["csv", "xlsx"] = "csv"  # an Excel workbook is scored into one (issue 27)
    sheet: str = ""  # the workbook's sheet to score, when the user named one
    sheets: tuple[str, ...] = ()  # a workbook's sheets to choose from, when waiting for a choice
    request_id: str = ""  # the upload's X-Request-Id: each row's id is "<it>-<row>" (issue 27)

    def row_id(self, row: int) -> str:
        """The ``request id`` cell of a scored row: the upload's request id and the row's
        number (its line in a CSV file, its row in a sheet), so outcomes can be joined later
        (issue 26 joins on it)."""
        return f"{self.request_id or self.id}-{row}"

    @property
    def source(self) -> Path:
        return self.directory / "input.csv"

    @property
    def result(self) -> Path:
        return self.directory / f"scored.{self.kind}"

    @property
    def result_name(self) -> str:
        stem = Path(self.filename).stem or "rows"
        safe = re.sub(r"[^\w.-]+", "_", stem)[:80] or "rows"
        return f"{safe}-scored.{self.kind}"

    @property
    def percent(self) -> int:
        """By bytes read: the file is read once, so its rows are not counted before it is
        scored (issue 14)."""
        if self.state == "done":
            return 100
        return min(99, int(100 * self.read_bytes / self.size)) if self.size else 0

    @property
    def elapsed(self) -> float:
        """Seconds since the upload: so far while the job runs, the final figure once ended
        (the status showed 0.0 until then)."""
        return self.seconds if self.ended_at is not None else time.monotonic() - self.started

    def problem(self, line: int, reason: str) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_PROBLEMS_KEPT:
            self.problems.append((line, reason))

    def status(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "state": self.state,
            "file": self.filename,
            "total_rows": self.total_rows,
            "done_rows": self.done_rows,
            "scored_rows": self.scored_rows,
            "percent": self.percent,
            "problem_count": self.problem_count,
            "error": self.error,
            "seconds": round(self.elapsed, 2),
            "read_as": self.dialect.describe() if self.state == "done" else "",
            "request_id": self.request_id,
            "sheets": list(self.sheets),  # to choose from, in state "choose" (issue 27)
        }


def _request(rows: list[list[Any]], info: ModelInfo) -> PredictRequest:
    """CSV cells (already picked and ordered by model input) as a request for the service."""
    if info.features:
        request = PredictRequest.from_columns(
            {f.name: [r[i] for r in rows] for i, f in enumerate(info.features)}
        )
        request.cells = True  # columns of kind "any" typed as pd.read_csv types them (#22)
        return request
    return PredictRequest.from_rows([list(r) for r in rows])


def _blank(row: list[str]) -> bool:
    return not "".join(row).strip()  # one C call, also for a row of 30,000 cells


def _cost(cells: int, characters: int) -> int:
    """About what a row read by csv holds in memory, from its number of cells and of
    characters (counting every cell would cost as much as reading the file): a pointer per
    cell, the characters, and a string object for each cell that is not empty, of which there
    are at most as many as characters that are not separators (empty cells are all the one
    shared "")."""
    return 8 * cells + characters + 56 * min(cells, max(0, characters - cells + 1))


def _chunks(
    reader: Rows, max_rows: int, max_bytes: int, first: tuple[int, list[str]] | None = None
) -> Iterator[list[tuple[int, list[str]]]]:
    """Rows with their line numbers, ``max_rows`` at a time, or fewer once they cost
    ``max_bytes``; ``first``: a row read already (a text file's first line, which is data)."""
    chunk: list[tuple[int, list[str]]] = [first] if first is not None else []
    size = 0
    read = reader.characters
    for row in reader:
        chunk.append((reader.line_num, row))
        size += _cost(len(row), reader.characters - read)
        read = reader.characters
        if len(chunk) >= max_rows or size >= max_bytes:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def _prediction_names(info: ModelInfo) -> list[str]:
    """The columns a prediction fills: one, or one per output of a multi-output model."""
    if info.n_outputs > 1:
        return [f"prediction {k + 1}" for k in range(info.n_outputs)]
    return ["prediction"]


def _names_text_column(first: list[str], info: ModelInfo) -> bool:
    """Whether a text model's file begins with a line naming its columns: one of the first
    line's cells is the model's text input (``text``), as the numeric path's first line names
    the model's inputs. Otherwise that line is the first text (issue: a file of texts has no
    header as often as not, and dropping its first text silently was wrong)."""
    return any(cell.strip() == info.feature_names[0] for cell in first)


def _unique_header(header: list[str]) -> None:
    if not header or not any(h.strip() for h in header):
        raise BadRequest("the first line must name the columns")
    seen: set[str] = set()
    for name in header:
        if not name.strip():
            continue  # unnamed columns (Excel writes them for formatted empty cells) are kept as is
        if name in seen:
            raise BadRequest(f"the column {name!r} appears twice in the first line")
        seen.add(name)


def _positions(header: list[str], info: ModelInfo) -> list[int]:
    """Which CSV column feeds each model input; extra columns are carried through unscored."""
    if not info.features:
        return list(range(len(header)))
    index = {name.strip(): i for i, name in enumerate(header)}
    missing = [f.name for f in info.features if f.name not in index]
    if not missing:
        return [index[f.name] for f in info.features]
    if not info.feature_names_known and len(header) == info.n_features:
        return list(range(len(header)))
    shown = ", ".join(repr(n) for n in missing[:10]) + (" …" if len(missing) > 10 else "")
    found = ", ".join(repr(n.strip()) for n in header[:10]) + (" …" if len(header) > 10 else "")
    raise BadRequest(
        f"the CSV has no column{'s' if len(missing) > 1 else ''} {shown}; its first line must "
        "name the model's inputs: "
        + ", ".join(repr(n) for n in info.feature_names[:20])
        + f"; it names {found}"
    )


def jobs_parent(configured: Path | None) -> Path:
    """Where the model versions' job folders go: the setting ``jobs_path``, or the cache's."""
    return configured if configured is not None else cache_dir() / "jobs"


def _disk_full(free: int) -> TooBusy:
    error = TooBusy(
        f"the disk that holds the files of CSV scoring is full ({_megabytes(free)} free); "
        "try again later, or ask the person who runs winserve to free space on it or to "
        "choose another folder (setting: jobs_path)"
    )
    error.headers["Retry-After"] = "60"
    return error


def _free(folder: Path) -> tuple[int, int]:
    """Bytes free on ``folder``'s disk, and how many of them must stay free."""
    try:
        usage = shutil.disk_usage(folder)
    except OSError:  # not there (any more): nothing to check, the write will say
        return 0, 0
    return usage.free, min(FREE_FLOOR, usage.total // 20)


class JobManager:
    def __init__(
        self,
        service: Service,
        *,
        max_rows: int,
        keep_seconds: float,
        chunk_rows: int = 1000,
        chunk_bytes: int = CHUNK_BYTES,
        max_running: int = 2,
        max_bytes: int = 2048 << 20,
        parent: Path | None = None,
    ) -> None:
        self._service = service
        self._max_rows = max_rows
        self._keep = keep_seconds
        self._chunk = chunk_rows
        self._chunk_bytes = chunk_bytes
        self._max_bytes = max_bytes
        self._max_running = max_running
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._parent = jobs_parent(parent)
        self._scratch: scratch.Scratch | None = None  # made on the first upload
        self._root: Path | None = None  # its folder

    # -- lifecycle ---------------------------------------------------------------------------

    def new(self, filename: str, size: int = 0) -> Job:
        """A job with a folder for its upload of about ``size`` bytes; ``save`` the upload,
        then ``start`` the job."""
        self._expire()
        with self._lock:
            running = sum(j.state in ("queued", "running") for j in self._jobs.values())
            if running >= self._max_running:
                error = TooBusy(
                    f"{running} files are being scored already; try again when one is done"
                )
                error.headers["Retry-After"] = "10"
                raise error
            if self._scratch is None:
                self._scratch = scratch.Scratch(self._parent, "run-")
                self._root = self._scratch.path
            root = self._scratch.path
            self._check_space()
            free, floor = _free(root)
            if free < floor + 2 * size:  # the upload, and a result at least as large
                raise _disk_full(free)
            job_id = uuid.uuid4().hex
            directory = root / job_id
            directory.mkdir(parents=True)  # the run folder may have been swept meanwhile
            job = Job(job_id, filename or "rows.csv", directory)
            self._jobs[job_id] = job
        return job

    def save(self, job: Job, write: Callable[[Path], object]) -> None:
        """``write(job.source)``: the upload on disk. When that fails (the disk filled up),
        the job is deleted, so that it frees its place (issue 28 item 4)."""
        try:
            write(job.source)
        except BaseException as exc:
            self.discard(job)
            if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
                raise _disk_full(_free(job.directory.parent)[0]) from None
            raise

    def start(self, job: Job) -> None:
        """Score ``job.source`` in the background; the upload is refused (503, and deleted)
        if it filled the folder."""
        with contextlib.suppress(OSError):
            if job.source.stat().st_size >= self._max_bytes:  # would never fit, even alone
                self.discard(job)
                raise PayloadTooLarge(
                    f"the file is larger than the {_megabytes(self._max_bytes)} that CSV "
                    "scoring may use on disk (setting: max_jobs_mb)"
                )
        try:
            self._check_space()
        except BaseException:
            self.discard(job)
            raise
        with contextlib.suppress(OSError):  # known now, for the result's URL (issue 27)
            job.kind = "xlsx" if is_workbook(job.source) else "csv"
        threading.Thread(
            target=self._run, args=(job,), name=f"winserve-job-{job.id[:8]}", daemon=True
        ).start()

    def choose(self, job: Job, sheet: str) -> None:
        """Score the sheet ``sheet`` of a workbook that waits for it (state "choose")."""
        with self._lock:
            if job.state != "choose":
                raise BadRequest("this job is not waiting for a sheet to be chosen")
            if sheet not in job.sheets:
                shown = ", ".join(repr(n) for n in job.sheets[:20])
                raise BadRequest(f"choose one of the sheets {shown}; not {sheet[:100]!r}")
            running = sum(j.state in ("queued", "running") for j in self._jobs.values())
            if running >= self._max_running:
                error = TooBusy(
                    f"{running} files are being scored already; try again when one is done"
                )
                error.headers["Retry-After"] = "10"
                raise error
            job.sheet, job.sheets, job.error = sheet, (), ""
            job.started, job.ended_at, job.state = time.monotonic(), None, "queued"
        threading.Thread(
            target=self._run, args=(job,), name=f"winserve-job-{job.id[:8]}", daemon=True
        ).start()

    def discard(self, job: Job) -> None:
        with self._lock:
            self._jobs.pop(job.id, None)
        shutil.rmtree(job.directory, ignore_errors=True)

    def get(self, job_id: str) -> Job:
        self._expire()
        job = self._jobs.get(job_id) if JOB_ID.fullmatch(job_id) else None
        if job is None:
            raise NotFound("no such scoring job; results are kept for a limited time")
        return job

    def busy(self) -> bool:
        """Whether a job is scoring (its model version must keep serving until it ends)."""
        with self._lock:
            return any(j.state in ("queued", "running") for j in self._jobs.values())

    def _check_space(self) -> None:
        used = _size(self._root) if self._root is not None else 0
        if used >= self._max_bytes:
            raise self._full(used)

    def _full(self, used: int) -> TooBusy:
        keep = f"{self._keep / 60:g}"
        error = TooBusy(
            f"the folder for CSV scoring is full: {_megabytes(used)} of the "
            f"{_megabytes(self._max_bytes)} allowed (setting: max_jobs_mb); results are "
            f"deleted {keep} minutes after their job (setting: keep_results_minutes), so try "
            "again later, or ask the person who runs winserve to raise max_jobs_mb"
        )
        error.headers["Retry-After"] = "60"
        return error

    def close(self) -> None:
        self._closing.set()
        if self._scratch is not None:
            self._scratch.close()

    def _expire(self) -> None:
        now = time.monotonic()
        with self._lock:
            old = [j for j in self._jobs.values() if j.ended_at and now - j.ended_at > self._keep]
            for job in old:
                del self._jobs[job.id]
        for job in old:
            shutil.rmtree(job.directory, ignore_errors=True)

    # -- the work ----------------------------------------------------------------------------

    def _run(self, job: Job) -> None:
        job.state = "running"
        state: State = "failed"
        error = "the job was stopped"
        try:
            if is_workbook(job.source):  # .xlsx (issue 27)
                self._score_workbook(job)
            else:
                self._score(job)
            state, error = "done", ""
        except SheetChoice as exc:  # kept until a sheet is chosen, or the job expires
            job.sheets, state, error = exc.sheets, "choose", exc.message
        except WinserveError as exc:
            error = exc.message
        except OSError as exc:
            if exc.errno == errno.ENOSPC:  # the result could not be written: say so
                error = _disk_full(_free(job.directory.parent)[0]).message
            else:
                error = f"the file could not be read: {exc}"
        except (UnicodeDecodeError, csv.Error) as exc:
            error = f"the file could not be read: {exc}"
        except Exception:  # a bug: say so on the page, keep the details in the log
            log.exception("scoring job %s failed", job.id)
            error = "an internal error stopped the job (see the log)"
        finally:
            # the upload is of no more use (unless a sheet is to be chosen), and a failed
            # job's result is never offered
            if state != "choose":
                job.source.unlink(missing_ok=True)
            if state == "failed":
                job.result.unlink(missing_ok=True)
            # the final figures first, the state last: a status read in between shows the
            # job running with its seconds so far, never "done" with no time
            job.seconds = time.monotonic() - job.started
            job.ended_at = time.monotonic()
            job.error, job.state = error, state

    def _score(self, job: Job) -> None:
        info = self._service.info()
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
            if info.text_input and not _names_text_column(header, info):
                # a file of texts without a first line naming the column: its first line is
                # the first text, and the scored copy gets the line naming the columns
                first, header = (reader.line_num, header), list(info.feature_names)
            _unique_header(header)
            positions = _positions(header, info)
            # one text per line (a text model's one-column file): each line is a text as it
            # was written, as model.predict(lines) gets them from the file read line by line;
            # a separator in it is part of the text, a blank line is the text "" (never a
            # missing value, nor skipped)
            texts = info.text_input and len(header) == 1
            separator = dialect.delimiter
            classes = [str(c) for c in info.classes] if info.has_proba else []
            writer = dialect.writer(target)
            added = [*_prediction_names(info), *(f"probability {c}" for c in classes), *TAIL]
            writer.writerow([*header, *map(safe_text, added)])
            for chunk in _chunks(reader, self._chunk, self._chunk_bytes, first):
                if self._closing.is_set():
                    break
                if texts:
                    chunk = [(line, [separator.join(row)]) for line, row in chunk]
                    rows = len(chunk)
                else:
                    rows = sum(not _blank(row) for _, row in chunk)
                if job.done_rows + rows > self._max_rows:
                    # the rest is only counted, for the message: still one read of the file
                    rows += sum(texts or not _blank(row) for row in reader)
                    raise BadRequest(
                        f"the file has {job.done_rows + rows} rows, more than the "
                        f"{self._max_rows} allowed (setting: max_csv_rows)"
                    )
                target.flush()
                used = _size(self._root) if self._root is not None else 0
                if used > self._max_bytes:
                    raise self._full(used)
                width = len(header)
                scored = self._score_chunk(chunk, header, positions, info, job, texts)
                for (line, _), (row, cells) in zip(chunk, scored, strict=True):
                    # a row of the wrong length is padded or cut so that columns line up;
                    # a blank row was not a prediction and gets no request id
                    ids = [""] if not texts and _blank(row) else [safe_text(job.row_id(line))]
                    writer.writerow([*row[:width], *[""] * (width - len(row)), *cells, *ids])
                job.done_rows += rows
                job.read_bytes = source.buffer.tell()  # the decoder reads ahead: ≤ 8 KB more
        if job.done_rows == 0 and not self._closing.is_set():
            raise BadRequest("the file has no rows under its first line")
        job.total_rows = job.done_rows

    def _score_chunk(
        self,
        chunk: list[tuple[int, list[str]]],
        header: list[str],
        positions: list[int],
        info: ModelInfo,
        job: Job,
        texts: bool = False,
    ) -> list[tuple[list[str], list[str]]]:
        width = len(header)
        out: dict[int, list[str]] = {}
        usable: list[int] = []
        blank = 0
        for index, (line, row) in enumerate(chunk):
            if texts:  # one text per line, each as written ("" and "NA" are texts too)
                usable.append(index)
            elif _blank(row):  # an empty line, or Excel's ";;;" for formatted empty cells
                out[index] = self._error_cells(info, "")
                blank += 1
            elif len(row) != width:
                reason = f"has {len(row)} values; the first line names {width} columns"
                out[index] = self._error_cells(info, reason)
                job.problem(line, reason)
            else:
                usable.append(index)
        if usable:
            number = [f.kind in ("number", "any") for f in info.features] or [False] * len(
                positions
            )
            # empty and NA cells become missing, as in read_csv
            if texts:
                rows = [[chunk[i][1][0]] for i in usable]
            else:
                rows = job.dialect.read_inputs((chunk[i][1] for i in usable), positions, number)
            for position, cells in self._predict(rows, info, job, [chunk[i][0] for i in usable]):
                out[usable[position]] = cells
        job.scored_rows += sum(1 for cells in out.values() if not cells[-1]) - blank
        return [(row, out[i]) for i, (_, row) in enumerate(chunk)]

    def _error_cells(self, info: ModelInfo, reason: str) -> list[str]:
        empty = [""] * (max(1, info.n_outputs) + (len(info.classes) if info.has_proba else 0))
        return [*empty, safe_text(reason)]

    def _predict(
        self, rows: list[list[Any]], info: ModelInfo, job: Job, lines: list[int]
    ) -> list[tuple[int, list[str]]]:
        """Cells (prediction, probabilities, error) for each row, by position in ``rows``."""
        prepared = self._service.check(_request(rows, info), max_rows=len(rows))
        results: list[tuple[int, list[str]]] = []
        reasons: dict[int, list[str]] = {}
        for problem in prepared.problems:
            shown = f"column {problem.column!r}: " if problem.column else ""
            reasons.setdefault(problem.row, []).append(shown + problem.message)
        for row, texts in reasons.items():
            reason = "; ".join(texts)
            job.problem(lines[row], reason)
            results.append((row, self._error_cells(info, reason)))
        good = prepared.good_rows
        if good:
            subset, subset_lines = [rows[i] for i in good], [lines[i] for i in good]
            for position, cells in self._call(subset, info, job, subset_lines, prepared):
                results.append((good[position], cells))
        return results

    def _answers_row(self, info: ModelInfo) -> Callable[[list[Any]], bool]:
        def answers(row: list[Any]) -> bool:
            try:
                prepared = self._service.check(_request([row], info), max_rows=1)
                if prepared.problems:
                    return False
                self._service.predict_prepared(prepared, False)
            except WinserveError:
                return False
            return True

        return answers

    def _call(
        self,
        rows: list[list[Any]],
        info: ModelInfo,
        job: Job,
        lines: list[int],
        prepared: Prepared,
    ) -> list[tuple[int, list[str]]]:
        """Predict the valid rows (``prepared``, validated already); when the model rejects
        some, the model host finds which in the same call and answers the others
        (``row_errors``), so each rejected line gets its own reason."""
        waited_until = time.monotonic() + UNAVAILABLE_WAIT
        failed: dict[int, WinserveError] = {}
        while True:
            try:
                prediction = self._service.predict_prepared(prepared, bool(info.has_proba))
                break
            except ModelUnavailable:
                if time.monotonic() > waited_until or self._closing.is_set():
                    raise
                time.sleep(0.5)
            except ModelTimeout as exc:
                for line in lines:
                    job.problem(line, exc.message)
                return [(i, self._error_cells(info, exc.message)) for i in range(len(rows))]
            except (BadRequest, ModelError) as exc:
                isolated = row_errors(exc)
                if isolated is None:  # one row, or the call failed as a whole: every row's
                    for line in lines:
                        job.problem(line, exc.message)
                    return [(i, self._error_cells(info, exc.message)) for i in range(len(rows))]
                prediction, failed = isolated.prediction, isolated.errors
                if info.features and not info.text_input:  # name the cell to fix (issue 22)
                    failed = blame.name_columns(
                        rows, failed, info.feature_names, self._answers_row(info)
                    )
                break
        cells = []
        for index, value in enumerate(prediction.predictions):
            if index in failed:
                job.problem(lines[index], failed[index].message)
                cells.append((index, self._error_cells(info, failed[index].message)))
                continue
            probabilities = (
                [job.dialect.write_value(p) for p in prediction.probabilities[index]]
                if info.has_proba and prediction.probabilities
                else []
            )
            values = value if isinstance(value, list) else [value]  # one per output
            written = [job.dialect.write_value(v) for v in values]
            cells.append((index, [*written, *probabilities, ""]))
        return cells

    def _score_workbook(self, job: Job) -> None:
        """An Excel workbook (issue 27): its table's rows through the same checks and calls
        as a CSV's, the results kept by row number, then written into a copy of the workbook
        (workbook.py). Progress counts the sheet's rows."""
        from winserve import __version__
        from winserve.scoring import workbook

        info = self._service.info()
        workbook.check(job.source)
        found = workbook.table(job.source, info.feature_names, job.sheet)
        # progress by the sheet's rows (0 until done for a sheet saved without its size)
        job.kind, job.dialect, job.size = "xlsx", found.cells, found.last_row
        header = found.header
        _unique_header(header)
        try:
            positions = _positions(header, info)
        except BadRequest as exc:  # said of a sheet's first row, not of a CSV's first line
            where = f"the sheet {found.cells.sheet!r}"
            said = exc.message.replace("the CSV", where, 1).replace("first line", "first row", 1)
            raise BadRequest(said) from None
        results: dict[int, list[Any]] = {}
        empty = self._error_cells(info, "")
        chunk: list[tuple[int, list[Any]]] = []
        rows = workbook.rows(job.source, found)
        for number, values in itertools.chain(rows, [(0, [])]):
            if number:  # (0, []) ends the sheet: the last chunk is scored
                if workbook.blank(values):
                    results[number] = empty
                else:
                    chunk.append((number, values))
                if len(chunk) < self._chunk:
                    continue
            elif not chunk:  # the sheet ended with a full chunk, scored already
                break
            if self._closing.is_set():
                return
            if job.done_rows + len(chunk) > self._max_rows:
                raise BadRequest(
                    f"the sheet has more than {self._max_rows} rows, the most allowed "
                    "(setting: max_csv_rows)"
                )
            inputs = job.dialect.read_inputs((v for _, v in chunk), positions, [])
            lines = [n for n, _ in chunk]
            for position, cells in self._predict(inputs, info, job, lines):
                results[lines[position]] = cells
            job.scored_rows += sum(not results[n][-1] for n in lines)
            job.done_rows += len(chunk)
            job.read_bytes = max(lines, default=job.read_bytes)
            chunk = []
        if job.done_rows == 0:
            raise BadRequest(f"the sheet {found.cells.sheet!r} has no rows under its first row")
        classes = [str(c) for c in info.classes] if info.has_proba else []
        added = [*_prediction_names(info), *(f"probability {c}" for c in classes), *TAIL]
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
        workbook.write(job.source, job.result, found, added, results, about)
        job.total_rows = job.done_rows
