"""Scoring jobs of one model version: admitted, run in the background, kept, then deleted.

::

    upload (web/ui.py) ──► new: admitted (max_running at a time, folder size, free space)
        ──► save: the upload at job.source (a failed write frees the job's place)
        ──► start: a thread per job ──► csv_scoring / workbook_scoring, through a RowScorer
            on the version's service ──► job.result ──► state "done" / "failed" / "choose"
    the page, ``GET /jobs/<id>`` ──► get ──► the ScoringJob record (job.py)
    ``keep_seconds`` after its end ──► deleted (on the next new or get); close: all of them

The job thread sends each chunk of rows through the same service and backend as every API
request, so other users' requests interleave with the chunks instead of waiting behind the
file. An upload is deleted as soon as its job ends (done or failed), a result ``keep_seconds``
after, and all of them when winserve stops; the folder's total size is capped at ``max_bytes``
(setting ``max_jobs_mb``, issue 13 item 7: 30 quick failures used to leave 750 MB of uploads):
a new upload is refused with 503 when the folder is full, and a job whose result would
overfill it fails. The file may be any CSV a spreadsheet program writes, or an Excel workbook
(issue 27); the result is written the same way.

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
import logging
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from winserve import explaining, scratch
from winserve.errors import BadRequest, NotFound, PayloadTooLarge, WinserveError
from winserve.platform import cache_dir
from winserve.scoring import handover
from winserve.scoring.chunk_size import MOST_ROWS
from winserve.scoring.csv_scoring import score_csv
from winserve.scoring.images import score_images, takes_images
from winserve.scoring.job import ScoringJob, State
from winserve.scoring.rows import Bounds, RowScorer
from winserve.scoring.workbook import SheetChoice, is_workbook
from winserve.scoring.workbook_scoring import score_workbook
from winserve.service import Service

log = logging.getLogger("winserve")
JOB_ID = re.compile(r"[0-9a-f]{32}")
FREE_FLOOR = 64 << 20  # kept free on the folder's disk (or 5% of a smaller disk), issue 28
CHUNK_BYTES = 4 << 20  # what a chunk's cells may cost in memory (see csv_scoring._cost)


class TooBusy(WinserveError):
    """Scoring cannot take another file now (jobs at a time, the folder, the disk): 503 with
    Retry-After, and the setting to change when it is the folder."""

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
    """The scoring jobs of one model version (the registry makes one per version, and keeps
    a drained version's process while ``busy``): admission, the folder and its limits, a
    thread per job, and the jobs' lifetimes. The scoring itself is csv_scoring's and
    workbook_scoring's."""

    def __init__(
        self,
        service: Service,
        *,
        max_rows: int,
        keep_seconds: float,
        chunk_rows: int = MOST_ROWS,  # a cap: the model's cost sizes chunks (issue 29)
        chunk_bytes: int = CHUNK_BYTES,
        max_running: int = 2,
        max_bytes: int = 2048 << 20,
        parent: Path | None = None,
        clock: Callable[[], float] = time.perf_counter,  # times each chunk's call (issue 29)
    ) -> None:
        self._service = service
        self._clock = clock
        self._keep = keep_seconds
        self.bounds = Bounds(chunk_rows, chunk_bytes, max_rows)  # how each file is read
        self._max_bytes = max_bytes
        self._max_running = max_running
        self._jobs: dict[str, ScoringJob] = {}
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._parent = jobs_parent(parent)
        self._scratch: scratch.Scratch | None = None  # made on the first upload
        self._root: Path | None = None  # its folder

    # -- lifecycle ---------------------------------------------------------------------------

    def new(self, filename: str, size: int = 0) -> ScoringJob:
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
            job = ScoringJob(job_id, filename or "rows.csv", directory)
            self._jobs[job_id] = job
        return job

    def save(self, job: ScoringJob, write: Callable[[Path], object]) -> None:
        """``write(job.source)``: the upload on disk. When that fails (the disk filled up),
        the job is deleted, so that it frees its place (issue 28 item 4)."""
        try:
            write(job.source)
        except BaseException as exc:
            self.discard(job)
            if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
                raise _disk_full(_free(job.directory.parent)[0]) from None
            raise

    def start(self, job: ScoringJob, *, explain: bool = False) -> None:
        """Score ``job.source`` in the background, with each row's top reasons when
        ``explain`` (issue 25); the upload is refused (and deleted) if it filled the folder
        (503), or asks for reasons of a model without a usable reference sample (409)."""
        with contextlib.suppress(OSError):
            if job.source.stat().st_size >= self._max_bytes:  # would never fit, even alone
                self.discard(job)
                raise PayloadTooLarge(
                    f"the file is larger than the {_megabytes(self._max_bytes)} that CSV "
                    "scoring may use on disk (setting: max_jobs_mb)"
                )
        try:
            self._check_space()
            if explain:  # said now, not after the file is read: which file to add, and how
                explaining.require_reference(self._service.info())
            # a model that takes an image scores a ZIP of images, or an image (issue 24)
            job.images = job.images or takes_images(self._service.info())
        except BaseException:
            self.discard(job)
            raise
        job.explain = explain
        with contextlib.suppress(OSError):  # known now, for the result's URL (issue 27)
            job.kind = "xlsx" if not job.images and is_workbook(job.source) else "csv"
        threading.Thread(
            target=self._run, args=(job,), name=f"winserve-job-{job.id[:8]}", daemon=True
        ).start()

    def choose(self, job: ScoringJob, sheet: str) -> None:
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

    def discard(self, job: ScoringJob) -> None:
        with self._lock:
            self._jobs.pop(job.id, None)
        shutil.rmtree(job.directory, ignore_errors=True)

    def get(self, job_id: str) -> ScoringJob:
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

    def _room(self) -> None:
        """Before a chunk's lines are written: the folder is not over its cap (issue 13)."""
        used = _size(self._root) if self._root is not None else 0
        if used > self._max_bytes:
            raise self._full(used)

    def _run(self, job: ScoringJob) -> None:
        job.state = "running"
        state: State = "failed"
        error = "the job was stopped"
        scorer: RowScorer | None = None
        try:
            scorer = RowScorer(
                self._service, job, self._closing, self.bounds.chunk_rows, self._clock
            )
            with handover.job_running():  # users' requests wait less for the GIL
                if job.images:  # a ZIP of images, into a CSV (issue 24)
                    score_images(job, scorer, self.bounds, self._room)
                elif is_workbook(job.source):  # .xlsx (issue 27)
                    score_workbook(job, scorer, self.bounds)
                else:
                    score_csv(job, scorer, self.bounds, self._room)
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
            if scorer is not None:  # its caller thread, once its call is answered
                scorer.close()
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
            if job.on_end is not None and state != "choose":  # the log's entry (issue 26)
                try:
                    job.on_end(job)
                except Exception:  # the log never fails a job
                    log.exception("scoring job %s: not logged", job.id)
