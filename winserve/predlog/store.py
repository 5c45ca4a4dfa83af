"""The prediction log's SQLite file: its schema, batched writes and pruning (issue 26).

Only the writer process (``process.py``) writes, Records made on the request thread
(``record.py``); readers (``export.py``) open connections of their own. WAL mode with
``synchronous=NORMAL``: a committed batch is in the operating system's hands, so killing
winserve at any moment loses only what was not yet committed (the writer commits as soon as
what was sent has arrived, about every half second) and never corrupts the file; a power cut
may lose the last batches too, never the file. ``auto_vacuum=INCREMENTAL`` lets pruning give
the space back to the disk.

Schema (``PRAGMA user_version`` = ``SCHEMA_VERSION``), one table, one row per prediction
request (one insert each: a table of rows beside it doubled the writer's cost, measured)::

    requests  time (Unix seconds, UTC), request_id (the X-Request-Id winserve answered with; a
              client may send its own, so not unique), model, version (1, 2, … within one run),
              sha256 (the file's: a version across restarts), route, method, caller (the
              client's address), token_name (who called, issue 26: a token's name, "local"
              for this computer when no token is set, "-" for anyone else), latency_ms, status,
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
``inputs``, per ``sha256``, at upload, into tables of its own (``outcomes.py``). Only
``time`` is indexed: each index is work on every insert; an upload by request id reads the
requests in one pass rather than index them (``outcome_matches.py`` says why). A NaN (a missing
value) is stored as JSON's null (as NaN in float64 bytes).
"""

from __future__ import annotations

import array
import functools
import json
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from winserve.predlog.record import (
    ANSWERS,
    CALLER,
    LABELS,
    LATENCY_MS,
    MAX_ROWS_STORED,
    N_ROWS,
    PICKS,
    PROBABILITIES,
    ROWS,
    TOKEN_NAME,
    Entry,
    Record,
    record_of,
)

__all__ = ["MAX_ROWS_STORED", "Entry", "connect", "decode_inputs", "prune", "write"]

SCHEMA_VERSION = 1
DAY = 86_400.0
# Requests inserted by one statement: each sqlite3 step has a fixed cost, and executemany
# steps once per row (16 x 17 parameters: within SQLite's 999 on every build)
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
    """The INSERT of ``rows`` requests at once (at most SLICE)."""
    return f"INSERT INTO requests {COLUMNS} VALUES " + ", ".join([_PLACES] * rows)


# one encoder, made once: json.dumps with arguments builds a new one per call
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode


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
    conn: sqlite3.Connection, labels: Sequence[str], known: dict[tuple[str, ...], int]
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


def _stored(
    conn: sqlite3.Connection, record: Record, known: dict[tuple[str, ...], int]
) -> tuple[int | str | bytes | None, ...]:
    """The stored form of ``record``'s rows: (columns, inputs, predictions, probabilities,
    sample): the id of the column names, the rows (float64 bytes or JSON), JSON text, or None."""
    answers = record[ANSWERS]
    if answers is None:
        return (None, None, None, None, None)
    columns = inputs = None
    labels, rows = record[LABELS], record[ROWS]
    if labels is not None and rows is not None:
        columns, inputs = _column_set(conn, labels, known), _inputs(rows)
    if any(type(a) is float and a != a for a in answers):
        answers = [None if type(a) is float and a != a else a for a in answers]
    probabilities, picks = record[PROBABILITIES], record[PICKS]
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
    """Store ``entries`` in one transaction; how many were stored (``write_records`` with
    what the request thread would have made of them)."""
    return write_records(conn, [record_of(e, keep_inputs) for e in entries], known)


def write_records(
    conn: sqlite3.Connection,
    records: Sequence[Record],
    known: dict[tuple[str, ...], int] | None = None,
) -> int:
    """Store ``records`` in one transaction; how many were stored. ``known``: the ids of the
    column sets already stored (the writer keeps it between batches, for one file)."""
    known = {} if known is None else known
    conn.execute("BEGIN IMMEDIATE")
    try:
        for start in range(0, len(records), SLICE):
            part = records[start : start + SLICE]
            values: list[Any] = []
            for r in part:
                values += r[: CALLER + 1]
                values.append(r[TOKEN_NAME])  # who called (issue 26)
                values += r[LATENCY_MS : N_ROWS + 1]
                values += _stored(conn, r, known)
            # one statement for the slice: executemany steps once per row
            conn.execute(_insert(len(part)), values)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        known.clear()  # ids of a rolled-back transaction may not exist
        raise
    return len(records)


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
