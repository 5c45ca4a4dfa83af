"""A CSV job in the prediction log (issue 26): one entry when the job ends, holding its summary
(rows, duration, status, model version) and a bounded reservoir sample of its rows' inputs
and answers, so that drift and the answers' chart see the jobs' traffic too.

::

    job thread (scoring/rows.py, chunk after chunk) ─► Reservoir.add: each answered row has
        the same chance to be kept, at most SAMPLE_ROWS in all, whatever the file's length
        (Algorithm L: the rows passed over between two kept ones are drawn, not each row)
    job's end (scoring/jobs.py) ─► web/job_log.py ─► Reservoir.record: a tuple, JOB first
        │ the log's queue and pipe, as the requests' (writer.py's ``event``)
        ▼
    the writer process (process.py) ─► ``write``: a row of the requests table, kind 'job'

The entry's ``latency_ms`` is the job's duration and its ``sample`` the kept rows' line
numbers (in order), so ``/log.csv`` lists them as it lists a large request's sample. A job's
cells are text as read from the file: a number input's cells become numbers here (an empty
or unreadable cell is missing), as the model's own request would have had them.
"""

from __future__ import annotations

import math
import random
import sqlite3
from collections.abc import Sequence
from typing import Any

from winserve.predlog import store

JOB = -2  # a job entry's first field (events.MARK is -1; a request's Record starts with a str)
SAMPLE_ROWS = 200

INSERT = (
    "INSERT INTO requests (request_id, time, model, version, sha256, route, method, caller, "
    "token_name, latency_ms, status, n_rows, kind, columns, inputs, predictions, "
    "probabilities, sample) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'job', ?, ?, ?, ?, ?)"
)
# (JOB, request_id, time, model, version, sha256, route, method, caller, token_name,
#  latency_ms, status, n_rows, names, rows, answers, probabilities, lines)
JobRecord = tuple[Any, ...]


def is_job(record: tuple[Any, ...]) -> bool:
    return bool(record) and record[0] == JOB


def _number(cell: Any) -> float | None:
    if isinstance(cell, int | float) and not isinstance(cell, bool):
        return float(cell)
    try:
        return float(str(cell).strip())
    except ValueError:
        return None  # empty, or a text the model refused: missing, as drift counts it


class Reservoir:
    """At most ``size`` of a job's answered rows, each row equally likely to be kept."""

    def __init__(
        self,
        names: Sequence[str],
        numbers: Sequence[bool],
        *,
        size: int = SAMPLE_ROWS,
        seed: int | None = None,
    ) -> None:
        self.names = list(names)
        self._numbers = list(numbers)  # which inputs are numbers: their cells become floats
        self.size = size
        self.seen = 0  # answered rows offered
        self._kept: list[tuple[int, list[Any], Any, Any]] = []
        self._random = random.Random(seed)
        self._weight = 0.0  # Algorithm L's W, once the reservoir is full
        self._next = 0  # the count of rows offered at which the next one is kept

    def add(
        self,
        rows: Sequence[Sequence[Any]],
        lines: Sequence[int],
        answers: Sequence[Any],
        probabilities: Sequence[Any] | None,
        skip: Any = (),
    ) -> None:
        """Offer a chunk's rows (cells in the model's input order), their line numbers and
        answers; rows in ``skip`` (positions the model refused) are not offered. Once the
        reservoir is full, only the rows it takes cost anything: the number of rows to pass
        over is drawn (Algorithm L; issue 29: a draw per row cost a 100,000-row job 60 ms of
        its thread's time)."""
        offered: Sequence[int] = (
            range(len(rows)) if not skip else [i for i in range(len(rows)) if i not in skip]
        )
        kept, size = self._kept, self.size

        def entry(i: int) -> tuple[int, list[Any], Any, Any]:
            shares = probabilities[i] if probabilities is not None else None
            return lines[i], list(rows[i]), answers[i], shares

        start = 0
        while len(kept) < size and start < len(offered):  # filling: every row is kept
            kept.append(entry(offered[start]))
            start += 1
            self.seen += 1
            if len(kept) == size:
                self._weight = math.exp(math.log(self._uniform()) / size)
                self._next = self.seen + self._passed_over()
        end = self.seen + len(offered) - start  # the count of rows offered after this chunk
        while len(kept) >= size > 0 and self._next <= end:
            # the row numbered _next among all offered: position _next - seen - 1 from start
            kept[self._random.randrange(size)] = entry(offered[start + self._next - self.seen - 1])
            self._weight *= math.exp(math.log(self._uniform()) / size)
            self._next += self._passed_over()
        self.seen = end

    def _uniform(self) -> float:
        """A draw in (0, 1)."""
        return self._random.random() or 0.5

    def _passed_over(self) -> int:
        """How many rows on from the last kept one the next kept one is (1: the very next)."""
        if self._weight >= 1.0:
            return 1
        return math.floor(math.log(self._uniform()) / math.log1p(-self._weight)) + 1

    def record(
        self,
        *,
        time: float,
        request_id: str,
        model: str,
        version: int | None,
        sha256: str | None,
        route: str,
        caller: str | None,
        token_name: str | None,
        seconds: float,
        status: int,
        n_rows: int,
        keep_inputs: bool,
    ) -> JobRecord:
        """The job's entry: its summary and the kept rows, in their order in the file."""
        kept = sorted(self._kept, key=lambda k: k[0])
        rows = None
        if keep_inputs and self.names:
            rows = [
                [
                    _number(cell) if number else cell
                    for cell, number in zip(row, self._numbers, strict=False)
                ]
                for _, row, _, _ in kept
            ]
        # a missing answer (NaN) is JSON's null, as the requests' (store._stored)
        answers = [None if a != a else a for a in (k[2] for k in kept)] if kept else None
        probabilities = [k[3] for k in kept] if kept and kept[0][3] is not None else None
        return (
            JOB,
            request_id,
            time,
            model,
            version,
            sha256,
            route,
            "POST",
            caller,
            token_name,
            seconds * 1000,
            status,
            n_rows,
            self.names if rows is not None else None,
            rows,
            answers,
            probabilities,
            [k[0] for k in kept] if kept else None,
        )


def write(
    conn: sqlite3.Connection, records: Sequence[JobRecord], known: dict[tuple[str, ...], int]
) -> int:
    """Store the jobs' entries in one transaction; how many were stored."""
    if not records:
        return 0
    conn.execute("BEGIN IMMEDIATE")
    try:
        for r in records:
            names, rows, answers, probabilities, lines = r[13:18]
            columns = inputs = None
            if names and rows:
                # the store's own encodings (its column sets, float64 bytes or JSON)
                columns = store._column_set(conn, names, known)
                inputs = store._inputs(rows)
            conn.execute(
                INSERT,
                (
                    *r[1:13],
                    columns,
                    inputs,
                    store._encode(answers) if answers is not None else None,
                    store._encode(probabilities) if probabilities is not None else None,
                    store._encode(lines) if lines is not None else None,
                ),
            )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        known.clear()
        raise
    return len(records)
