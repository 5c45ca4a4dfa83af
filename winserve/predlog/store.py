"""The prediction log's SQLite file: its schema, batched writes and pruning (issue 26).

Only the writer thread (``writer.py``) writes; readers (``export.py``) open connections of
their own. WAL mode with ``synchronous=NORMAL``: a committed batch is in the operating system's
hands, so killing winserve at any moment loses only what was not yet committed (the writer
commits every half second) and never corrupts the file; a power cut may lose the last batches
too, never the file. ``auto_vacuum=INCREMENTAL`` lets pruning give the space back to the disk.

Schema (``PRAGMA user_version`` = ``SCHEMA_VERSION``), one table, one row per prediction
request (one insert each: a table of rows beside it doubled the writer's cost, measured)::

    requests  time (Unix seconds, UTC), request_id (the X-Request-Id winserve answered with; a
              client may send its own, so not unique), model, version (1, 2, … within one run),
              sha256 (the file's: a version across restarts), route, method, caller (the
              client's address), token_name (NULL until named callers), latency_ms, status,
              n_rows, kind ('request'; 'job' for CSV scoring, later), and up to
              MAX_ROWS_STORED of its rows: columns (the id of their names in column_sets,
              a JSON list stored once per file), inputs (the rows in the
              order of columns: float64 bytes, row after row, when every value is a number,
              else a JSON list of lists; NULL with log_inputs = false; ``decode_inputs`` reads
              both), predictions (a list), probabilities (a list of lists, or NULL), sample
              (the 0-based rows kept of a larger request, a uniform sample in row order; NULL
              when all are kept)

The rows are kept in MLflow's "split" orientation (``pd.DataFrame(inputs, columns=names)``
rebuilds them): drift reads ``inputs`` by model and time; accuracy joins outcomes on
``request_id`` and the row (``sample``'s, else the position), or on a key column inside
``inputs``, per ``sha256``. Only ``time`` is indexed: each index is work on every insert; the
accuracy upload will add its ``request_id`` index when it first needs it (``CREATE INDEX IF
NOT EXISTS``). A NaN (a missing value) is stored as JSON's null (as NaN in
float64 bytes).
"""

from __future__ import annotations

import array
import contextlib
import functools
import json
import random
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

