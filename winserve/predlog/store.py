"""The prediction log's SQLite file: its schema, batched writes and pruning (issue 26).

Only the writer thread (``writer.py``) writes; readers (``export.py``) open connections of
their own. WAL mode with ``synchronous=NORMAL``: a committed batch is in the operating system's
hands, so killing winserve at any moment loses only what was not yet committed (the writer
commits every half second) and never corrupts the file; a power cut may lose the last batches
too, never the file. ``auto_vacuum=INCREMENTAL`` lets pruning give the space back to the disk.

Schema (``PRAGMA user_version`` = ``SCHEMA_VERSION``)::

    requests  one per prediction request: time (Unix seconds, UTC), request_id (the X-Request-Id
              winserve answered with; a client may send its own, so not unique), model, version
              (1, 2, … within one run), sha256 (the file's: a version across restarts), route,
              method, caller (the client's address), token_name (NULL until named callers),
              latency_ms, status, n_rows, kind ('request'; 'job' for CSV scoring, later)
    rows      up to MAX_ROWS_STORED of a request's rows (a uniform sample of a larger request):
              row (0-based in the request), inputs (a JSON object column → value; NULL with
              log_inputs = false), prediction (JSON), probabilities (JSON list, or NULL)

Drift reads ``rows.inputs`` by model and time; accuracy joins outcomes on ``request_id`` and
``row`` (or on a key column inside ``inputs``), per ``sha256``.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

SCHEMA_VERSION = 1
MAX_ROWS_STORED = 100  # of one request; a CSV job's sample will take the same bound
DAY = 86_400.0
BUSY_MS = 1000  # another winserve serving the same file may hold the write lock briefly

SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY,
    request_id TEXT NOT NULL,
    time REAL NOT NULL,
    model TEXT NOT NULL,
    version INTEGER,
    sha256 TEXT,
    route TEXT NOT NULL,
    method TEXT NOT NULL,
    caller TEXT,
    token_name TEXT,
    latency_ms REAL NOT NULL,
    status INTEGER NOT NULL,
    n_rows INTEGER,
    kind TEXT NOT NULL DEFAULT 'request'
);
CREATE INDEX IF NOT EXISTS requests_time ON requests (time);
CREATE INDEX IF NOT EXISTS requests_model_time ON requests (model, time);
CREATE INDEX IF NOT EXISTS requests_request_id ON requests (request_id);
CREATE TABLE IF NOT EXISTS rows (
    request INTEGER NOT NULL,
    row INTEGER NOT NULL,
    inputs TEXT,
    prediction TEXT,
    probabilities TEXT,
    PRIMARY KEY (request, row)
) WITHOUT ROWID;
"""

