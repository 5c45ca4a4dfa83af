"""One scoring job: the record the page and the jobs API show, and where its files are.

::

    JobManager.new ──► ScoringJob(id, folder) ──► the upload saved at ``source``
        job thread (csv_scoring / workbook_scoring) ──► counts, problems, ``dialect``
        the page, ``GET /jobs/<id>`` ◄── ``status()``; the download ◄── ``result``

Only the job's own thread writes its counts while it runs; the page reads them at any time, so
each field is a plain value, and ``state`` is written last when the job ends (see
``JobManager._run``). The pool's unit of work is a different thing (``backends``' call).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from winserve.scoring.workbook import Cells
from winserve.spreadsheet import FORMULA_START, Dialect, safe_text

MAX_PROBLEMS_KEPT = 1000
# "choose": a workbook whose sheet to score the user picks from ``ScoringJob.sheets`` (issue 27)
State = Literal["queued", "running", "done", "failed", "choose"]


@dataclass
class ScoringJob:
    """A CSV file or an Excel workbook being scored in the background, for one model version:
    its folder (the upload, then the result), its progress, the rows that were not scored and
    why, and how the file was read (``dialect``: a CSV dialect, or the workbook's sheet)."""

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
    explain: bool = False  # each row's top reasons asked for (issue 25, scoring.reasons)
    # a ZIP of images scored into a CSV, a row per file numbered in the ZIP's order (issue 24,
    # scoring.images)
    images: bool = False
    # the prediction log's part (issue 26, web/job_log.py): a sample of the answered rows
    # (predlog.jobs.Reservoir: ``add``), and what is called once the job has ended
    log_sample: Any = None
    on_end: Callable[[ScoringJob], None] | None = None

    def row_id(self, row: int) -> str:
        """The ``request id`` cell of a scored row: the upload's request id and the row's
        number (its line in a CSV file, its row in a sheet), so outcomes can be joined later
        (issue 26 joins on it)."""
        return f"{self.request_id or self.id}-{row}"

    def row_ids(self) -> Callable[[int], str]:
        """``row_id`` as the scored copy writes it, a cell that never starts a formula
        (``safe_text``): the prefix is looked at once, not at every row (issue 29)."""
        prefix = f"{self.request_id or self.id}-"
        if prefix.startswith(FORMULA_START):
            return lambda row: safe_text(f"{prefix}{row}")
        return lambda row: f"{prefix}{row}"

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
        """What ``GET /jobs/<id>`` answers (the page's progress reads it too)."""
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
            "read_as": self.dialect.read_as() if self.state == "done" else "",
            "request_id": self.request_id,
            "sheets": list(self.sheets),  # to choose from, in state "choose" (issue 27)
        }