SCHEMA_VERSION = 1
MAX_ROWS_STORED = 100  # of one request; a CSV job's sample will take the same bound
DAY = 86_400.0
# Entries encoded (or inserted) between two releases of the GIL. The writer is the web
# process's one busy thread: holding the GIL for CPython's 5 ms switch interval, it would
# keep every request thread coming back from its socket or its model waiting behind it.
# 16 entries: ~0.5 ms. (bench/predlog.py could not tell 4, 16 and 128 apart on the team's
# loaded machine; the writer's own CPU was ~35 us per entry there, issue 26.)
SLICE = 16
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
    kind TEXT NOT NULL DEFAULT 'request',
    columns INTEGER,
    inputs BLOB,
    predictions TEXT,
    probabilities TEXT,
    sample TEXT
);
CREATE INDEX IF NOT EXISTS requests_time ON requests (time);
CREATE TABLE IF NOT EXISTS column_sets (
    id INTEGER PRIMARY KEY,
    names TEXT NOT NULL UNIQUE
);
"""

INSERT = (
    "INSERT INTO requests (request_id, time, model, version, sha256, route, method, caller, "
    "token_name, latency_ms, status, n_rows, columns, inputs, predictions, probabilities, "
    "sample) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
COLUMNS = INSERT[INSERT.index("(") : INSERT.index(" VALUES")]
_PLACES = "(" + ", ".join(["?"] * (COLUMNS.count(",") + 1)) + ")"


@functools.cache
def _insert(rows: int) -> str:
    """The INSERT of ``rows`` requests at once (at most SLICE: 16 x 17 parameters)."""
    return f"INSERT INTO requests {COLUMNS} VALUES " + ", ".join([_PLACES] * rows)


# one encoder, made once: json.dumps with arguments builds a new one per call
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode


class Entry(NamedTuple):
    """What the request path hands over: plain fields, and the decoded request and its
    prediction by reference (turned into JSON on the writer thread, never on the request's)."""

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


def _without_nan(rows: list[Any]) -> list[Any]:
    """JSON's missing value for NaN (SQLite's JSON functions and other readers refuse NaN);
    the rows as they are when none holds one, the usual case (a check, not a copy)."""
    if not any(v != v for row in rows for v in row):
        return rows
    return [[None if v != v else v for v in row] for row in rows]


def input_rows(
    request: Any, names: Sequence[str] | None, picks: Sequence[int] | None
) -> tuple[list[str] | None, list[Any] | None]:
    """(column names, rows as lists) of a decoded request, only the rows ``picks`` (None: all);
    (None, None) for what this increment does not store (tensors, images)."""
    rows: list[Any]
    if request.columns is not None:
        labels = list(request.columns)
        rows = [list(row) for row in zip(*request.columns.values(), strict=True)]
    elif request.matrix is not None:
        rows = request.matrix.tolist()
        labels = list(names) if names else [str(j) for j in range(len(rows[0]) if rows else 0)]
    elif request.rows is not None:
        rows = request.rows
        first = rows[0] if rows else []
        given = request.names or names
        width = len(first) if isinstance(first, list) else 0
        labels = list(given) if given and len(given) == width else [str(j) for j in range(width)]
    elif request.values is not None:
        labels = [names[0] if names else "value"]
        rows = [[v] for v in request.values]
    else:
        return None, None
    if picks is not None:
        rows = [rows[i] for i in picks]
    return labels, rows


def _inputs(rows: list[Any]) -> str | bytes:
    """Rows of numbers only (the usual table) as float64 bytes, row after row: ~0.5 µs for 30
    columns where JSON took ~11 (a float's shortest repr is slow), measured; else JSON text."""
    if all(type(v) is float for row in rows for v in row):
        return array.array("d", [v for row in rows for v in row]).tobytes()
    return _encode(_without_nan(rows))


def decode_inputs(columns: str | None, inputs: str | bytes | None) -> list[list[Any]] | None:
    """The rows ``inputs`` holds (JSON text, or float64 bytes for numbers only; NaN is None)."""
    if inputs is None:
        return None
    if isinstance(inputs, str):
        rows: list[list[Any]] = json.loads(inputs)
        return rows
    width = len(json.loads(columns)) if columns else 1
    flat = array.array("d")
    flat.frombytes(inputs)
    values = [None if v != v else v for v in flat]
    return [values[i : i + width] for i in range(0, len(values), width)]


def _column_set(
    conn: sqlite3.Connection, labels: list[str], known: dict[tuple[str, ...], int]
) -> int:
    """The id of ``labels`` in column_sets (stored once per file: a model's 30 names were
    ~600 bytes of every entry, the largest part of it)."""
    key = tuple(labels)
    found = known.get(key)
    if found is None:  # the same model's names, request after request: looked up once
        if len(known) > 1000:
            known.clear()
        text = _encode(labels)
        conn.execute("INSERT OR IGNORE INTO column_sets (names) VALUES (?)", (text,))
        row = conn.execute("SELECT id FROM column_sets WHERE names = ?", (text,)).fetchone()
        found = known[key] = int(row[0])
    return found


def values_of(
    conn: sqlite3.Connection, entry: Entry, keep_inputs: bool, known: dict[tuple[str, ...], int]
) -> tuple[int | str | bytes | None, ...]:
    """The stored form of ``entry``'s rows: (columns, inputs, predictions, probabilities,
    sample), each JSON text or None. A request of more than MAX_ROWS_STORED rows keeps a
    uniform sample of them, in row order, and ``sample`` says which rows (0-based)."""
    prediction = entry.prediction
    if prediction is None:
        return (None, None, None, None, None)
    answers = prediction.predictions
    probabilities = prediction.probabilities
    count = len(answers)
    picks: list[int] | None = None
    if count > MAX_ROWS_STORED:
        picks = sorted(random.sample(range(count), MAX_ROWS_STORED))
        answers = [answers[i] for i in picks]
        if probabilities is not None:
            probabilities = [probabilities[i] for i in picks]
    columns = inputs = None
    if keep_inputs and entry.request is not None:
        # a shape this increment does not know: the outputs are still kept
        with contextlib.suppress(IndexError, TypeError, ValueError, AttributeError):
            labels, rows = input_rows(entry.request, entry.names, picks)
            if labels is not None and rows is not None:
                columns, inputs = _column_set(conn, labels, known), _inputs(rows)
    if any(type(a) is float and a != a for a in answers):
        answers = [None if type(a) is float and a != a else a for a in answers]
    return (
        columns,
        inputs,
        _encode(answers),
        _encode(probabilities) if probabilities is not None else None,
        _encode(picks) if picks is not None else None,
    )


def write(
    conn: sqlite3.Connection,
    entries: Iterable[Entry],
    keep_inputs: bool,
    known: dict[tuple[str, ...], int] | None = None,
) -> int:
    """Store ``entries`` in one transaction; how many were stored. ``known``: the ids of the
    column sets already stored (the writer keeps it between batches, for one file)."""
    known = {} if known is None else known
    records: list[tuple[Any, ...]] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        _insert_all(conn, entries, keep_inputs, known, records)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        known.clear()  # ids of a rolled-back transaction may not exist
        raise
    return len(records)


def _insert_all(
    conn: sqlite3.Connection,
    entries: Iterable[Entry],
    keep_inputs: bool,
    known: dict[tuple[str, ...], int],
    records: list[tuple[Any, ...]],
) -> None:
    for n, e in enumerate(entries, 1):
        records.append(
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
                *values_of(conn, e, keep_inputs, known),
            )
        )
        if n % SLICE == 0:
            time.sleep(0)  # let the request threads have the GIL (see SLICE)
    for start in range(0, len(records), SLICE):
        part = records[start : start + SLICE]
        # one statement for the slice: sqlite3 lets the GIL go around every step, and
        # executemany steps once per row, each a hand-over among the request threads
        conn.execute(_insert(len(part)), [v for record in part for v in record])
        time.sleep(0)


def used_bytes(conn: sqlite3.Connection) -> int:
    """The bytes the log's pages hold (the file less its free pages)."""
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    size = conn.execute("PRAGMA page_size").fetchone()[0]
    return int((pages - free) * size)


def _delete_through(conn: sqlite3.Connection, last_id: int) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
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