INSERT_REQUEST = (
    "INSERT INTO requests (request_id, time, model, version, sha256, route, method, caller, "
    "token_name, latency_ms, status, n_rows) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_ROW = "INSERT INTO rows VALUES (?, ?, ?, ?, ?)"


class Entry(NamedTuple):
    """What the request path hands over: plain fields, and the decoded request and its
    prediction by reference (turned into rows on the writer thread, never on the request's)."""

    time: float
    request_id: str
    model: str
    version: int | None
    sha256: str | None
    route: str
    method: str
    caller: str | None
    latency_ms: float
    status: int
    n_rows: int | None
    request: Any = None  # a service.PredictRequest
    names: Sequence[str] | None = None  # the model's input names (for rows sent by position)
    prediction: Any = None  # a backends.base.Prediction


def connect(path: Path) -> sqlite3.Connection:
    """A connection to the log at ``path`` (created with its schema when new)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # isolation_level=None: transactions are begun and committed here, one per batch
    conn = sqlite3.connect(path, timeout=BUSY_MS / 1000, isolation_level=None)
    try:
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")  # takes effect only on a new file
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        if conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
            conn.executescript(SCHEMA)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except BaseException:
        conn.close()
        raise
    return conn


def _plain(value: Any) -> Any:
    """JSON's missing value for NaN (SQLite's JSON functions refuse NaN)."""
    return None if type(value) is float and math.isnan(value) else value


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def input_rows(request: Any, names: Sequence[str] | None, picks: Sequence[int]) -> list[Any]:
    """The rows ``picks`` of a decoded request as objects column → value (None for tensors)."""
    if request.columns is not None:
        columns = request.columns
        return [{k: _plain(v[i]) for k, v in columns.items()} for i in picks]
    if request.matrix is not None:
        labels = names or [str(j) for j in range(request.matrix.shape[1])]
        matrix = request.matrix
        return [dict(zip(labels, map(_plain, matrix[i].tolist()), strict=False)) for i in picks]
    if request.rows is not None:
        given = request.names or names
        out: list[dict[str, Any] | None] = []
        for i in picks:
            row = request.rows[i]
            if not isinstance(row, list):  # refused rows are not logged as inputs
                out.append(None)
                continue
            width = len(row)
            labels = given if given and len(given) == width else [str(j) for j in range(width)]
            out.append({k: _plain(v) for k, v in zip(labels, row, strict=True)})
        return out
    if request.values is not None:
        label = names[0] if names else "value"
        return [{label: _plain(request.values[i])} for i in picks]
    return [None for _ in picks]  # tensors and images: not stored in this increment


def rows_of(entry: Entry, keep_inputs: bool) -> list[tuple[int, str | None, str, str | None]]:
    """The rows to store for ``entry``: (row, inputs, prediction, probabilities)."""
    prediction = entry.prediction
    if prediction is None:
        return []
    answers = prediction.predictions
    count = len(answers)
    picks: Sequence[int] = range(count)
    if count > MAX_ROWS_STORED:  # a uniform sample of a large request, in row order
        picks = sorted(random.sample(range(count), MAX_ROWS_STORED))
    inputs: list[Any] = [None] * len(picks)
    if keep_inputs and entry.request is not None:
        # a shape this increment does not know: the outputs are still kept
        with contextlib.suppress(IndexError, TypeError, ValueError, AttributeError):
            inputs = input_rows(entry.request, entry.names, picks)
    probabilities = prediction.probabilities
    shares = len(probabilities) if probabilities is not None else 0
    return [
        (
            i,
            _dumps(row) if row is not None else None,
            _dumps(_plain(answers[i])),
            _dumps(probabilities[i]) if i < shares else None,  # type: ignore[index]
        )
        for i, row in zip(picks, inputs, strict=True)
    ]


def write(conn: sqlite3.Connection, entries: Iterable[Entry], keep_inputs: bool) -> int:
    """Store ``entries`` in one transaction; how many were stored."""
    written = 0
    conn.execute("BEGIN IMMEDIATE")
    try:
        for e in entries:
            cursor = conn.execute(
                INSERT_REQUEST,
                (
                    e.request_id,
                    e.time,
                    e.model,
                    e.version,
                    e.sha256,
                    e.route,
                    e.method,
                    e.caller,
                    None,  # token_name: named callers come later (issue 26)
                    e.latency_ms,
                    e.status,
                    e.n_rows,
                ),
            )
            rows = rows_of(e, keep_inputs)
            if rows:
                key = cursor.lastrowid
                conn.executemany(INSERT_ROW, [(key, *row) for row in rows])
            written += 1
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return written


def used_bytes(conn: sqlite3.Connection) -> int:
    """The bytes the log's pages hold (the file less its free pages)."""
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    size = conn.execute("PRAGMA page_size").fetchone()[0]
    return int((pages - free) * size)


def _delete_through(conn: sqlite3.Connection, last_id: int) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("DELETE FROM rows WHERE request <= ?", (last_id,))
        conn.execute("DELETE FROM requests WHERE id <= ?", (last_id,))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def prune(conn: sqlite3.Connection, *, now: float, days: float, max_bytes: int) -> int:
    """Delete entries older than ``days``, then the oldest until the log uses at most
    ``max_bytes``; give the freed pages back to the disk. How many requests were deleted."""
    before = conn.execute("SELECT count(*) FROM requests").fetchone()[0]
    # ids grow with time (one writer, in order): the newest too old one bounds the rest
    old = conn.execute(
        "SELECT max(id) FROM requests WHERE time < ?", (now - days * DAY,)
    ).fetchone()[0]
    if old is not None:
        _delete_through(conn, old)
    for _ in range(50):  # a tenth of what is left each time: bounded work per call
        if used_bytes(conn) <= max_bytes:
            break
        left = conn.execute("SELECT count(*) FROM requests").fetchone()[0]
        if not left:
            break
        cut = conn.execute(
            "SELECT id FROM requests ORDER BY id LIMIT 1 OFFSET ?", (max(left // 10, 1) - 1,)
        ).fetchone()
        if cut is None:
            break
        _delete_through(conn, cut[0])
    after = conn.execute("SELECT count(*) FROM requests").fetchone()[0]
    if after < before:
        # through sqlite3_exec: execute() stops the statement after one step, one page freed
        conn.executescript("PRAGMA incremental_vacuum;")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return int(before - after)
